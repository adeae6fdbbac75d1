/**
 * Optimizer daemon: every interval, for each busy link, observe the last window (throughput,
 * success rate, active, queued, mean file size), let core/optimizer.ts decide the link's
 * concurrency limit, store it (unless an admin pinned the link) and record the decision with its
 * inputs and reason. The conveyor reads links.limit_active on its next claim.
 *
 * Once per cluster: a transaction advisory lock makes other optimizer processes skip the round.
 * The per-link optimizer state lives in this process; a restart (or a move to another process)
 * starts fresh from the stored limit, which the optimizer handles as a new history.
 */
import type { Sql } from '../core/db.ts';
import { withTransaction } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { createLinkOptimizer, type LinkObservation, type LinkOptimizer, type OptimizerOptions } from '../core/optimizer.ts';
import { runLoop, type Daemon } from './loop.ts';

export interface OptimizerDaemonOptions {
  /** Decision interval and observation window (default 15 s). */
  intervalMs?: number;
  /** Decisions older than this are pruned (default 2 days). */
  retentionSeconds?: number;
  optimizer?: Partial<OptimizerOptions>;
}

const OPTIMIZER_LOCK = 0x51_1c_e0_02;

export interface LinkWindow {
  id: number;
  limit_active: number;
  min_active: number;
  max_active: number;
  pinned: boolean;
  active: number;
  queued: number;
  bytes: number;
  done: number;
  failed: number;
  mean_bytes: number | null;
}

/** One statement: every link with work or traffic in the window, with its window's figures. */
export async function observeLinks(sql: Sql, windowMs: number): Promise<LinkWindow[]> {
  return sql<LinkWindow[]>`
    with traffic as (
      select link_id,
             coalesce(sum(bytes) filter (where error_code is null), 0)::bigint as bytes,
             count(*) filter (where error_code is null)::int as done,
             count(*) filter (where error_code is not null)::int as failed,
             avg(bytes) filter (where error_code is null)::float8 as mean_bytes
      from transfer_attempts
      where finished_at > now() - make_interval(secs => ${windowMs / 1000}) and link_id is not null
        -- an attempt aborted by a shutdown says nothing about the link
        and error_code is distinct from 'Cancelled'
      group by link_id
    ), load as (
      select link_id,
             count(*) filter (where state = 'ACTIVE')::int as active,
             count(*) filter (where state = 'QUEUED')::int as queued,
             avg(bytes)::float8 as queued_mean_bytes
      from requests
      where state in ('QUEUED', 'ACTIVE') and link_id is not null
      group by link_id
    )
    select l.id, l.limit_active, l.min_active, l.max_active, l.pinned,
           coalesce(load.active, 0) as active, coalesce(load.queued, 0) as queued,
           coalesce(t.bytes, 0) as bytes, coalesce(t.done, 0) as done, coalesce(t.failed, 0) as failed,
           coalesce(t.mean_bytes, load.queued_mean_bytes) as mean_bytes
    from links l
    left join traffic t on t.link_id = l.id
    left join load on load.link_id = l.id
    where t.link_id is not null or load.link_id is not null
    order by l.id`;
}

export function toObservation(w: LinkWindow, windowMs: number, nowMs: number): LinkObservation {
  const attempts = w.done + w.failed;
  return {
    nowMs,
    limit: w.limit_active,
    min: w.min_active,
    max: w.max_active,
    active: w.active,
    queued: w.queued,
    bytesPerSecond: (w.bytes * 1000) / windowMs,
    // No finished attempt in the window: no evidence of failure either.
    successRate: attempts === 0 ? 1 : w.done / attempts,
    meanFileBytes: w.mean_bytes ?? 0,
  };
}

export function createOptimizerDaemon(deps: { sql: Sql; log: Logger }, options: OptimizerDaemonOptions = {}): Daemon & { optimizers: Map<number, LinkOptimizer> } {
  const { sql, log } = deps;
  const windowMs = options.intervalMs ?? 15_000;
  const retention = options.retentionSeconds ?? 2 * 86400;
  const optimizers = new Map<number, LinkOptimizer>();

  async function runOnce(): Promise<number> {
    return withTransaction(sql, async (tx) => {
      const [{ got }] = await tx<{ got: boolean }[]>`select pg_try_advisory_xact_lock(${OPTIMIZER_LOCK}) as got`;
      if (!got) return 0;
      const windows = await observeLinks(tx as unknown as Sql, windowMs);
      const now = Date.now();
      const ids: number[] = [];
      const previous: number[] = [];
      const limits: number[] = [];
      const reasons: string[] = [];
      const inputs: string[] = [];
      for (const w of windows) {
        const observation = toObservation(w, windowMs, now);
        let limit = w.limit_active;
        let reason: string;
        if (w.pinned) {
          reason = `pinned by an admin at ${w.limit_active}`;
        } else {
          let optimizer = optimizers.get(w.id);
          if (!optimizer) optimizers.set(w.id, (optimizer = createLinkOptimizer(options.optimizer)));
          const decision = optimizer.decide(observation);
          // The optimizer never leaves [min, max]; clamp anyway in case an admin moved them.
          limit = Math.max(w.min_active, Math.min(w.max_active, Math.round(decision.limit)));
          reason = decision.reason;
        }
        ids.push(w.id);
        previous.push(w.limit_active);
        limits.push(limit);
        reasons.push(reason);
        inputs.push(JSON.stringify(observation));
      }
      if (ids.length) {
        await tx`
          update links l set limit_active = d.limit_active, updated_at = now()
          from unnest(${ids}::bigint[], ${limits}::int[]) as d(id, limit_active)
          where l.id = d.id and l.limit_active <> d.limit_active and not l.pinned`;
        await tx`
          insert into link_decisions (link_id, previous_limit, limit_active, reason, inputs)
          select * from unnest(${ids}::bigint[], ${previous}::int[], ${limits}::int[], ${reasons}::text[], ${inputs}::text[]::jsonb[])`;
        for (let i = 0; i < ids.length; i++) {
          if (limits[i] !== previous[i]) log.info({ link: ids[i], from: previous[i], to: limits[i], reason: reasons[i] }, 'link limit changed');
        }
      }
      await tx`delete from link_decisions where at < now() - make_interval(secs => ${retention})`;
      // Forget optimizers of links that went idle long ago: their history is stale anyway.
      if (optimizers.size > 10_000) optimizers.clear();
      return 0; // a round per interval, never "more work at once"
    });
  }

  return {
    optimizers,
    runOnce,
    run: (signal) => runLoop('optimizer', log, () => runOnce(), signal, { intervalMs: windowMs, jitter: 0 }),
  };
}
