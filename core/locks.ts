/**
 * Locks and what hangs off them, changed only here and always set-based, in the caller's
 * transaction: a lock statement also moves the replica's lock_cnt and tombstone, the account's
 * usage, the rule's counters (the rules trigger derives the state) and the live transfer request.
 *
 * The conveyor calls markReplicaAvailable / markRequestFailed when a transfer ends.
 */
import type { TransactionSql } from './db.ts';
import { PG, pgCode } from './errors.ts';

/** Default time an unlocked replica is kept before the reaper may delete it (purge: none). */
export const DEFAULT_TOMBSTONE_GRACE_SECONDS = 3600;

/** Column-wise (file, RSE) pairs to lock: 200k small objects cost more than six arrays. */
export interface LockBatch {
  scopes: string[];
  names: string[];
  rseIds: number[];
  bytes: number[];
  adler32: string[];
  /** Path of the replica under the RSE prefix, used when the replica does not exist yet. */
  paths: string[];
}

export interface RuleRef {
  vo: string;
  id: string;
  account: string;
  activity: string;
  priority: number;
}

export interface LockCounts {
  ok: number;
  replicating: number;
  /** Live transfer requests created (not counting existing ones this rule now shares). */
  requests: number;
}

export function emptyBatch(): LockBatch {
  return { scopes: [], names: [], rseIds: [], bytes: [], adler32: [], paths: [] };
}

/**
 * Creates the rule's locks on (file, RSE) pairs it does not hold yet. A missing replica is
 * created COPYING with one QUEUED request; an existing live request for the same (file,
 * destination) is shared and takes the higher priority. A bad or unavailable replica is brought
 * back to COPYING and re-transferred; one being deleted gets its request too, which waits until
 * the reaper's delete is over and the reaper hands the replica over as COPYING. Callers hold the rule row lock, so
 * a duplicate lock is a primary-key error (never a silent double count).
 *
 * Two forms of the same statement: the fast one updates the replicas that exist and plainly
 * inserts the others and their requests; it runs in a savepoint and, when a concurrent writer
 * created one of those replicas or a live request first (unique violation), gives way to the
 * upsert form. Speculative insertion (ON CONFLICT) costs a second index pass and a confirm
 * record per row: on a 100,000-file rule (200,000 replicas and requests) the fast form takes
 * about 40% less database time.
 */
export async function createLocks(tx: TransactionSql, rule: RuleRef, b: LockBatch): Promise<LockCounts> {
  return createLocksPipelined(tx, rule, [b]);
}

/**
 * createLocks over batches that may still be in the making: each batch's statement is sent as
 * soon as the batch is ready, so the database writes one batch while the caller prepares the
 * next (placement and lfn2pfn paths of a 100,000-file rule are a second of JS that otherwise
 * waits for the database, and the database for it). All batches are one savepoint: the upsert
 * fallback redoes them all, in order.
 */
export async function createLocksPipelined(tx: TransactionSql, rule: RuleRef, batches: Iterable<LockBatch> | AsyncIterable<LockBatch>): Promise<LockCounts> {
  const seen: LockBatch[] = [];
  const iterator = (batches as AsyncIterable<LockBatch>)[Symbol.asyncIterator]?.() ?? (batches as Iterable<LockBatch>)[Symbol.iterator]();
  const next = async () => {
    const r = await iterator.next();
    if (r.done) return undefined;
    if (r.value.scopes.length) seen.push(r.value);
    return r.value;
  };
  let total = 0;
  const sum = (parts: LockCounts[]) =>
    parts.reduce((a, c) => ({ ok: a.ok + c.ok, replicating: a.replicating + c.replicating, requests: a.requests + c.requests }), { ok: 0, replicating: 0, requests: 0 });
  try {
    return await tx.savepoint(async (sp) => {
      const sent: Promise<LockCounts>[] = [];
      for (let b = await next(); b; b = await next()) {
        if (b.scopes.length === 0) continue;
        total += b.scopes.length;
        // Big batches sort and hash in memory rather than spilling (one rule on 100k files).
        if (total > 20_000 && total - b.scopes.length <= 20_000) sent.push(noCounts(sp`set local work_mem = '128MB'`.execute()));
        sent.push(createLocksFast(sp, rule, b));
        // A rejection is taken by Promise.all below; until then it must not count as unhandled.
        sent[sent.length - 1].catch(() => {});
      }
      return sum(await Promise.all(sent));
    });
  } catch (e) {
    if (pgCode(e) !== PG.uniqueViolation) throw e;
    // Whatever the batches not yet drawn are, they belong to this rule too.
    while (await next());
    if (total > 20_000) await tx`set local work_mem = '128MB'`;
    const parts: LockCounts[] = [];
    for (const b of seen) parts.push(await createLocksUpsert(tx, rule, b));
    return sum(parts);
  }
}

async function noCounts(q: PromiseLike<unknown>): Promise<LockCounts> {
  await q;
  return { ok: 0, replicating: 0, requests: 0 };
}

/** `t`: the batch as rows. */
function batchRows(tx: TransactionSql, b: LockBatch) {
  return tx`
    t as (
      select * from unnest(
        ${b.scopes}::text[], ${b.names}::text[], ${b.rseIds}::bigint[], ${b.bytes}::bigint[],
        ${b.adler32}::text[], ${b.paths}::text[]
      ) as t(scope, name, rse_id, bytes, adler32, path)
    )`;
}

/** Usage and rule counters, shared by both forms: `lk` (the new locks' states) and `rq` (requests, `inserted`) are given. */
function countersAndResult(tx: TransactionSql, rule: RuleRef) {
  return tx`
    usage as (
      insert into account_usage as u (vo, account, rse_id, files, bytes)
      select ${rule.vo}, ${rule.account}, rse_id, count(*), sum(bytes) from t group by rse_id
      on conflict (vo, account, rse_id) do update set files = u.files + excluded.files, bytes = u.bytes + excluded.bytes
      returning 1
    ), counts as (
      select count(*) filter (where state = 'OK')::int as ok, count(*) filter (where state <> 'OK')::int as replicating from lk
    ), upd as (
      update rules set
        locks_ok_cnt = locks_ok_cnt + (select ok from counts),
        locks_replicating_cnt = locks_replicating_cnt + (select replicating from counts)
      where id = ${rule.id}::uuid
      returning 1
    )
    select (select ok from counts) as ok, (select replicating from counts) as replicating,
           (select count(*) filter (where inserted) from rq)::int as requests`;
}

/** An existing replica gaining a lock. */
const REPLICA_UPDATE = (tx: TransactionSql) => tx`
  lock_cnt = r.lock_cnt + 1,
  tombstone = null,
  -- BEING_DELETED stays so until the reaper's storage delete is over (it then hands the
  -- replica over as COPYING): a transfer must never land before that delete does.
  state = case when r.state in ('AVAILABLE', 'COPYING', 'BEING_DELETED') then r.state else 'COPYING' end,
  updated_at = now()`;

async function createLocksFast(tx: TransactionSql, rule: RuleRef, b: LockBatch): Promise<LockCounts> {
  // ex: replicas that exist, updated (RETURNING gives the state after any concurrent
  // markReplicaAvailable committed: the update waits for that row). The rest are new: plain
  // inserts, and a new replica has no live request to share (the reaper deletes no replica with
  // one), so its request is a plain insert too; anything that slipped in meanwhile is a unique
  // violation and the caller falls back to the upsert form.
  const q = tx<{ ok: number; replicating: number; requests: number }[]>`
    with ${batchRows(tx, b)}, ex as (
      update replicas r set ${REPLICA_UPDATE(tx)}
      from t
      where r.vo = ${rule.vo} and r.scope = t.scope and r.name = t.name and r.rse_id = t.rse_id
      returning r.scope, r.name, r.rse_id, r.state
    ), todo as (
      select t.*, ex.state as ex_state from t left join ex on ex.scope = t.scope and ex.name = t.name and ex.rse_id = t.rse_id
    ), rep as (
      insert into replicas (vo, scope, name, rse_id, state, path, lock_cnt)
      select ${rule.vo}, scope, name, rse_id, 'COPYING', path, 1 from todo where ex_state is null
      returning 1
    ), lk as (
      insert into locks (vo, rule_id, scope, name, rse_id, state, bytes)
      select ${rule.vo}, ${rule.id}::uuid, scope, name, rse_id, case when ex_state = 'AVAILABLE' then 'OK' else 'REPLICATING' end, bytes
      from todo
      returning state
    ), rq_new as (
      insert into requests (vo, scope, name, dest_rse_id, state, bytes, adler32, activity, priority)
      select ${rule.vo}, scope, name, rse_id, 'QUEUED', bytes, adler32, ${rule.activity}, ${rule.priority}
      from todo where ex_state is null
      returning true as inserted
    ), rq_shared as (
      insert into requests as q (vo, scope, name, dest_rse_id, state, bytes, adler32, activity, priority)
      select ${rule.vo}, scope, name, rse_id, 'QUEUED', bytes, adler32, ${rule.activity}, ${rule.priority}
      from todo where ex_state in ('COPYING', 'BEING_DELETED')
      on conflict (vo, scope, name, dest_rse_id) where state in ('QUEUED', 'ACTIVE') do update set
        priority = greatest(q.priority, excluded.priority),
        updated_at = now()
      returning (xmax = 0) as inserted
    ), rq as (
      select inserted from rq_new union all select inserted from rq_shared
    ), ${countersAndResult(tx, rule)}`.execute();
  const [row] = await q;
  return { ok: row.ok, replicating: row.replicating, requests: row.requests };
}

async function createLocksUpsert(tx: TransactionSql, rule: RuleRef, b: LockBatch): Promise<LockCounts> {
  // The replica upsert runs first: its RETURNING gives the state after any concurrent
  // markReplicaAvailable committed (the upsert waits for that row), so a lock never stays
  // REPLICATING on a replica that is already AVAILABLE.
  const [row] = await tx<{ ok: number; replicating: number; requests: number }[]>`
    with ${batchRows(tx, b)}, rep as (
      insert into replicas as r (vo, scope, name, rse_id, state, path, lock_cnt)
      select ${rule.vo}, scope, name, rse_id, 'COPYING', path, 1 from t
      on conflict (vo, scope, name, rse_id) do update set ${REPLICA_UPDATE(tx)}
      returning r.scope, r.name, r.rse_id, r.state
    ), lk as (
      insert into locks (vo, rule_id, scope, name, rse_id, state, bytes)
      select ${rule.vo}, ${rule.id}::uuid, t.scope, t.name, t.rse_id,
             case when rep.state = 'AVAILABLE' then 'OK' else 'REPLICATING' end, t.bytes
      from t join rep on rep.scope = t.scope and rep.name = t.name and rep.rse_id = t.rse_id
      returning state
    ), rq as (
      insert into requests as q (vo, scope, name, dest_rse_id, state, bytes, adler32, activity, priority)
      select ${rule.vo}, t.scope, t.name, t.rse_id, 'QUEUED', t.bytes, t.adler32, ${rule.activity}, ${rule.priority}
      from t join rep on rep.scope = t.scope and rep.name = t.name and rep.rse_id = t.rse_id
      where rep.state in ('COPYING', 'BEING_DELETED')
      on conflict (vo, scope, name, dest_rse_id) where state in ('QUEUED', 'ACTIVE') do update set
        priority = greatest(q.priority, excluded.priority),
        updated_at = now()
      returning (xmax = 0) as inserted
    ), ${countersAndResult(tx, rule)}`;
  return { ok: row.ok, replicating: row.replicating, requests: row.requests };
}

/** Which of a rule's locks to release. */
export type LockSelection =
  | { all: true }
  | { files: { scopes: string[]; names: string[] } }
  | { locks: { scopes: string[]; names: string[]; rseIds: number[] } };

export interface ReleaseOptions {
  /** Tombstone replicas that lose their last lock now (the rule's purge_replicas). */
  purge: boolean;
  graceSeconds?: number;
}

export interface ReleaseCounts {
  released: number;
  ok: number;
  replicating: number;
  stuck: number;
  /** Replicas left without any lock (now tombstoned). */
  unlocked: number;
}

/**
 * Releases locks of one rule: replica lock counts drop, replicas left without a lock get a
 * tombstone (now with purge, else after the grace), queued requests nobody wants any more are
 * cancelled, usage and rule counters follow.
 */
export async function releaseLocks(
  tx: TransactionSql,
  rule: { vo: string; id: string; account: string },
  which: LockSelection,
  options: ReleaseOptions,
): Promise<ReleaseCounts> {
  const grace = options.purge ? 0 : (options.graceSeconds ?? DEFAULT_TOMBSTONE_GRACE_SECONDS);
  const filter =
    'all' in which
      ? tx``
      : 'files' in which
        ? tx`and (l.scope, l.name) in (select * from unnest(${which.files.scopes}::text[], ${which.files.names}::text[]))`
        : tx`and (l.scope, l.name, l.rse_id) in (select * from unnest(${which.locks.scopes}::text[], ${which.locks.names}::text[], ${which.locks.rseIds}::bigint[]))`;
  const [row] = await tx<ReleaseCounts[]>`
    with del as (
      delete from locks l where l.rule_id = ${rule.id}::uuid ${filter}
      returning l.scope, l.name, l.rse_id, l.state, l.bytes
    ), per_replica as (
      select scope, name, rse_id, count(*)::int as n from del group by scope, name, rse_id
    ), rep as (
      update replicas r set
        lock_cnt = r.lock_cnt - p.n,
        tombstone = case when r.lock_cnt - p.n = 0 then now() + make_interval(secs => ${grace}) else r.tombstone end,
        updated_at = now()
      from per_replica p
      where r.vo = ${rule.vo} and r.scope = p.scope and r.name = p.name and r.rse_id = p.rse_id
      returning r.scope, r.name, r.rse_id, r.lock_cnt
    ), cancel as (
      -- nobody wants the copy any more; an ACTIVE transfer finishes and its replica is reaped
      update requests q set state = 'FAILED', error = 'cancelled: no rule needs this replica any more', updated_at = now()
      from rep
      where rep.lock_cnt = 0 and q.vo = ${rule.vo} and q.scope = rep.scope and q.name = rep.name
        and q.dest_rse_id = rep.rse_id and q.state = 'QUEUED'
      returning 1
    ), per_rse as (
      select rse_id, count(*) as files, sum(bytes) as bytes from del group by rse_id
    ), usage as (
      update account_usage u set files = u.files - d.files, bytes = u.bytes - d.bytes
      from per_rse d
      where u.vo = ${rule.vo} and u.account = ${rule.account} and u.rse_id = d.rse_id
      returning 1
    ), counts as (
      select count(*)::int as released,
             count(*) filter (where state = 'OK')::int as ok,
             count(*) filter (where state = 'REPLICATING')::int as replicating,
             count(*) filter (where state = 'STUCK')::int as stuck
      from del
    ), upd as (
      update rules set
        locks_ok_cnt = locks_ok_cnt - (select ok from counts),
        locks_replicating_cnt = locks_replicating_cnt - (select replicating from counts),
        locks_stuck_cnt = locks_stuck_cnt - (select stuck from counts)
      where id = ${rule.id}::uuid and (select released from counts) > 0
      returning 1
    )
    select c.released, c.ok, c.replicating, c.stuck,
           (select count(*) from rep where lock_cnt = 0)::int as unlocked
    from counts c`;
  return { released: row.released, ok: row.ok, replicating: row.replicating, stuck: row.stuck, unlocked: row.unlocked };
}

type StateChange = { rule_id: string; old_state: string; new_state: string };

/**
 * Applies the counter deltas of lock state changes to their rules (the rules trigger derives the
 * state), in rule id order so that concurrent callers queue instead of deadlocking.
 */
async function applyCounterDeltas(tx: TransactionSql, changes: StateChange[], error: string | null): Promise<void> {
  if (changes.length === 0) return;
  const deltas = new Map<string, { ok: number; replicating: number; stuck: number }>();
  const key = { OK: 'ok', REPLICATING: 'replicating', STUCK: 'stuck' } as const;
  for (const c of changes) {
    const d = deltas.get(c.rule_id) ?? { ok: 0, replicating: 0, stuck: 0 };
    d[key[c.old_state as keyof typeof key]] -= 1;
    d[key[c.new_state as keyof typeof key]] += 1;
    deltas.set(c.rule_id, d);
  }
  const ids = [...deltas.keys()].sort();
  await tx`
    update rules r set
      locks_ok_cnt = r.locks_ok_cnt + d.ok,
      locks_replicating_cnt = r.locks_replicating_cnt + d.replicating,
      locks_stuck_cnt = r.locks_stuck_cnt + d.stuck,
      error = coalesce(${error}::text, r.error)
    from unnest(${ids}::uuid[], ${ids.map((i) => deltas.get(i)!.ok)}::int[], ${ids.map((i) => deltas.get(i)!.replicating)}::int[],
                ${ids.map((i) => deltas.get(i)!.stuck)}::int[]) as d(rule_id, ok, replicating, stuck)
    where r.id = d.rule_id`;
}

export interface ReplicaKey {
  vo: string;
  scope: string;
  name: string;
  rseId: number;
}

/**
 * A transfer to (file, RSE) succeeded and was verified: the replica becomes AVAILABLE, its live
 * request DONE, its locks OK, and the rules holding them advance (OK when all their locks are).
 * Returns updated=false (and changes nothing) when the replica is gone or being deleted.
 */
export async function markReplicaAvailable(tx: TransactionSql, replica: ReplicaKey): Promise<{ updated: boolean; locks: number }> {
  const { updated, locks } = await markReplicasAvailable(tx, [replica]);
  return { updated: updated.length === 1, locks };
}

/**
 * markReplicaAvailable for a batch in four statements, whatever its size: the conveyor finishes
 * a batch of transfers at once, and a statement per file made finishing (not copying) the limit.
 * Returns the replicas that were updated (the others are gone or being deleted: nobody wants
 * those bytes any more).
 */
export async function markReplicasAvailable(tx: TransactionSql, replicas: ReplicaKey[]): Promise<{ updated: ReplicaKey[]; locks: number }> {
  if (replicas.length === 0) return { updated: [], locks: 0 };
  const col = <K extends keyof ReplicaKey>(k: K) => replicas.map((r) => r[k]);
  // Rows are locked in key order so that concurrent finishers queue instead of deadlocking. This
  // statement runs first on purpose: the lock update below starts after it holds the replica
  // rows, so it sees the locks of any rule transaction that upserted those replicas first.
  const rep = await tx<{ vo: string; scope: string; name: string; rse_id: number }[]>`
    with t as (
      select * from unnest(${col('vo')}::text[], ${col('scope')}::text[], ${col('name')}::text[], ${col('rseId')}::bigint[])
        as t(vo, scope, name, rse_id)
    ), target as (
      select r.vo, r.scope, r.name, r.rse_id from replicas r
      join t on r.vo = t.vo and r.scope = t.scope and r.name = t.name and r.rse_id = t.rse_id
      where r.state in ('COPYING', 'AVAILABLE')
      order by r.vo, r.scope, r.name, r.rse_id
      for update of r
    )
    update replicas r set state = 'AVAILABLE', updated_at = now(),
                          tombstone = case when r.lock_cnt = 0 then coalesce(r.tombstone, now()) else null end
    from target
    where r.vo = target.vo and r.scope = target.scope and r.name = target.name and r.rse_id = target.rse_id
    returning r.vo, r.scope, r.name, r.rse_id`;
  if (!rep.length) return { updated: [], locks: 0 };
  const u = { vo: rep.map((r) => r.vo), scope: rep.map((r) => r.scope), name: rep.map((r) => r.name), rse: rep.map((r) => r.rse_id) };
  await tx`
    update requests q set state = 'DONE', error = null, updated_at = now()
    from unnest(${u.vo}::text[], ${u.scope}::text[], ${u.name}::text[], ${u.rse}::bigint[]) as u(vo, scope, name, rse_id)
    where q.vo = u.vo and q.scope = u.scope and q.name = u.name and q.dest_rse_id = u.rse_id and q.state in ('QUEUED', 'ACTIVE')`;
  const changes = await tx<StateChange[]>`
    with u as (
      select * from unnest(${u.vo}::text[], ${u.scope}::text[], ${u.name}::text[], ${u.rse}::bigint[]) as u(vo, scope, name, rse_id)
    ), old as (
      select l.rule_id, l.scope, l.name, l.rse_id, l.state from locks l
      join u on l.vo = u.vo and l.scope = u.scope and l.name = u.name and l.rse_id = u.rse_id
      where l.state <> 'OK'
      order by l.rule_id, l.scope, l.name, l.rse_id for update of l
    )
    update locks l set state = 'OK', error = null, updated_at = now()
    from old where l.rule_id = old.rule_id and l.scope = old.scope and l.name = old.name and l.rse_id = old.rse_id
    returning l.rule_id, old.state as old_state, l.state as new_state`;
  await applyCounterDeltas(tx, changes, null);
  return { updated: rep.map((r) => ({ vo: r.vo, scope: r.scope, name: r.name, rseId: r.rse_id })), locks: changes.length };
}

/**
 * A transfer request failed for good (fatal error or retries exhausted): the request is FAILED
 * with the reason, the locks waiting for it become STUCK with the reason, and their rules turn
 * STUCK (the repairer takes over). Returns updated=false when the request was not live.
 */
export async function markRequestFailed(tx: TransactionSql, requestId: number, reason: string): Promise<{ updated: boolean; locks: number }> {
  const text = reason.slice(0, 4000);
  const [req] = await tx<{ vo: string; scope: string; name: string; dest_rse_id: number }[]>`
    update requests set state = 'FAILED', error = ${text}, updated_at = now()
    where id = ${requestId} and state in ('QUEUED', 'ACTIVE')
    returning vo, scope, name, dest_rse_id`;
  if (!req) return { updated: false, locks: 0 };
  const changes = await tx<StateChange[]>`
    with old as (
      select rule_id, scope, name, rse_id, state from locks
      where vo = ${req.vo} and scope = ${req.scope} and name = ${req.name} and rse_id = ${req.dest_rse_id} and state = 'REPLICATING'
      order by rule_id for update
    )
    update locks l set state = 'STUCK', error = ${text}, updated_at = now()
    from old where l.rule_id = old.rule_id and l.scope = old.scope and l.name = old.name and l.rse_id = old.rse_id
    returning l.rule_id, old.state as old_state, l.state as new_state`;
  await applyCounterDeltas(tx, changes, text);
  return { updated: true, locks: changes.length };
}

/**
 * Gives a rule's STUCK locks on (file, RSE) pairs another try at the same RSE (no other RSE
 * could take them): locks back to REPLICATING and a QUEUED request not before the delay.
 */
export async function retryStuckLocks(
  tx: TransactionSql,
  rule: RuleRef,
  locks: { scopes: string[]; names: string[]; rseIds: number[] },
  delaySeconds: number,
): Promise<number> {
  if (locks.scopes.length === 0) return 0;
  const changes = await tx<(StateChange & { scope: string; name: string; rse_id: number })[]>`
    with t as (select * from unnest(${locks.scopes}::text[], ${locks.names}::text[], ${locks.rseIds}::bigint[]) as t(scope, name, rse_id)),
    old as (
      select l.rule_id, l.scope, l.name, l.rse_id, l.state from locks l join t using (scope, name, rse_id)
      where l.rule_id = ${rule.id}::uuid and l.state = 'STUCK' for update of l
    )
    update locks l set state = 'REPLICATING', updated_at = now()
    from old where l.rule_id = old.rule_id and l.scope = old.scope and l.name = old.name and l.rse_id = old.rse_id
    returning l.rule_id, l.scope, l.name, l.rse_id, old.state as old_state, l.state as new_state`;
  if (!changes.length) return 0;
  await tx`
    insert into requests as q (vo, scope, name, dest_rse_id, state, bytes, adler32, activity, priority, not_before)
    select ${rule.vo}, d.scope, d.name, t.rse_id, 'QUEUED', d.bytes, d.adler32, ${rule.activity}, ${rule.priority},
           now() + make_interval(secs => ${delaySeconds})
    from unnest(${changes.map((c) => c.scope)}::text[], ${changes.map((c) => c.name)}::text[], ${changes.map((c) => c.rse_id)}::bigint[]) as t(scope, name, rse_id)
    join dids d on d.vo = ${rule.vo} and d.scope = t.scope and d.name = t.name
    on conflict (vo, scope, name, dest_rse_id) where state in ('QUEUED', 'ACTIVE') do update set
      priority = greatest(q.priority, excluded.priority), updated_at = now()`;
  await applyCounterDeltas(tx, changes, null);
  return changes.length;
}
