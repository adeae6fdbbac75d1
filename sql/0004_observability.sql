-- Observability (issue 8): link statistics, endpoint probes and bans, per-VO/RSE replica usage.
--
-- Deliberately no foreign key to 0003's tables (links, transfer_attempts): statistics outlive
-- nothing they describe for long (pruned after a day / 30 days), and this migration must apply
-- whatever order the transfer tables land in.

-- ---- link statistics --------------------------------------------------------------------------
-- Per link, VO and minute (kept a day) or hour (kept 30 days), rolled up from transfer_attempts
-- by daemons/link-stats.ts. Recomputed, not incremented: re-running a rollup over the same
-- window gives the same rows.
--   bytes, duration_ms_sum: of successful attempts only (throughput and mean duration of files
--   that arrived); failed_by_class: {"<error_code>": n} for failed attempts.
create table link_stats_minute (
  link_id          bigint not null,
  vo               text not null,
  minute           timestamptz not null,
  bytes            bigint not null default 0,
  files_done       integer not null default 0,
  files_failed     integer not null default 0,
  failed_by_class  jsonb not null default '{}'::jsonb,
  duration_ms_sum  bigint not null default 0,
  primary key (link_id, minute, vo)
);
create index link_stats_minute_time on link_stats_minute (minute);

create table link_stats_hour (
  link_id          bigint not null,
  vo               text not null,
  hour             timestamptz not null,
  bytes            bigint not null default 0,
  files_done       integer not null default 0,
  files_failed     integer not null default 0,
  failed_by_class  jsonb not null default '{}'::jsonb,
  duration_ms_sum  bigint not null default 0,
  primary key (link_id, hour, vo)
);
create index link_stats_hour_time on link_stats_hour (hour);

-- Up to when a rollup has covered its source (the next run starts a little before it).
create table rollup_watermarks (
  name        text primary key,
  done_until  timestamptz not null
);

-- ---- endpoint status: probes and bans ---------------------------------------------------------
-- status: ok | degraded (some of its RSEs fail probes) | excluded (every probe failed
-- `exclude_after` times in a row: no new transfers from or to it) | banned (by root, by hand;
-- only root lifts it). usable_endpoints below is what source/destination selection reads.
alter table storage_endpoints
  add column status              text not null default 'ok' check (status in ('ok', 'degraded', 'excluded', 'banned')),
  add column status_reason       text,
  add column status_since        timestamptz not null default now(),
  add column probe_failures      integer not null default 0,
  add column probe_successes     integer not null default 0,
  add column last_probe_at       timestamptz,
  -- one probe at a time per endpoint: the prober that holds it, and until when
  add column probe_owner         text,
  add column probe_lease_until   timestamptz,
  -- who banned it and when (the reason is status_reason); an unban returns it to 'ok' and the
  -- next probes decide again
  add column banned_by           text,
  add column banned_at           timestamptz;
create index storage_endpoints_probe_due on storage_endpoints (last_probe_at nulls first);

-- One row per probe of one RSE: write, read back, checksum, delete a small file.
create table endpoint_probes (
  id           bigint generated always as identity primary key,
  endpoint_id  bigint not null references storage_endpoints (id) on delete cascade,
  rse_id       bigint,
  ok           boolean not null,
  -- where a failed probe failed: write | read | checksum | delete | setup
  phase        text,
  error_code   text,
  message      text,
  duration_ms  integer not null,
  owner        text,
  started_at   timestamptz not null,
  finished_at  timestamptz not null default now()
);
create index endpoint_probes_endpoint on endpoint_probes (endpoint_id, finished_at);
create index endpoint_probes_time on endpoint_probes (finished_at);

-- Status changes (for availability: time up / time), one row per transition.
create table endpoint_status_log (
  id           bigint generated always as identity primary key,
  endpoint_id  bigint not null references storage_endpoints (id) on delete cascade,
  status       text not null,
  reason       text,
  at           timestamptz not null default now()
);
create index endpoint_status_log_endpoint on endpoint_status_log (endpoint_id, at);

create function sluice_endpoint_status_since() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status then
    new.status_since := now();
  end if;
  return new;
end $$;
create trigger storage_endpoints_status_since before insert or update of status on storage_endpoints
  for each row execute function sluice_endpoint_status_since();

create function sluice_endpoint_status_log() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status then
    insert into endpoint_status_log (endpoint_id, status, reason, at) values (new.id, new.status, new.status_reason, new.status_since);
  end if;
  return null;
end $$;
create trigger storage_endpoints_status_log after insert or update of status on storage_endpoints
  for each row execute function sluice_endpoint_status_log();

-- The endpoints transfers may use as source or destination. The conveyor's source/destination
-- selection and the judge's placement join this (or call core/probes.ts excludedEndpointIds).
create view usable_endpoints as
  select id, name from storage_endpoints where status in ('ok', 'degraded');

-- ---- usage accounting -------------------------------------------------------------------------
-- Bytes and files of AVAILABLE replicas per VO and RSE, current as replicas change, never a full
-- scan. Statement-level triggers with transition tables append one aggregated delta row per
-- (vo, rse) touched by a statement; nothing is updated in place there, so concurrent writers of
-- one RSE never wait on one hot counter row and cannot deadlock on it. fold_rse_usage() moves
-- deltas into rse_usage (any process may call it; the link-stats daemon does); readers read
-- rse_usage_current = rse_usage + deltas not folded yet, which is exact at any time.
create table rse_usage (
  vo      text not null,
  rse_id  bigint not null,
  files   bigint not null default 0,
  bytes   bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (vo, rse_id)
);

create table rse_usage_delta (
  id      bigint generated always as identity primary key,
  vo      text not null,
  rse_id  bigint not null,
  files   bigint not null,
  bytes   bigint not null
);

create view rse_usage_current as
  select vo, rse_id, sum(files)::bigint as files, sum(bytes)::bigint as bytes
  from (select vo, rse_id, files, bytes from rse_usage
        union all
        select vo, rse_id, files, bytes from rse_usage_delta) u
  group by vo, rse_id;

create function sluice_replicas_usage() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into rse_usage_delta (vo, rse_id, files, bytes)
      select n.vo, n.rse_id, count(*), coalesce(sum(d.bytes), 0)
      from new_rows n join dids d on d.vo = n.vo and d.scope = n.scope and d.name = n.name
      where n.state = 'AVAILABLE'
      group by n.vo, n.rse_id;
  elsif tg_op = 'DELETE' then
    insert into rse_usage_delta (vo, rse_id, files, bytes)
      select o.vo, o.rse_id, -count(*), -coalesce(sum(d.bytes), 0)
      from old_rows o join dids d on d.vo = o.vo and d.scope = o.scope and d.name = o.name
      where o.state = 'AVAILABLE'
      group by o.vo, o.rse_id;
  else
    -- Only rows whose AVAILABLE-ness changed; most updates (lock counts, tombstones) change
    -- nothing here and add no row. Replicas never move between RSEs (rse_id is in the key).
    insert into rse_usage_delta (vo, rse_id, files, bytes)
      select n.vo, n.rse_id,
             sum(case when n.state = 'AVAILABLE' then 1 else -1 end),
             sum(case when n.state = 'AVAILABLE' then d.bytes else -d.bytes end)
      from old_rows o join new_rows n using (vo, scope, name, rse_id)
      join dids d on d.vo = n.vo and d.scope = n.scope and d.name = n.name
      where (o.state = 'AVAILABLE') <> (n.state = 'AVAILABLE')
      group by n.vo, n.rse_id;
  end if;
  return null;
end $$;

create trigger replicas_usage_insert after insert on replicas
  referencing new table as new_rows for each statement execute function sluice_replicas_usage();
create trigger replicas_usage_update after update on replicas
  referencing old table as old_rows new table as new_rows for each statement execute function sluice_replicas_usage();
create trigger replicas_usage_delete after delete on replicas
  referencing old table as old_rows for each statement execute function sluice_replicas_usage();

-- Moves every delta into rse_usage in one statement; safe to call concurrently (rows deleted by
-- one caller are not seen by another). Returns the number of deltas folded.
create function fold_rse_usage() returns bigint language sql as $$
  with moved as (
    delete from rse_usage_delta returning vo, rse_id, files, bytes
  ), summed as (
    select vo, rse_id, sum(files) as files, sum(bytes) as bytes, count(*) as n from moved group by vo, rse_id
  ), applied as (
    insert into rse_usage as u (vo, rse_id, files, bytes, updated_at)
    select vo, rse_id, files, bytes, now() from summed order by vo, rse_id
    on conflict (vo, rse_id) do update set files = u.files + excluded.files, bytes = u.bytes + excluded.bytes, updated_at = now()
  )
  select coalesce(sum(n), 0)::bigint from summed
$$;

-- Replicas that exist before this migration: counted once here.
insert into rse_usage (vo, rse_id, files, bytes)
  select r.vo, r.rse_id, count(*), coalesce(sum(d.bytes), 0)
  from replicas r join dids d on d.vo = r.vo and d.scope = r.scope and d.name = r.name
  where r.state = 'AVAILABLE'
  group by r.vo, r.rse_id;
