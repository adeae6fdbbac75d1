/**
 * Source selection: which AVAILABLE replica a transfer reads from. The ranking is pure (tested
 * without a database); the candidate query and the expression filter feed it.
 */
import type { Sql, TransactionSql } from './db.ts';
import { createRseIndex, evaluateRseExpression, type RseCandidate } from './rse-expression.ts';
import type { ResolvedPolicy } from '../policies/registry.ts';
import type { SourceContext } from '../policies/types.ts';

export interface SourceCandidate {
  rseId: number;
  /** distances.distance from this RSE to the destination; null when not configured. */
  distance: number | null;
  /** Share of failed attempts among the link's recent attempts (0..1); null: no history. */
  failureRate: number | null;
  /** Requests queued on the link (capped count) and its current concurrency limit. */
  queued: number;
  limit: number;
}

export interface RankOptions {
  /** Distance assumed when none is configured. */
  defaultDistance: number;
  /** Cost of a link that fails every attempt, in distance units. */
  failurePenalty: number;
  /** Cost of one full round of the link's limit waiting ahead, in distance units. */
  queuePenalty: number;
}

export const defaultRankOptions: RankOptions = { defaultDistance: 10, failurePenalty: 20, queuePenalty: 1 };

export function sourceCost(c: SourceCandidate, o: RankOptions = defaultRankOptions): number {
  const distance = c.distance ?? o.defaultDistance;
  const failures = (c.failureRate ?? 0) * o.failurePenalty;
  const queue = (c.queued / Math.max(1, c.limit)) * o.queuePenalty;
  return distance + failures + queue;
}

/**
 * Candidates best first: lowest cost (distance + recent failure rate + queue), ties by RSE id for
 * determinism. The previous attempt's source goes last when there is any other (a retry prefers
 * another source).
 */
export function rankSources(candidates: SourceCandidate[], lastSourceRseId: number | null = null, o: RankOptions = defaultRankOptions): SourceCandidate[] {
  const avoid = lastSourceRseId !== null && candidates.some((c) => c.rseId !== lastSourceRseId) ? lastSourceRseId : null;
  return [...candidates].sort((a, b) => {
    const pa = a.rseId === avoid ? 1 : 0;
    const pb = b.rseId === avoid ? 1 : 0;
    return pa - pb || sourceCost(a, o) - sourceCost(b, o) || a.rseId - b.rseId;
  });
}

/**
 * The RSE ids a set of source expressions allows (union), or undefined for "any RSE": a request
 * shared by several rules may read from anywhere any of them allows, and a rule without a source
 * expression allows every RSE. An expression that no longer parses or matches allows nothing.
 */
export function allowedSources(expressions: Array<string | null>, rses: readonly RseCandidate[]): Set<number> | undefined {
  if (expressions.length === 0 || expressions.some((e) => e === null)) return undefined;
  const index = createRseIndex(rses);
  const out = new Set<number>();
  for (const e of expressions) {
    try {
      for (const r of evaluateRseExpression(e!, index).rses) out.add(r.id);
    } catch {
      // an empty or broken expression contributes no RSE; the waiting reason names it
    }
  }
  return out;
}

export interface ReplicaSource {
  request_id: number;
  rse_id: number;
  endpoint_id: number;
  distance: number | null;
}

/** AVAILABLE, readable replicas of the requests' files, other than the destination itself. */
export async function sourceReplicas(sql: Sql | TransactionSql, requestIds: number[]): Promise<ReplicaSource[]> {
  if (requestIds.length === 0) return [];
  return sql<ReplicaSource[]>`
    select q.id as request_id, r.rse_id, s.endpoint_id, d.distance
    from requests q
    join replicas r on r.vo = q.vo and r.scope = q.scope and r.name = q.name and r.state = 'AVAILABLE' and r.rse_id <> q.dest_rse_id
    join rses s on s.id = r.rse_id and s.deleted_at is null and s.availability_read
    left join distances d on d.src_rse_id = r.rse_id and d.dst_rse_id = q.dest_rse_id
    where q.id = any(${requestIds}::bigint[])`;
}

/** Source expressions of the rules whose locks wait on each request. */
export async function sourceExpressions(sql: Sql | TransactionSql, requestIds: number[]): Promise<Map<number, Array<string | null>>> {
  const out = new Map<number, Array<string | null>>();
  if (requestIds.length === 0) return out;
  const rows = await sql<{ request_id: number; expr: string | null }[]>`
    select distinct q.id as request_id, ru.source_replica_expression as expr
    from requests q
    join locks l on l.vo = q.vo and l.scope = q.scope and l.name = q.name and l.rse_id = q.dest_rse_id
    join rules ru on ru.id = l.rule_id
    where q.id = any(${requestIds}::bigint[])`;
  for (const r of rows) {
    const list = out.get(r.request_id) ?? [];
    list.push(r.expr);
    out.set(r.request_id, list);
  }
  return out;
}

/** Recent failure rate (last `window` attempts) and queued count (capped) of links. */
export async function linkHealth(
  sql: Sql | TransactionSql,
  linkIds: number[],
  opts: { window?: number; queueCap?: number } = {},
): Promise<Map<number, { failureRate: number | null; queued: number; limit: number }>> {
  const out = new Map<number, { failureRate: number | null; queued: number; limit: number }>();
  if (linkIds.length === 0) return out;
  const rows = await sql<{ id: number; failure_rate: number | null; queued: number; limit_active: number }[]>`
    select l.id, l.limit_active,
           (select avg((a.error_code is not null)::int)::float8 from (
              select error_code from transfer_attempts a where a.link_id = l.id order by a.finished_at desc limit ${opts.window ?? 50}) a) as failure_rate,
           (select count(*)::int from (
              select 1 from requests q where q.link_id = l.id and q.state = 'QUEUED' and q.source_rse_id is not null limit ${opts.queueCap ?? 10_000}) x) as queued
    from links l where l.id = any(${linkIds}::bigint[])`;
  for (const r of rows) out.set(r.id, { failureRate: r.failure_rate, queued: r.queued, limit: r.limit_active });
  return out;
}

/**
 * Policy packages (issue 7): the VO's `rankSources` hook on top of the ranking above. `ranked` is
 * rankSources' output; `rses` gives each candidate's name and attributes. The package may drop
 * candidates and, with an ordered answer, reorder them; `{ only }` keeps Sluice's order among the
 * kept ones. An empty result means no usable source (the request waits with `reason`). A hook
 * failure is a PolicyError for the caller to record on that request only.
 *
 * Call point: core/requests.ts prepareRequests, right after `rankSources(...)` for each request
 * (with the policy from `policies.forVo(r.vo)`), before `best` is taken from `ranked[0]`.
 */
export async function applyPolicySourceRanking(
  policy: Pick<ResolvedPolicy, 'name' | 'hooks' | 'rankSources'>,
  ranked: SourceCandidate[],
  rses: ReadonlyMap<number, { name: string; attributes: Record<string, string> }>,
  ctx: SourceContext,
): Promise<{ ranked: SourceCandidate[]; reason?: string }> {
  if (!policy.hooks.has('rankSources') || ranked.length === 0) return { ranked };
  const named = ranked.map((c) => ({ c, rse: rses.get(c.rseId) }));
  const candidates = named.flatMap(({ c, rse }) => (rse ? [{ name: rse.name, attributes: rse.attributes, distance: c.distance }] : []));
  const decision = await policy.rankSources(candidates, ctx);
  if (!decision) return { ranked };
  const byName = new Map(named.filter((n) => n.rse).map((n) => [n.rse!.name, n.c]));
  const kept = decision.ordered
    ? decision.names.map((n) => byName.get(n)!)
    : named.filter((n) => n.rse && decision.names.includes(n.rse.name)).map((n) => n.c);
  if (kept.length === 0) {
    return { ranked: [], reason: `policy '${policy.name}' rankSources kept none of the sources ${candidates.map((c) => c.name).join(', ')}; waiting for another replica` };
  }
  return { ranked: kept };
}
