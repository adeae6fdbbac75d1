/**
 * Transfer requests: the SQL of the conveyor's cycle and the API's read views.
 *
 *   prepareRequests   QUEUED without a source -> source + link assigned, or a waiting reason
 *   claimForLink      free slots of one link (link + endpoint limits, fair share) -> ACTIVE + lease
 *   heartbeat         extend this process's leases and write byte progress, in one statement
 *   finishOutcomes    attempts recorded; DONE (replica AVAILABLE, locks OK) | retry | FAILED (STUCK)
 *   recoverExpired    leases nobody extended -> a 'Lost' attempt, back to QUEUED (or FAILED)
 *
 * Request states stay QUEUED/ACTIVE/DONE/FAILED; "waiting for a source" is QUEUED with
 * source_rse_id null and waiting_reason set.
 */
import type { Sql, TransactionSql } from './db.ts';
import { withTransaction } from './db.ts';
import { NotFound } from './errors.ts';
import { allocateSlots, type QueueState, type SlotAllocation } from './fairshare.ts';
import { markReplicasAvailable, markRequestFailed } from './locks.ts';
import { voRses } from './rules.ts';
import { allowedSources, applyPolicySourceRanking, linkHealth, rankSources, sourceExpressions, sourceReplicas, type RankOptions } from './sources.ts';
import type { PolicyRegistry } from '../policies/registry.ts';

export type RequestState = 'QUEUED' | 'ACTIVE' | 'DONE' | 'FAILED';
export type TransferMode = 'tpc-pull' | 'tpc-push' | 'stream';

// ---------------------------------------------------------------------------------------------
// Prepare: sources and links

export interface PrepareOptions {
  batch: number;
  /** A request with no usable source looks again after this long (or when woken). */
  recheckSeconds: number;
  rank?: RankOptions;
  /** Cached link health (failure rate, queue) to rank sources with; fetched when absent. */
  health?: Map<number, { failureRate: number | null; queued: number; limit: number }>;
  /** VO policy packages: their rankSources hook filters or reorders the ranked sources. */
  policies?: PolicyRegistry;
}

export interface PrepareResult {
  assigned: number;
  waiting: number;
}

/** Creates the links between these endpoint pairs if missing; returns "src:dst" -> link id. */
export async function ensureLinks(sql: Sql | TransactionSql, pairs: Array<[number, number]>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (pairs.length === 0) return out;
  const uniq = [...new Map(pairs.map((p) => [`${p[0]}:${p[1]}`, p])).values()];
  const src = uniq.map((p) => p[0]);
  const dst = uniq.map((p) => p[1]);
  await sql`
    insert into links (src_endpoint_id, dst_endpoint_id)
    select * from unnest(${src}::bigint[], ${dst}::bigint[]) order by 1, 2
    on conflict (src_endpoint_id, dst_endpoint_id) do nothing`;
  const rows = await sql<{ id: number; src_endpoint_id: number; dst_endpoint_id: number }[]>`
    select l.id, l.src_endpoint_id, l.dst_endpoint_id from links l
    join unnest(${src}::bigint[], ${dst}::bigint[]) as t(s, d) on l.src_endpoint_id = t.s and l.dst_endpoint_id = t.d`;
  for (const r of rows) out.set(`${r.src_endpoint_id}:${r.dst_endpoint_id}`, r.id);
  return out;
}

/**
 * Gives QUEUED requests without a source (new, retried after their backoff, or waiting for a
 * replica) their best source and link; the rest get a waiting reason and are looked at again
 * after `recheckSeconds`. One transaction per batch; rows held by another conveyor are skipped.
 */
export async function prepareRequests(sql: Sql, opts: PrepareOptions): Promise<PrepareResult> {
  return withTransaction(sql, async (tx) => {
    const reqs = await tx<{ id: number; vo: string; scope: string; name: string; activity: string; dest_rse_id: number; dest_endpoint_id: number; last_source_rse_id: number | null }[]>`
      select q.id, q.vo, q.scope, q.name, q.activity, q.dest_rse_id, d.endpoint_id as dest_endpoint_id, q.last_source_rse_id
      from requests q join rses d on d.id = q.dest_rse_id
      where q.state = 'QUEUED' and q.source_rse_id is null
        and coalesce(q.not_before, '-infinity'::timestamptz) <= now()
        -- The reaper is still deleting the destination's old bytes: copying now could be undone
        -- by that delete. The reaper hands the replica over as COPYING when it is done.
        and not exists (
          select 1 from replicas x
          where x.vo = q.vo and x.scope = q.scope and x.name = q.name and x.rse_id = q.dest_rse_id and x.state = 'BEING_DELETED')
      order by coalesce(q.not_before, '-infinity'::timestamptz)
      limit ${opts.batch}
      for update of q skip locked`;
    if (reqs.length === 0) return { assigned: 0, waiting: 0 };
    const ids = reqs.map((r) => r.id);
    const [sources, expressions] = await Promise.all([sourceReplicas(tx, ids), sourceExpressions(tx, ids)]);
    const byRequest = new Map<number, typeof sources>();
    for (const s of sources) {
      const list = byRequest.get(s.request_id) ?? [];
      list.push(s);
      byRequest.set(s.request_id, list);
    }
    // Source expressions are evaluated over the VO's RSEs once per VO per batch.
    const rsesByVo = new Map<string, Awaited<ReturnType<typeof voRses>>>();
    // Only VOs whose package ranks sources pay for the policy call (one per request).
    const policyByVo = new Map<string, Awaited<ReturnType<PolicyRegistry['forVo']>> | Error>();
    for (const vo of new Set(reqs.map((r) => r.vo))) {
      if (!opts.policies) break;
      const policy = await opts.policies.forVo(vo).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      if (policy instanceof Error || policy.hooks.has('rankSources')) policyByVo.set(vo, policy);
    }
    for (const vo of new Set(reqs.filter((r) => policyByVo.has(r.vo) || expressions.get(r.id)?.some((e) => e !== null)).map((r) => r.vo))) {
      rsesByVo.set(vo, await voRses(tx, vo));
    }
    const links = await ensureLinks(
      tx,
      sources.map((s) => [s.endpoint_id, reqs.find((r) => r.id === s.request_id)!.dest_endpoint_id] as [number, number]),
    );
    const health = opts.health ?? (await linkHealth(tx, [...new Set(links.values())], { queueCap: 1000 }));

    const assigned = { ids: [] as number[], sources: [] as number[], links: [] as number[] };
    const waiting = { ids: [] as number[], reasons: [] as string[] };
    for (const r of reqs) {
      const all = byRequest.get(r.id) ?? [];
      const exprs = expressions.get(r.id) ?? [];
      const allowed = exprs.some((e) => e !== null) ? allowedSources(exprs, rsesByVo.get(r.vo) ?? []) : undefined;
      const usable = allowed ? all.filter((s) => allowed.has(s.rse_id)) : all;
      if (usable.length === 0) {
        waiting.ids.push(r.id);
        waiting.reasons.push(
          all.length === 0
            ? 'no AVAILABLE replica of the file on a readable RSE; waiting for one to appear'
            : `no AVAILABLE replica matches the source expression${exprs.length > 1 ? 's' : ''} ${exprs.filter((e) => e !== null).map((e) => `'${e}'`).join(', ')}; waiting for one to appear`,
        );
        continue;
      }
      const ranked = rankSources(
        usable.map((s) => {
          const linkId = links.get(`${s.endpoint_id}:${r.dest_endpoint_id}`)!;
          const h = health.get(linkId);
          return { rseId: s.rse_id, distance: s.distance, failureRate: h?.failureRate ?? null, queued: h?.queued ?? 0, limit: h?.limit ?? 10 };
        }),
        r.last_source_rse_id,
        opts.rank,
      );
      let choice = ranked;
      const policy = policyByVo.get(r.vo);
      if (policy) {
        // A package's error or refusal holds back only this request, with the reason shown.
        let reason: string | undefined;
        if (policy instanceof Error) reason = `policy package could not be loaded: ${policy.message}`;
        else {
          const rses = new Map((rsesByVo.get(r.vo) ?? []).map((x) => [x.id, x]));
          const dest = rses.get(r.dest_rse_id);
          try {
            const out = await applyPolicySourceRanking(policy, ranked, rses, {
              vo: r.vo,
              did: { scope: r.scope, name: r.name },
              destination: { name: dest?.name ?? '', attributes: dest?.attributes ?? {} },
              activity: r.activity,
            });
            choice = out.ranked;
            reason = out.reason;
          } catch (e) {
            reason = `policy '${policy.name}' rankSources failed: ${(e as Error).message}`;
          }
        }
        if (reason || choice.length === 0) {
          waiting.ids.push(r.id);
          waiting.reasons.push(reason ?? 'the VO policy kept no source');
          continue;
        }
      }
      const best = usable.find((s) => s.rse_id === choice[0].rseId)!;
      const linkId = links.get(`${best.endpoint_id}:${r.dest_endpoint_id}`)!;
      assigned.ids.push(r.id);
      assigned.sources.push(best.rse_id);
      assigned.links.push(linkId);
      const h = health.get(linkId);
      if (h) h.queued++;
    }
    if (assigned.ids.length) {
      await tx`
        update requests q set source_rse_id = t.src, link_id = t.link, waiting_reason = null, updated_at = now()
        from unnest(${assigned.ids}::bigint[], ${assigned.sources}::bigint[], ${assigned.links}::bigint[]) as t(id, src, link)
        where q.id = t.id`;
    }
    if (waiting.ids.length) {
      await tx`
        update requests q set waiting_reason = t.reason, not_before = now() + make_interval(secs => ${opts.recheckSeconds}), updated_at = now()
        from unnest(${waiting.ids}::bigint[], ${waiting.reasons}::text[]) as t(id, reason)
        where q.id = t.id`;
    }
    return { assigned: assigned.ids.length, waiting: waiting.ids.length };
  });
}

/** Waiting requests of these files look for a source again now (a replica appeared). */
export async function wakeWaitingRequests(sql: Sql, vo: string, files: Array<{ scope: string; name: string }>): Promise<number> {
  if (files.length === 0) return 0;
  const r = await sql`
    update requests q set not_before = null, updated_at = now()
    from unnest(${files.map((f) => f.scope)}::text[], ${files.map((f) => f.name)}::text[]) as t(scope, name)
    where q.vo = ${vo} and q.scope = t.scope and q.name = t.name and q.state = 'QUEUED' and q.source_rse_id is null`;
  return r.count;
}

// ---------------------------------------------------------------------------------------------
// Claim

/** Links with claimable requests: a loose index scan, one index probe per link. */
export async function linksWithQueue(sql: Sql | TransactionSql): Promise<number[]> {
  const rows = await sql<{ link_id: number }[]>`
    with recursive l(link_id) as (
      (select link_id from requests where state = 'QUEUED' and source_rse_id is not null order by link_id limit 1)
      union all
      select (select q.link_id from requests q
              where q.state = 'QUEUED' and q.source_rse_id is not null and q.link_id > l.link_id
              order by q.link_id limit 1)
      from l where l.link_id is not null
    )
    select link_id from l where link_id is not null`;
  return rows.map((r) => r.link_id);
}

export interface ClaimedRequest {
  id: number;
  vo: string;
  scope: string;
  name: string;
  bytes: number;
  adler32: string;
  activity: string;
  priority: number;
  /** Attempts including this one. */
  attempts: number;
  max_attempts: number | null;
  source_rse_id: number;
  dest_rse_id: number;
  link_id: number;
  /** Paths of the replicas under their RSE prefixes; null when the replica row is gone. */
  source_path: string | null;
  dest_path: string | null;
  started_at: Date;
}

export interface ClaimOptions {
  owner: string;
  leaseSeconds: number;
  /** This process takes at most this many (its own concurrency cap). */
  max: number;
}

export interface LinkSlots {
  linkId: number;
  limit: number;
  active: number;
  free: number;
  allocations: SlotAllocation[];
  claimed: ClaimedRequest[];
}

const SLOT_LOCK = 'sluice.endpoint-slots';

/**
 * Claims what one link may start now, in one transaction: free = min(link limit - link active,
 * source endpoint outbound limit - its active, destination inbound limit - its active, max),
 * split by fair share (VO, then activity, then priority), claimed oldest first with SKIP LOCKED
 * and a lease. The count-then-claim runs under transaction advisory locks on both endpoints
 * (in id order: no deadlock), so two conveyors cannot both spend the same free slots.
 */
export async function claimForLink(sql: Sql, linkId: number, opts: ClaimOptions): Promise<LinkSlots> {
  return withTransaction(sql, async (tx) => {
    const [link] = await tx<{ limit_active: number; vo_shares: Record<string, number>; src: number; dst: number; max_outbound: number | null; max_inbound: number | null }[]>`
      select l.limit_active, l.vo_shares, l.src_endpoint_id as src, l.dst_endpoint_id as dst, se.max_outbound, de.max_inbound
      from links l join storage_endpoints se on se.id = l.src_endpoint_id join storage_endpoints de on de.id = l.dst_endpoint_id
      where l.id = ${linkId}`;
    const empty: LinkSlots = { linkId, limit: link?.limit_active ?? 0, active: 0, free: 0, allocations: [], claimed: [] };
    if (!link || opts.max <= 0) return empty;
    const [a, b] = link.src <= link.dst ? [link.src, link.dst] : [link.dst, link.src];
    await tx`select pg_advisory_xact_lock(hashtext(${SLOT_LOCK}), ${a}::int)`;
    if (b !== a) await tx`select pg_advisory_xact_lock(hashtext(${SLOT_LOCK}), ${b}::int)`;
    const [act] = await tx<{ link: number; outbound: number; inbound: number }[]>`
      select (select count(*)::int from requests where link_id = ${linkId} and state = 'ACTIVE') as link,
             ${link.max_outbound === null ? tx`0` : tx`(select count(*)::int from requests q join links k on k.id = q.link_id where q.state = 'ACTIVE' and k.src_endpoint_id = ${link.src})`} as outbound,
             ${link.max_inbound === null ? tx`0` : tx`(select count(*)::int from requests q join links k on k.id = q.link_id where q.state = 'ACTIVE' and k.dst_endpoint_id = ${link.dst})`} as inbound`;
    const free = Math.min(
      link.limit_active - act.link,
      link.max_outbound === null ? Infinity : link.max_outbound - act.outbound,
      link.max_inbound === null ? Infinity : link.max_inbound - act.inbound,
      opts.max,
    );
    const slots: LinkSlots = { ...empty, limit: link.limit_active, active: act.link, free: Math.max(0, free) };
    if (free <= 0) return slots;

    const queues = await linkQueues(tx, linkId, free);
    if (queues.length === 0) return slots;
    const vos = [...new Set(queues.map((q) => q.vo))];
    const shareRows = await tx<{ name: string; share: number }[]>`select name, share from vos where name = any(${vos}::text[])`;
    const voShares: Record<string, number> = Object.fromEntries(shareRows.map((r) => [r.name, r.share]));
    for (const [vo, w] of Object.entries(link.vo_shares ?? {})) if (typeof w === 'number') voShares[vo] = w;
    slots.allocations = allocateSlots(free, queues, { vo: voShares });
    if (slots.allocations.length === 0) return slots;
    const al = slots.allocations;
    slots.claimed = await tx<ClaimedRequest[]>`
      with a as (
        select * from unnest(${al.map((x) => x.vo)}::text[], ${al.map((x) => x.activity)}::text[], ${al.map((x) => x.priority)}::int[], ${al.map((x) => x.count)}::int[])
          as a(vo, activity, priority, n)
      ), pick as (
        select c.id from a cross join lateral (
          select q.id from requests q
          where q.link_id = ${linkId} and q.state = 'QUEUED' and q.source_rse_id is not null
            and q.vo = a.vo and q.activity = a.activity and q.priority = a.priority
          order by q.created_at limit a.n
          for update skip locked
        ) c
      ), upd as (
        update requests q set state = 'ACTIVE', lease_owner = ${opts.owner},
               lease_expires_at = now() + make_interval(secs => ${opts.leaseSeconds}),
               started_at = now(), attempts = q.attempts + 1, bytes_done = 0, mode = null, waiting_reason = null, updated_at = now()
        from pick where q.id = pick.id
        returning q.id, q.vo, q.scope, q.name, q.bytes, q.adler32, q.activity, q.priority, q.attempts, q.max_attempts,
                  q.source_rse_id, q.dest_rse_id, q.link_id, q.started_at
      )
      select upd.*, sr.path as source_path, dr.path as dest_path
      from upd
      left join replicas sr on sr.vo = upd.vo and sr.scope = upd.scope and sr.name = upd.name and sr.rse_id = upd.source_rse_id
      left join replicas dr on dr.vo = upd.vo and dr.scope = upd.scope and dr.name = upd.name and dr.rse_id = upd.dest_rse_id`;
    return slots;
  });
}

/**
 * Queued (capped at `cap`: enough for the split, and the cost stays flat however long the queue)
 * and active counts per (vo, activity, priority) on one link. The queues are found by a loose
 * index scan of requests_claim, one probe per queue.
 */
export async function linkQueues(sql: Sql | TransactionSql, linkId: number, cap: number): Promise<QueueState[]> {
  const queued = await sql<QueueState[]>`
    with recursive g(vo, activity, priority) as (
      (select vo, activity, priority from requests
       where link_id = ${linkId} and state = 'QUEUED' and source_rse_id is not null
       order by link_id, vo, activity, priority limit 1)
      union all
      select n.vo, n.activity, n.priority from g cross join lateral (
        select q.vo, q.activity, q.priority from requests q
        where q.link_id = ${linkId} and q.state = 'QUEUED' and q.source_rse_id is not null
          and (q.vo, q.activity, q.priority) > (g.vo, g.activity, g.priority)
        order by q.link_id, q.vo, q.activity, q.priority limit 1
      ) n
    )
    select g.vo, g.activity, g.priority,
           (select count(*)::int from (
              select 1 from requests q
              where q.link_id = ${linkId} and q.state = 'QUEUED' and q.source_rse_id is not null
                and q.vo = g.vo and q.activity = g.activity and q.priority = g.priority
              limit ${Math.max(1, Math.ceil(cap))}) x) as queued,
           0 as active
    from g`;
  const active = await sql<QueueState[]>`
    select vo, activity, priority, 0 as queued, count(*)::int as active
    from requests where link_id = ${linkId} and state = 'ACTIVE'
    group by vo, activity, priority`;
  return [...queued, ...active];
}

// ---------------------------------------------------------------------------------------------
// Leases

/**
 * Extends the leases of these requests if this process still owns them, and writes their byte
 * progress, in one statement. Returns the ids still owned: a transfer missing from it was taken
 * over (its lease expired) and must be aborted.
 */
export async function heartbeat(
  sql: Sql,
  owner: string,
  leaseSeconds: number,
  progress: { ids: number[]; bytes: number[]; modes: Array<string | null> },
): Promise<Set<number>> {
  if (progress.ids.length === 0) return new Set();
  const rows = await sql<{ id: number }[]>`
    update requests q set lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
           bytes_done = greatest(q.bytes_done, p.bytes), mode = coalesce(p.mode, q.mode)
    from unnest(${progress.ids}::bigint[], ${progress.bytes}::bigint[], ${progress.modes}::text[]) as p(id, bytes, mode)
    where q.id = p.id and q.state = 'ACTIVE' and q.lease_owner = ${owner}
    returning q.id`;
  return new Set(rows.map((r) => r.id));
}

export interface RecoverOptions {
  batch: number;
  defaultMaxAttempts: number;
  /** Delay before the requeued request may be prepared again, per failed attempts so far. */
  delayMs: (failedAttempts: number) => number;
}

/**
 * Requests whose lease expired (their conveyor died or lost the database): each gets an attempt
 * of class 'Lost' and goes back to QUEUED to find a source again, or FAILED (locks STUCK) when
 * its attempts are used up. Any process may run this; SKIP LOCKED keeps two from doing one row.
 */
export async function recoverExpired(sql: Sql, opts: RecoverOptions): Promise<{ requeued: number; failed: number }> {
  return withTransaction(sql, async (tx) => {
    const rows = await tx<{ id: number; vo: string; attempts: number; max: number; lease_owner: string | null; source_rse_id: number | null; dest_rse_id: number; link_id: number | null; mode: string | null; bytes_done: number; started_at: Date | null }[]>`
      select id, vo, attempts, coalesce(max_attempts, ${opts.defaultMaxAttempts}) as max, lease_owner, source_rse_id, dest_rse_id,
             link_id, mode, bytes_done, started_at
      from requests where state = 'ACTIVE' and lease_expires_at < now()
      order by lease_expires_at limit ${opts.batch}
      for update skip locked`;
    if (rows.length === 0) return { requeued: 0, failed: 0 };
    const message = (r: (typeof rows)[number]) => `lease of ${r.lease_owner ?? 'an unknown conveyor'} expired: the conveyor stopped or lost the database mid-transfer`;
    await insertAttempts(
      tx,
      rows.map((r) => ({
        requestId: r.id, vo: r.vo, attempt: r.attempts, sourceRseId: r.source_rse_id, destRseId: r.dest_rse_id, linkId: r.link_id,
        mode: r.mode, bytes: r.bytes_done, durationMs: r.started_at ? Date.now() - r.started_at.getTime() : 0,
        errorCode: 'Lost', errorPhase: 'transfer', retryable: true, message: message(r), owner: r.lease_owner, startedAt: r.started_at,
      })),
    );
    const again = rows.filter((r) => r.attempts < r.max);
    const done = rows.filter((r) => r.attempts >= r.max);
    await requeue(tx, again.map((r) => ({ id: r.id, delayMs: opts.delayMs(r.attempts), lastSourceRseId: r.source_rse_id, reason: `Lost (transfer): ${message(r)}` })));
    for (const r of done) await markRequestFailed(tx, r.id, `Lost (transfer) after ${r.attempts} attempts: ${message(r)}`);
    if (done.length) await clearLeases(tx, done.map((r) => r.id));
    return { requeued: again.length, failed: done.length };
  });
}

// ---------------------------------------------------------------------------------------------
// Finish

interface AttemptRow {
  requestId: number;
  vo: string;
  attempt: number;
  sourceRseId: number | null;
  destRseId: number;
  linkId: number | null;
  mode: string | null;
  bytes: number;
  durationMs: number;
  errorCode: string | null;
  errorPhase: string | null;
  retryable: boolean | null;
  message: string | null;
  owner: string | null;
  startedAt: Date | null;
}

async function insertAttempts(tx: TransactionSql, rows: AttemptRow[]): Promise<void> {
  if (rows.length === 0) return;
  // booleans as text[] (postgres.js serialises boolean arrays badly), cast in SQL
  await tx`
    insert into transfer_attempts (request_id, vo, attempt, source_rse_id, dest_rse_id, link_id, mode, bytes, duration_ms,
                                   error_code, error_phase, retryable, message, owner, started_at)
    select * from unnest(
      ${rows.map((r) => r.requestId)}::bigint[], ${rows.map((r) => r.vo)}::text[], ${rows.map((r) => r.attempt)}::int[],
      ${rows.map((r) => r.sourceRseId) as number[]}::bigint[], ${rows.map((r) => r.destRseId)}::bigint[],
      ${rows.map((r) => r.linkId) as number[]}::bigint[], ${rows.map((r) => r.mode) as string[]}::text[],
      ${rows.map((r) => Math.round(r.bytes))}::bigint[], ${rows.map((r) => Math.min(2 ** 31 - 1, Math.round(r.durationMs)))}::int[],
      ${rows.map((r) => r.errorCode) as string[]}::text[], ${rows.map((r) => r.errorPhase) as string[]}::text[],
      ${rows.map((r) => (r.retryable === null ? null : String(r.retryable))) as string[]}::text[]::boolean[],
      ${rows.map((r) => (r.message === null ? null : r.message.slice(0, 4000))) as string[]}::text[],
      ${rows.map((r) => r.owner) as string[]}::text[], ${rows.map((r) => (r.startedAt ? r.startedAt.toISOString() : null)) as string[]}::timestamptz[]
    )`;
}

async function requeue(tx: TransactionSql, rows: Array<{ id: number; delayMs: number; lastSourceRseId: number | null; reason: string }>): Promise<void> {
  if (rows.length === 0) return;
  await tx`
    update requests q set state = 'QUEUED', source_rse_id = null, link_id = null, lease_owner = null, lease_expires_at = null,
           mode = null, last_source_rse_id = coalesce(t.src, q.last_source_rse_id), error = t.reason,
           waiting_reason = 'retrying after ' || t.reason,
           not_before = now() + make_interval(secs => t.delay_ms / 1000.0), updated_at = now()
    from unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.delayMs)}::float8[],
                ${rows.map((r) => r.lastSourceRseId) as number[]}::bigint[], ${rows.map((r) => r.reason.slice(0, 4000))}::text[])
      as t(id, delay_ms, src, reason)
    where q.id = t.id`;
}

async function clearLeases(tx: TransactionSql, ids: number[], bytes?: number[], modes?: Array<string | null>): Promise<void> {
  if (ids.length === 0) return;
  await tx`
    update requests q set lease_owner = null, lease_expires_at = null, finished_at = now(),
           bytes_done = coalesce(t.bytes, q.bytes_done), mode = coalesce(t.mode, q.mode)
    from unnest(${ids}::bigint[], ${(bytes ?? ids.map(() => null)) as number[]}::bigint[], ${(modes ?? ids.map(() => null)) as string[]}::text[]) as t(id, bytes, mode)
    where q.id = t.id`;
}

interface OutcomeBase {
  request: ClaimedRequest;
  mode: TransferMode | null;
  bytes: number;
  durationMs: number;
}

export type Outcome =
  /** Copied and verified (size + adler32 at the destination, equal to the catalogue's). */
  | (OutcomeBase & { kind: 'done' })
  /** Failed: retry after delayMs (the source excluded if possible) or fail for good with reason. */
  | (OutcomeBase & {
      kind: 'failed';
      code: string;
      phase: string | null;
      retryable: boolean;
      message: string;
      verdict: 'retry' | 'fail';
      delayMs: number;
      reason: string;
    })
  /** Stopped by a graceful shutdown: back to QUEUED as it was, the attempt not counted. */
  | (OutcomeBase & { kind: 'drained' });

export interface FinishResult {
  /** Requests this process still owned (the others were taken over; nothing was recorded for them). */
  owned: Set<number>;
  /** Done transfers whose destination replica is no longer wanted: their files should be removed. */
  unwanted: ClaimedRequest[];
}

/**
 * Records the outcomes of finished transfers in one transaction, only for requests still ACTIVE
 * under this owner's lease (a request recovered by another conveyor is theirs now): an attempt
 * row each; done -> markReplicaAvailable (replica AVAILABLE, request DONE, locks OK, rule
 * counters); retry -> QUEUED after its backoff, to find a source again; fail -> markRequestFailed
 * (locks STUCK with the reason); drained -> QUEUED with the attempt uncounted.
 */
export async function finishOutcomes(sql: Sql, owner: string, outcomes: Outcome[]): Promise<FinishResult> {
  if (outcomes.length === 0) return { owned: new Set(), unwanted: [] };
  return withTransaction(sql, async (tx) => {
    const ids = outcomes.map((o) => o.request.id);
    const rows = await tx<{ id: number }[]>`
      select id from requests where id = any(${ids}::bigint[]) and state = 'ACTIVE' and lease_owner = ${owner}
      order by id for update`;
    const owned = new Set(rows.map((r) => r.id));
    const mine = outcomes.filter((o) => owned.has(o.request.id));
    await insertAttempts(
      tx,
      mine
        .filter((o) => o.kind !== 'drained')
        .map((o) => ({
          requestId: o.request.id, vo: o.request.vo, attempt: o.request.attempts, sourceRseId: o.request.source_rse_id,
          destRseId: o.request.dest_rse_id, linkId: o.request.link_id, mode: o.mode, bytes: o.bytes, durationMs: o.durationMs,
          errorCode: o.kind === 'failed' ? o.code : null, errorPhase: o.kind === 'failed' ? o.phase : null,
          retryable: o.kind === 'failed' ? o.retryable : null, message: o.kind === 'failed' ? o.message : null,
          owner, startedAt: o.request.started_at,
        })),
    );
    const unwanted: ClaimedRequest[] = [];
    const finished: Outcome[] = [];
    // Replicas in a stable order: concurrent finishers touching the same rules queue, not deadlock.
    const done = mine.filter((o) => o.kind === 'done');
    const { updated } = await markReplicasAvailable(
      tx,
      done.map((o) => ({ vo: o.request.vo, scope: o.request.scope, name: o.request.name, rseId: o.request.dest_rse_id })),
    );
    const made = new Set(updated.map((k) => `${k.vo}\u0000${k.scope}\u0000${k.name}\u0000${k.rseId}`));
    for (const o of done) {
      const r = o.request;
      if (!made.has(`${r.vo}\u0000${r.scope}\u0000${r.name}\u0000${r.dest_rse_id}`)) unwanted.push(r);
      finished.push(o);
    }
    if (unwanted.length) {
      // The replica was deleted or is being deleted meanwhile: nobody wants these bytes.
      await tx`update requests set state = 'FAILED', error = 'cancelled: the destination replica is no longer wanted', updated_at = now()
               where id = any(${unwanted.map((r) => r.id)}::bigint[]) and state = 'ACTIVE'`;
    }
    const retries = mine.filter((o): o is Extract<Outcome, { kind: 'failed' }> => o.kind === 'failed' && o.verdict === 'retry');
    await requeue(tx, retries.map((o) => ({ id: o.request.id, delayMs: o.delayMs, lastSourceRseId: o.request.source_rse_id, reason: o.reason })));
    for (const o of mine) {
      if (o.kind === 'failed' && o.verdict === 'fail') {
        await markRequestFailed(tx, o.request.id, o.reason);
        finished.push(o);
      }
    }
    const drained = mine.filter((o) => o.kind === 'drained').map((o) => o.request.id);
    if (drained.length) {
      await tx`
        update requests set state = 'QUEUED', attempts = greatest(0, attempts - 1), lease_owner = null, lease_expires_at = null,
               bytes_done = 0, mode = null, updated_at = now()
        where id = any(${drained}::bigint[])`;
    }
    await clearLeases(tx, finished.map((o) => o.request.id), finished.map((o) => o.bytes), finished.map((o) => o.mode));
    return { owned, unwanted };
  });
}

// ---------------------------------------------------------------------------------------------
// Read views (API, CLI)

export interface RequestView {
  id: number;
  vo: string;
  scope: string;
  name: string;
  state: RequestState;
  dest_rse: string;
  source_rse: string | null;
  link_id: number | null;
  bytes: number;
  bytes_done: number;
  adler32: string;
  activity: string;
  priority: number;
  attempts: number;
  max_attempts: number | null;
  mode: string | null;
  waiting_reason: string | null;
  error: string | null;
  not_before: Date | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface AttemptView {
  attempt: number;
  source_rse: string | null;
  dest_rse: string;
  link_id: number | null;
  mode: string | null;
  bytes: number;
  duration_ms: number;
  error_code: string | null;
  error_phase: string | null;
  retryable: boolean | null;
  message: string | null;
  owner: string | null;
  started_at: Date | null;
  finished_at: Date;
}

export interface RequestFilter {
  /** Undefined: every VO (root only). */
  vo?: string;
  state?: RequestState;
  ruleId?: string;
  linkId?: number;
  activity?: string;
  /** Keyset: ids below this (newest first). */
  before?: number;
  limit: number;
}

function viewColumns(sql: Sql) {
  return sql`
    q.id, q.vo, q.scope, q.name, q.state, d.name as dest_rse, s.name as source_rse, q.link_id, q.bytes, q.bytes_done, q.adler32,
    q.activity, q.priority, q.attempts, q.max_attempts, q.mode, q.waiting_reason, q.error, q.not_before, q.lease_owner,
    q.lease_expires_at, q.started_at, q.finished_at, q.created_at, q.updated_at`;
}

/** Requests newest first; fetches limit + 1 rows so that the caller can tell whether more exist. */
export async function listRequests(sql: Sql, f: RequestFilter): Promise<RequestView[]> {
  return sql<RequestView[]>`
    select ${viewColumns(sql)}
    from requests q join rses d on d.id = q.dest_rse_id left join rses s on s.id = q.source_rse_id
    where true
      ${f.vo !== undefined ? sql`and q.vo = ${f.vo}` : sql``}
      ${f.state ? sql`and q.state = ${f.state}` : sql``}
      ${f.linkId !== undefined ? sql`and q.link_id = ${f.linkId}` : sql``}
      ${f.activity ? sql`and q.activity = ${f.activity}` : sql``}
      ${f.ruleId ? sql`and exists (select 1 from locks l where l.rule_id = ${f.ruleId}::uuid and l.vo = q.vo and l.scope = q.scope and l.name = q.name and l.rse_id = q.dest_rse_id)` : sql``}
      ${f.before !== undefined ? sql`and q.id < ${f.before}` : sql``}
    order by q.id desc
    limit ${f.limit + 1}`;
}

/** One request with every attempt, oldest first; NotFound outside the caller's VO. */
export async function getRequest(sql: Sql, vo: string | undefined, id: number): Promise<RequestView & { attempts_list: AttemptView[] }> {
  const [row] = await sql<RequestView[]>`
    select ${viewColumns(sql)}
    from requests q join rses d on d.id = q.dest_rse_id left join rses s on s.id = q.source_rse_id
    where q.id = ${id} ${vo !== undefined ? sql`and q.vo = ${vo}` : sql``}`;
  if (!row) throw new NotFound('RequestNotFound', `transfer request ${id} does not exist${vo ? ` in VO '${vo}'` : ''}`);
  const attempts = await sql<AttemptView[]>`
    select a.attempt, s.name as source_rse, d.name as dest_rse, a.link_id, a.mode, a.bytes, a.duration_ms, a.error_code, a.error_phase,
           a.retryable, a.message, a.owner, a.started_at, a.finished_at
    from transfer_attempts a left join rses s on s.id = a.source_rse_id join rses d on d.id = a.dest_rse_id
    where a.request_id = ${id} order by a.id`;
  return { ...row, attempts_list: attempts };
}

// ---------------------------------------------------------------------------------------------
// Link statistics (optimizer, dashboards)

export interface LinkWindowStats {
  link_id: number;
  /** Attempts that ended in the window, of which succeeded. */
  finished: number;
  succeeded: number;
  /** Retryable failures count as failures (as the optimizer wants). */
  failed: number;
  bytes: number;
  /** Bytes per second moved by successful attempts over the window. */
  throughput: number;
  mean_file_bytes: number;
  active: number;
  queued: number;
}

/** Per-link outcome counts, throughput and queue over the last `windowSeconds`. */
export async function linkWindowStats(sql: Sql, windowSeconds: number, opts: { queueCap?: number } = {}): Promise<LinkWindowStats[]> {
  return sql<LinkWindowStats[]>`
    select l.id as link_id,
           coalesce(a.finished, 0)::int as finished, coalesce(a.succeeded, 0)::int as succeeded, coalesce(a.failed, 0)::int as failed,
           coalesce(a.bytes, 0)::float8 as bytes, coalesce(a.bytes, 0)::float8 / ${windowSeconds} as throughput,
           coalesce(a.mean_bytes, 0)::float8 as mean_file_bytes,
           (select count(*)::int from requests q where q.link_id = l.id and q.state = 'ACTIVE') as active,
           (select count(*)::int from (select 1 from requests q where q.link_id = l.id and q.state = 'QUEUED' and q.source_rse_id is not null
                                       limit ${opts.queueCap ?? 100_000}) x) as queued
    from links l
    left join lateral (
      select count(*) as finished, count(*) filter (where error_code is null) as succeeded,
             count(*) filter (where error_code is not null and error_code <> 'Cancelled') as failed,
             sum(bytes) filter (where error_code is null) as bytes, avg(bytes) filter (where error_code is null) as mean_bytes
      from transfer_attempts t where t.link_id = l.id and t.finished_at > now() - make_interval(secs => ${windowSeconds})
    ) a on true
    order by l.id`;
}
