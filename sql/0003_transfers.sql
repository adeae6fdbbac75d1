-- Transfers (the conveyor): links between endpoints, leases on requests, and every attempt.
--
-- "Waiting for a source" is QUEUED with source_rse_id null and waiting_reason set, so the state
-- set and the partial unique index requests_live stay as they are.

-- An ordered pair of storage endpoints. Created on demand when a request is given a source; the
-- optimizer changes limit_active within [min_active, max_active] unless pinned.
create table links (
  id               bigint generated always as identity primary key,
  src_endpoint_id  bigint not null references storage_endpoints (id) on delete cascade,
  dst_endpoint_id  bigint not null references storage_endpoints (id) on delete cascade,
  limit_active     integer not null default 10 check (limit_active >= 0),
  min_active       integer not null default 1 check (min_active >= 0),
  max_active       integer not null default 100 check (max_active >= 1),
  pinned           boolean not null default false,
  -- per-VO weight overrides on this link ({"atlas": 3}); VOs not named use vos.share
  vo_shares        jsonb not null default '{}'::jsonb,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  unique (src_endpoint_id, dst_endpoint_id)
);

alter table requests
  add column source_rse_id       bigint,
  add column link_id             bigint references links (id),
  -- the conveyor process executing the request, and until when its claim holds
  add column lease_owner         text,
  add column lease_expires_at    timestamptz,
  add column started_at          timestamptz,
  -- live progress of the running attempt, flushed periodically by its owner
  add column bytes_done          bigint not null default 0,
  add column mode                text check (mode in ('tpc-pull', 'tpc-push', 'stream')),
  -- why a QUEUED request has no source (yet); shown to users
  add column waiting_reason      text,
  -- the source of the previous attempt: a retry prefers another one
  add column last_source_rse_id  bigint,
  -- null: the conveyor's configured default
  add column max_attempts        integer check (max_attempts >= 1),
  add column finished_at         timestamptz;

-- Claiming: an index range scan per (link, vo, activity, priority) with LIMIT, oldest first,
-- whatever the size of the queue. Priority ascending on purpose: it is always an equality here,
-- and ascending lets the loose index scan that lists a link's queues use a row comparison.
create index requests_claim on requests (link_id, vo, activity, priority, created_at)
  where state = 'QUEUED' and source_rse_id is not null;
-- Requests still needing a source (new, retried, or waiting for a replica to appear).
create index requests_unsourced on requests ((coalesce(not_before, '-infinity'::timestamptz)))
  where state = 'QUEUED' and source_rse_id is null;
create index requests_active_link on requests (link_id) where state = 'ACTIVE';
create index requests_lease on requests (lease_expires_at) where state = 'ACTIVE';
-- The API lists by state and VO, newest first.
create index requests_vo_state on requests (vo, state, id);

-- Every attempt of every request, kept: the optimizer and link statistics read throughput and
-- success per link per time window from here.
create table transfer_attempts (
  id             bigint generated always as identity primary key,
  request_id     bigint not null references requests (id) on delete cascade,
  vo             text not null,
  attempt        integer not null,
  source_rse_id  bigint,
  dest_rse_id    bigint not null,
  link_id        bigint references links (id),
  mode           text,
  bytes          bigint not null default 0,
  duration_ms    integer not null default 0,
  -- null on success; a TransferError code, 'Lost' (lease expired) or 'Cancelled'
  error_code     text,
  error_phase    text,
  retryable      boolean,
  message        text,
  owner          text,
  started_at     timestamptz,
  finished_at    timestamptz not null default now()
);
create index transfer_attempts_request on transfer_attempts (request_id);
create index transfer_attempts_link on transfer_attempts (link_id, finished_at);

-- Wakes sleeping conveyors as soon as rules create requests; polling remains the floor.
create function sluice_requests_inserted() returns trigger language plpgsql as $$
begin
  perform pg_notify('sluice_requests', '');
  return null;
end $$;

create trigger requests_inserted after insert on requests
  for each statement execute function sluice_requests_inserted();
