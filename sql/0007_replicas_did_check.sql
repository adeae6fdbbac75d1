-- replicas (vo, scope, name) -> dids, checked once per statement instead of once per row.
--
-- The foreign key ran a trigger per replica: a rule on 100,000 files with two copies creates
-- 200,000 replicas in one statement, and the per-row key checks were about 1.3 s of its
-- database time (a fifth of it). The statement triggers below keep the same guarantee with one
-- set-based lookup per statement:
--   * a replica inserted (or re-keyed) for a DID that does not exist is refused (23503);
--   * deleting (or re-keying) a DID that replicas still name is refused (23503).
-- Race: the foreign key locked each DID row FOR KEY SHARE so that a concurrent delete waited.
-- Here a statement that deletes or re-keys DIDs first takes SHARE on replicas: it waits for
-- every transaction that is inserting replicas and blocks new ones until it commits, so its
-- check sees them (Sluice runs READ COMMITTED; a REPEATABLE READ inserter could miss such a delete). (Nothing in Sluice deletes DIDs today; this keeps the guarantee for whoever
-- does, and costs that rare statement a table lock instead of every replica a row lock.)

alter table replicas drop constraint replicas_vo_scope_name_fkey;

create function sluice_replicas_did_exists() returns trigger language plpgsql as $$
declare
  missing record;
begin
  select n.vo, n.scope, n.name into missing
  from new_rows n
  where not exists (select 1 from dids d where d.vo = n.vo and d.scope = n.scope and d.name = n.name)
  limit 1;
  if found then
    raise foreign_key_violation using
      message = format('replica of %s:%s in VO %s names a DID that does not exist', missing.scope, missing.name, missing.vo),
      table = 'replicas', constraint = 'replicas_did_exists';
  end if;
  return null;
end $$;

create trigger replicas_did_exists_insert after insert on replicas
  referencing new table as new_rows for each statement execute function sluice_replicas_did_exists();
-- Replica keys never change in Sluice; should one, it is checked row by row (no transition
-- table may go with a column list, and a check on every update would tax lock counting).
create function sluice_replica_rekeyed() returns trigger language plpgsql as $$
begin
  if not exists (select 1 from dids d where d.vo = new.vo and d.scope = new.scope and d.name = new.name) then
    raise foreign_key_violation using
      message = format('replica of %s:%s in VO %s names a DID that does not exist', new.scope, new.name, new.vo),
      table = 'replicas', constraint = 'replicas_did_exists';
  end if;
  return new;
end $$;

create trigger replicas_did_exists_update before update of vo, scope, name on replicas
  for each row execute function sluice_replica_rekeyed();

create function sluice_dids_lock_replicas() returns trigger language plpgsql as $$
begin
  lock table replicas in share mode;
  return null;
end $$;

create function sluice_dids_still_replicated() returns trigger language plpgsql as $$
declare
  kept record;
begin
  select o.vo, o.scope, o.name into kept
  from old_rows o
  where exists (select 1 from replicas r where r.vo = o.vo and r.scope = o.scope and r.name = o.name)
  limit 1;
  if found then
    raise foreign_key_violation using
      message = format('DID %s:%s in VO %s still has replicas', kept.scope, kept.name, kept.vo),
      table = 'dids', constraint = 'replicas_did_exists';
  end if;
  return null;
end $$;

create function sluice_did_rekeyed() returns trigger language plpgsql as $$
begin
  if (old.vo, old.scope, old.name) is distinct from (new.vo, new.scope, new.name)
     and exists (select 1 from replicas r where r.vo = old.vo and r.scope = old.scope and r.name = old.name) then
    raise foreign_key_violation using
      message = format('DID %s:%s in VO %s still has replicas', old.scope, old.name, old.vo),
      table = 'dids', constraint = 'replicas_did_exists';
  end if;
  return null;
end $$;

create trigger dids_lock_replicas_delete before delete on dids
  for each statement execute function sluice_dids_lock_replicas();
create trigger dids_lock_replicas_update before update of vo, scope, name on dids
  for each statement execute function sluice_dids_lock_replicas();
create trigger dids_still_replicated_delete after delete on dids
  referencing old table as old_rows for each statement execute function sluice_dids_still_replicated();
create trigger dids_still_replicated_update after update of vo, scope, name on dids
  for each row execute function sluice_did_rekeyed();
