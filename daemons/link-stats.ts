/**
 * Observability rollups, once per cluster per iteration (a transaction-scoped advisory lock: a
 * second process finds it taken and sleeps):
 *   1. link statistics: recompute the minutes since the last run (minus a margin for attempts
 *      recorded late) from transfer_attempts, then the hours they belong to (core/link-stats.ts);
 *   2. prune minute rows beyond a day and hour rows beyond 30 days, probe results beyond
 *      `probeRetentionDays`: every table here stays bounded;
 *   3. fold replica-usage deltas into rse_usage (core/usage.ts).
 * Every step is idempotent, so a crash between steps only delays the next run's work.
 */
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { pruneLinkStats, rollupHours, rollupMinutes } from '../core/link-stats.ts';
import { foldRseUsage } from '../core/usage.ts';
import { runLoop, type Daemon } from './loop.ts';

export interface LinkStatsOptions {
  /** Between runs (default 10 s: the dashboard's minute rows trail by at most this). */
  intervalMs?: number;
  /** Recompute this far before the last run's end, for attempts recorded late (default 120 s). */
  lateMarginSeconds?: number;
  /** Probe results (endpoint_probes) kept this long (default 30 days). */
  probeRetentionDays?: number;
}

/** Arbitrary, fixed: the key of the once-per-cluster rollup lock. */
const ROLLUP_LOCK = 0x51_1c_e0_04;
const WATERMARK = 'link_stats_minute';

export function createLinkStats(deps: { sql: Sql; log: Logger }, options: LinkStatsOptions = {}): Daemon {
  const { sql, log } = deps;
  const margin = options.lateMarginSeconds ?? 120;

  async function runOnce(): Promise<number> {
    const rolled = await sql.begin(async (tx) => {
      const [{ locked }] = await tx<{ locked: boolean }[]>`select pg_try_advisory_xact_lock(${ROLLUP_LOCK}) as locked`;
      if (!locked) return 0;
      const [{ now, done_until }] = await tx<{ now: Date; done_until: Date | null }[]>`
        select now() as now, (select done_until from rollup_watermarks where name = ${WATERMARK}) as done_until`;
      // First run: backfill the day the minute table keeps.
      const from = done_until ? new Date(done_until.getTime() - margin * 1000) : new Date(now.getTime() - 24 * 3600 * 1000);
      const minutes = await rollupMinutes(tx, from, new Date(now.getTime() + 1));
      const hours = await rollupHours(tx, from);
      const pruned = await pruneLinkStats(tx);
      await tx`delete from endpoint_probes where finished_at < now() - make_interval(days => ${options.probeRetentionDays ?? 30})`;
      await tx`
        insert into rollup_watermarks (name, done_until) values (${WATERMARK}, ${now})
        on conflict (name) do update set done_until = excluded.done_until`;
      if (minutes || pruned) log.debug({ minutes, hours, pruned }, 'link statistics rolled up');
      return minutes;
    });
    const folded = await foldRseUsage(sql);
    if (folded) log.debug({ folded }, 'usage deltas folded');
    return rolled + folded;
  }

  return {
    runOnce,
    // Each run recomputes the recent minutes whatever it found: pace by the interval, never "at once".
    run: (signal) => runLoop('link-stats', log, async () => ((await runOnce()), 0), signal, { intervalMs: options.intervalMs ?? 10_000 }),
  };
}
