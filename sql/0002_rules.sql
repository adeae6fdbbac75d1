-- Replication rules, their locks, the transfer requests they cause, account quotas, and the
-- queue that tells the judge evaluator which collections changed.
--
-- Invariants kept by core/locks.ts (always in the statement that changes locks):
--   replicas.lock_cnt          = number of locks on that (vo, scope, name, rse_id)
--   rules.locks_*_cnt          = number of the rule's locks in each state
--   account_usage.files/bytes  = number / bytes of the account's rules' locks on that RSE
-- and one live (QUEUED/ACTIVE) request per (file, destination), shared by every rule wanting it.

create table rules (
  id                         uuid primary key default gen_random_uuid(),
  vo                         text not null,
  account                    text not null,
  -- one DID per rule: POST /v1/rules with several DIDs creates one rule per DID (as Rucio does)
  scope                      text not null,
  name                       text not null,
  did_type                   text not null check (did_type in ('FILE', 'DATASET', 'CONTAINER')),
  copies                     integer not null check (copies >= 1),
  rse_expression             text not null,
  grouping                   text not null check (grouping in ('ALL', 'DATASET', 'NONE')),
  weight                     text,
  expires_at                 timestamptz,
  activity                   text not null default 'default',
  priority                   integer not null default 3 check (priority between 1 and 5),
  source_replica_expression  text,
  purge_replicas             boolean not null default false,
  locked                     boolean not null default false,
  comment                    text,
  state                      text not null default 'REPLICATING'
                             check (state in ('REPLICATING', 'OK', 'STUCK', 'SUSPENDED')),
  locks_ok_cnt               integer not null default 0 check (locks_ok_cnt >= 0),
  locks_replicating_cnt      integer not null default 0 check (locks_replicating_cnt >= 0),
  locks_stuck_cnt            integer not null default 0 check (locks_stuck_cnt >= 0),
  error                      text,
  -- files of the rule the judge could not place (no RSE with room): they keep the rule STUCK
  unplaced_cnt               integer not null default 0 check (unplaced_cnt >= 0),
  -- when the rule became STUCK since it was last OK (null once OK); the repairer suspends rules
  -- stuck for too long
  stuck_at                   timestamptz,
  -- repairer backoff: attempts since the rule became stuck, and when to look at it again
  repair_attempts            integer not null default 0,
  next_repair_at             timestamptz,
  -- millisecond precision: (created_at, id) is the list cursor and must survive a JS Date
  created_at                 timestamptz not null default date_trunc('milliseconds', now()),
  updated_at                 timestamptz not null default now(),
  foreign key (vo, scope, name) references dids (vo, scope, name),
  foreign key (vo, account) references accounts (vo, name)
);
-- A rule's state follows its counters, whoever changes them: STUCK while any lock is stuck or any
-- file is unplaced, else REPLICATING while any lock replicates, else OK. SUSPENDED (set by the
-- repairer) holds until every lock is OK.
create function sluice_rule_state() returns trigger language plpgsql as $$
begin
  if new.state = 'SUSPENDED'
     and (new.locks_stuck_cnt > 0 or new.locks_replicating_cnt > 0 or new.unplaced_cnt > 0) then
    null;
  elsif new.locks_stuck_cnt > 0 or new.unplaced_cnt > 0 then
    new.state := 'STUCK';
  elsif new.locks_replicating_cnt > 0 then
    new.state := 'REPLICATING';
  else
    new.state := 'OK';
  end if;
  if new.state in ('STUCK', 'SUSPENDED') then
    new.stuck_at := coalesce(new.stuck_at, now());
  elsif new.state = 'OK' then
    new.stuck_at := null;
    new.error := null;
    new.repair_attempts := 0;
    new.next_repair_at := null;
  end if;
  new.updated_at := now();
  return new;
end $$;

create trigger rules_state before insert or update on rules for each row execute function sluice_rule_state();

create index rules_did on rules (vo, scope, name);
create index rules_account on rules (vo, account, created_at, id);
create index rules_vo_created on rules (vo, created_at, id);
create index rules_stuck on rules (next_repair_at) where state = 'STUCK';
create index rules_expiry on rules (expires_at) where expires_at is not null;

-- No foreign keys on locks and requests, on purpose: a rule on 100,000 files writes 200,000 of
-- each in one statement, and per-row FK checks were half of that time. Every lock and live
-- request stands on a replica row (lock_cnt > 0 or COPYING), which has its keys to dids and rses;
-- locks go before their rule in core/rules.ts (removeRule), and the invariant tests check all of it.
create table locks (
  vo          text not null,
  rule_id     uuid not null,
  scope       text not null,
  name        text not null,
  rse_id      bigint not null,
  state       text not null check (state in ('OK', 'REPLICATING', 'STUCK')),
  bytes       bigint not null check (bytes >= 0),
  error       text,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  primary key (rule_id, scope, name, rse_id)
);
-- every lock on one replica (markReplicaAvailable, markRequestFailed)
create index locks_replica on locks (vo, scope, name, rse_id);
create index locks_stuck on locks (rule_id) where state = 'STUCK';

create table requests (
  id           bigint generated always as identity primary key,
  vo           text not null,
  scope        text not null,
  name         text not null,
  dest_rse_id  bigint not null,
  state        text not null default 'QUEUED' check (state in ('QUEUED', 'ACTIVE', 'DONE', 'FAILED')),
  bytes        bigint not null check (bytes >= 0),
  adler32      text not null,
  activity     text not null default 'default',
  priority     integer not null default 3 check (priority between 1 and 5),
  attempts     integer not null default 0,
  not_before   timestamptz,
  error        text,
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now()
);
-- one live request per (file, destination), shared by every rule that wants that replica
create unique index requests_live on requests (vo, scope, name, dest_rse_id) where state in ('QUEUED', 'ACTIVE');
create index requests_queued on requests (dest_rse_id, priority desc, created_at) where state = 'QUEUED';

-- Quotas: bytes an account's rules may lock on an RSE (no row: unlimited).
create table account_limits (
  vo       text not null,
  account  text not null,
  rse_id   bigint not null references rses (id) on delete cascade,
  bytes    bigint not null check (bytes >= 0),
  primary key (vo, account, rse_id),
  foreign key (vo, account) references accounts (vo, name) on delete cascade
);

-- Maintained incrementally by the statements that create and release locks (never a full scan).
create table account_usage (
  vo       text not null,
  account  text not null,
  rse_id   bigint not null references rses (id) on delete cascade,
  files    bigint not null default 0 check (files >= 0),
  bytes    bigint not null default 0 check (bytes >= 0),
  primary key (vo, account, rse_id)
);

-- The reaper's bookkeeping on a replica whose storage delete failed (kept and retried later).
alter table replicas add column deletion_error text;
alter table replicas add column deletion_attempts integer not null default 0;

-- Collections whose content changed: the judge evaluator's work queue. Written by a statement
-- trigger on did_contents, so every attach/detach (from any code path) is seen without the
-- catalogue code knowing about rules. One row per collection per statement.
create table updated_dids (
  id          bigint generated always as identity primary key,
  vo          text not null,
  scope       text not null,
  name        text not null,
  -- an entry whose evaluation failed waits (backoff) so that it cannot block the queue
  attempts    integer not null default 0,
  not_before  timestamptz,
  created_at  timestamptz not null default now()
);

create function sluice_did_contents_changed() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into updated_dids (vo, scope, name) select distinct vo, scope, name from new_rows;
  else
    insert into updated_dids (vo, scope, name) select distinct vo, scope, name from old_rows;
  end if;
  -- wakes sleeping evaluators; polling remains the correctness floor
  perform pg_notify('sluice_updated_dids', '');
  return null;
end $$;

create trigger did_contents_inserted after insert on did_contents
  referencing new table as new_rows for each statement execute function sluice_did_contents_changed();
create trigger did_contents_deleted after delete on did_contents
  referencing old table as old_rows for each statement execute function sluice_did_contents_changed();
