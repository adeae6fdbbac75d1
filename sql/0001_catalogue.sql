-- The catalogue: tenants, identities, storage, and the replica catalogue.
--
-- Every VO-owned table carries `vo` as the first column of its primary key, so that the large
-- tables (dids, did_contents, replicas) can be distributed by VO with Citus without changing keys,
-- and so that every query is naturally scoped to one VO.

create table vos (
  name            text primary key check (name ~ '^[a-z][a-z0-9_-]{1,31}$'),
  description     text not null default '',
  policy_package  text not null default 'default',
  -- weight of this VO in link fair shares (issue: links); 1 = default weight
  share           integer not null default 1 check (share >= 0),
  created_at      timestamptz not null default now()
);

-- Trusted token issuers. A row with `vo` null is trusted by Sluice itself (the embedded local
-- issuer, or an operator's own): its tokens name their VO in the `vo` claim, and a token without
-- one is a root token. A row with a `vo` is a VO's identity provider (e.g. an INDIGO IAM
-- instance): its tokens act only in that VO, as the account named by `account_claim`.
create table issuers (
  id             bigint generated always as identity primary key,
  issuer         text not null,
  vo             text references vos (name) on delete cascade,
  jwks           jsonb,
  jwks_url       text,
  audience       text,
  account_claim  text not null default 'sub',
  created_at     timestamptz not null default now(),
  check (jwks_url is not null or jwks is not null)
);
create unique index issuers_issuer_vo on issuers (issuer, coalesce(vo, ''));

create table accounts (
  vo          text not null references vos (name) on delete cascade,
  name        text not null check (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  type        text not null default 'user' check (type in ('user', 'group', 'service')),
  role        text not null default 'user' check (role in ('user', 'admin')),
  email       text,
  status      text not null default 'active' check (status in ('active', 'suspended')),
  created_at  timestamptz not null default now(),
  primary key (vo, name)
);

create table scopes (
  vo          text not null,
  name        text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$'),
  account     text not null,
  created_at  timestamptz not null default now(),
  primary key (vo, name),
  foreign key (vo, account) references accounts (vo, name)
);

-- A physical storage service, shared by VOs and managed by root.
create table storage_endpoints (
  id            bigint generated always as identity primary key,
  name          text not null unique check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  url           text not null unique,
  kind          text not null check (kind in ('http', 's3')),
  -- which HTTP third-party copy roles the endpoint can play
  tpc           text not null default 'none' check (tpc in ('pull', 'push', 'both', 'none')),
  max_inbound   integer check (max_inbound > 0),
  max_outbound  integer check (max_outbound > 0),
  settings      jsonb not null default '{}'::jsonb,
  created_at    timestamptz not null default now()
);

-- A VO's named area on an endpoint.
create table rses (
  id                 bigint generated always as identity primary key,
  vo                 text not null references vos (name) on delete cascade,
  name               text not null check (name ~ '^[A-Z0-9][A-Z0-9_-]{0,63}$'),
  endpoint_id        bigint not null references storage_endpoints (id),
  prefix             text not null default '/',
  deterministic      boolean not null default true,
  availability_read   boolean not null default true,
  availability_write  boolean not null default true,
  availability_delete boolean not null default true,
  -- protocol settings: S3 bucket/region/addressing/checksum mode, timeouts, credentials
  protocol_settings  jsonb not null default '{}'::jsonb,
  -- total capacity in bytes the VO may use here (null: unlimited)
  quota_bytes        bigint check (quota_bytes >= 0),
  deleted_at         timestamptz,
  created_at         timestamptz not null default now(),
  unique (vo, name)
);
create index on rses (endpoint_id);

create table rse_attributes (
  rse_id  bigint not null references rses (id) on delete cascade,
  key     text not null check (key ~ '^[A-Za-z0-9_.-]{1,64}$'),
  value   text not null,
  primary key (rse_id, key)
);
create index on rse_attributes (key, value);

-- Distance between two RSEs of one VO, used to rank sources (lower is closer).
create table distances (
  src_rse_id  bigint not null references rses (id) on delete cascade,
  dst_rse_id  bigint not null references rses (id) on delete cascade,
  distance    integer not null check (distance >= 0),
  primary key (src_rse_id, dst_rse_id)
);

create table dids (
  vo          text not null,
  scope       text not null,
  name        text not null,
  type        text not null check (type in ('FILE', 'DATASET', 'CONTAINER')),
  account     text not null,
  bytes       bigint check (bytes >= 0),
  adler32     text check (adler32 ~ '^[0-9a-f]{8}$'),
  md5         text check (md5 ~ '^[0-9a-f]{32}$'),
  is_open     boolean not null default true,
  meta        jsonb not null default '{}'::jsonb,
  created_at  timestamptz not null default now(),
  closed_at   timestamptz,
  primary key (vo, scope, name),
  -- No foreign key to scopes: bulk registration checks every scope in one query before its
  -- insert, and scopes are never deleted; a per-row FK trigger cost a third of the insert.
  check (type <> 'FILE' or (bytes is not null and adler32 is not null))
);
create index dids_meta on dids using gin (meta jsonb_path_ops);
create index dids_name_pattern on dids (vo, scope, name text_pattern_ops);

create table did_contents (
  vo           text not null,
  scope        text not null,
  name         text not null,
  child_scope  text not null,
  child_name   text not null,
  child_type   text not null check (child_type in ('FILE', 'DATASET', 'CONTAINER')),
  created_at   timestamptz not null default now(),
  primary key (vo, scope, name, child_scope, child_name),
  foreign key (vo, scope, name) references dids (vo, scope, name) on delete cascade,
  foreign key (vo, child_scope, child_name) references dids (vo, scope, name) on delete cascade
);
create index did_contents_child on did_contents (vo, child_scope, child_name);

create table replicas (
  vo          text not null,
  scope       text not null,
  name        text not null,
  -- No foreign key to rses (per-row trigger cost): registration holds the RSE row FOR SHARE,
  -- and deleting an RSE locks it FOR UPDATE and refuses while replicas remain.
  rse_id      bigint not null,
  state       text not null default 'AVAILABLE'
              check (state in ('AVAILABLE', 'COPYING', 'BEING_DELETED', 'BAD', 'UNAVAILABLE')),
  path        text not null,
  lock_cnt    integer not null default 0 check (lock_cnt >= 0),
  -- when the replica became deletable (no locks); null while it must be kept
  tombstone   timestamptz,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  accessed_at timestamptz,
  primary key (vo, scope, name, rse_id),
  foreign key (vo, scope, name) references dids (vo, scope, name)
);
create index replicas_rse_tombstone on replicas (rse_id, tombstone) where tombstone is not null;
create index replicas_rse on replicas (rse_id, state);

create table bad_replicas (
  id          bigint generated always as identity primary key,
  vo          text not null,
  scope       text not null,
  name        text not null,
  rse_id      bigint not null references rses (id),
  reason      text not null,
  account     text not null,
  created_at  timestamptz not null default now()
);
create index on bad_replicas (vo, scope, name);
