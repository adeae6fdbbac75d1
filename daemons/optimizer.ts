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
/** Share of the interval a window needs (after a limit change settles) for a decision. */
const MIN_WINDOW_SHARE = 0.4;

export interface LinkWindow {
  id: number;
  limit_active: number;
  min_active: number;
  max_active: number;
  pinned: boolean;
  /** Requests ACTIVE / QUEUED on the link now. */
  active: number;
  queued: number;
  /** Bytes of successful attempts, each counted in proportion to its time inside the window. */
  bytes: number;
  /** Transfer-seconds inside the window: of attempts that ended in it, and of transfers still running. */
  ended_seconds: number;
  running_seconds: number;
  done: number;
  failed: number;
  mean_bytes: number | null;
  /** Length of the window actually measured (shorter right after a limit change). */
  window_seconds: number;
}

/**
 * One statement: every link with work or traffic in the window, with its window's figures.
 *
 * What a window measures must not depend on when transfers happen to end: right after a limit
 * change the slots fill over the next seconds, and transfers started in one window end in the
 * next. So concurrency is the time average of transfers on the link over the window (attempts
 * that ended in it plus those still running, each for the part of its life inside the window),
 * and throughput is the goodput per transfer-second of the attempts that ended, times that
 * concurrency. And a window starts no earlier than the link's last limit change plus the time
 * its transfers take (their mean life over the full window): until then the transfers that end
 * were started under the old limit and measure it, not the new one. `window_seconds` is what is
 * left of the window; the daemon waits when that is too short.
 */
export async function observeLinks(sql: Sql, windowMs: number): Promise<LinkWindow[]> {
  const window = sql`make_interval(secs => ${windowMs / 1000})`;
  return sql<LinkWindow[]>`
    with recent as (
      select a.link_id, a.bytes, a.error_code, a.finished_at,
             coalesce(a.started_at, a.finished_at - make_interval(secs => a.duration_ms / 1000.0)) as started
      from transfer_attempts a
      where a.finished_at > now() - ${window} and a.link_id is not null
        -- an attempt aborted by a shutdown says nothing about the link
        and a.error_code is distinct from 'Cancelled'
    ), live as (
      select link_id, state, started_at, bytes from requests
      where state in ('QUEUED', 'ACTIVE') and link_id is not null
    ), lives as (
      select link_id, avg(extract(epoch from finished_at - started))::float8 as mean from recent group by link_id
    ), changes as (
      select link_id, max(at) as at from link_decisions
      where limit_active <> previous_limit and at > now() - 2 * ${window}
      group by link_id
    ), starts as (
      -- busy links only: with traffic in the window or work waiting (greatest() skips nulls)
      select b.link_id,
             least(now(), greatest(now() - ${window}, c.at + make_interval(secs => coalesce(v.mean, 0)))) as t0
      from (select link_id from recent union select link_id from live) b
      left join changes c using (link_id)
      left join lives v using (link_id)
    ), ended as (
      select r.link_id, r.bytes, r.error_code,
             -- lifetime and part of it inside the window, in seconds (0.001 s at least)
             greatest(extract(epoch from r.finished_at - r.started), 0.001) as life,
             greatest(extract(epoch from r.finished_at - greatest(r.started, s.t0)), 0) as inside
      from recent r join starts s using (link_id)
      where r.finished_at > s.t0
    ), traffic as (
      select link_id,
             coalesce(sum(bytes * least(1, inside / life)) filter (where error_code is null), 0)::float8 as bytes,
             coalesce(sum(least(inside, life)), 0)::float8 as ended_seconds,
             count(*) filter (where error_code is null)::int as done,
             count(*) filter (where error_code is not null)::int as failed,
             avg(bytes) filter (where error_code is null)::float8 as mean_bytes
      from ended
      group by link_id
    ), load as (
      select q.link_id,
             count(*) filter (where q.state = 'ACTIVE')::int as active,
             count(*) filter (where q.state = 'QUEUED')::int as queued,
             coalesce(sum(extract(epoch from now() - greatest(coalesce(q.started_at, s.t0), s.t0)))
                        filter (where q.state = 'ACTIVE'), 0)::float8 as running_seconds,
             avg(q.bytes)::float8 as queued_mean_bytes
      from live q join starts s using (link_id)
      group by q.link_id
    )
    select l.id, l.limit_active, l.min_active, l.max_active, l.pinned,
           coalesce(load.active, 0) as active, coalesce(load.queued, 0) as queued,
           coalesce(t.bytes, 0) as bytes, coalesce(t.ended_seconds, 0) as ended_seconds,
           coalesce(load.running_seconds, 0) as running_seconds,
           coalesce(t.done, 0) as done, coalesce(t.failed, 0) as failed,
           coalesce(t.mean_bytes, load.queued_mean_bytes) as mean_bytes,
           greatest(extract(epoch from now() - s.t0), 0)::float8 as window_seconds
    from starts s
    join links l on l.id = s.link_id
    left join traffic t on t.link_id = l.id
    left join load on load.link_id = l.id
    order by l.id`;
}

/**
 * The optimizer's view of a window. `active` is the window's average concurrency (see
 * observeLinks); the transfers running now beyond that average count as queued, so that
 * `active + queued` is still the demand on the link.
 */
export function toObservation(w: LinkWindow, nowMs: number): LinkObservation {
  const attempts = w.done + w.failed;
  const seconds = Math.max(w.window_seconds, 0.001);
  const concurrency = (w.ended_seconds + w.running_seconds) / seconds;
  const active = Math.round(concurrency);
  const perTransferSecond = w.ended_seconds > 0 ? w.bytes / w.ended_seconds : 0;
  return {
    nowMs,
    limit: w.limit_active,
    min: w.min_active,
    max: w.max_active,
    active,
    queued: w.queued + Math.max(0, w.active - active),
    bytesPerSecond: perTransferSecond * concurrency,
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
        const observation = toObservation(w, now);
        let limit = w.limit_active;
        let reason: string;
        if (w.pinned) {
          reason = `pinned by an admin at ${w.limit_active}`;
        } else if (w.window_seconds < (MIN_WINDOW_SHARE * windowMs) / 1000) {
          // Too little time since the last change for its effect to be measured.
          reason = `waiting: transfers started before the last limit change are still ending (${w.window_seconds.toFixed(1)} s measurable): holding ${w.limit_active}`;
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
