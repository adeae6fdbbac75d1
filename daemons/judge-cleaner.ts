/**
 * Judge cleaner: rules past their lifetime are deleted and their locks released (replicas left
 * without locks get tombstones; the reaper does the rest). Locked rules are kept (and logged):
 * a person locked them on purpose. One rule per transaction, claimed with SKIP LOCKED, so any
 * number of cleaners share the work and one bad rule cannot stop the others.
 */
import type { Sql } from '../core/db.ts';
import { withTransaction } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { expireRule, lockRule } from '../core/rules.ts';
import { runLoop, type Daemon } from './loop.ts';

export interface CleanerOptions {
  intervalMs?: number;
  /** Rules per runOnce. */
  batch?: number;
  graceSeconds?: number;
}

export function createJudgeCleaner(deps: { sql: Sql; log: Logger }, options: CleanerOptions = {}): Daemon {
  const { sql, log } = deps;
  const batch = options.batch ?? 100;

  async function runOnce(signal?: AbortSignal): Promise<number> {
    const failed: string[] = [];
    let done = 0;
    while (done + failed.length < batch && !signal?.aborted) {
      let id: string | undefined;
      try {
        const released = await withTransaction(sql, async (tx) => {
          const [row] = await tx<{ id: string }[]>`
            select id from rules
            where expires_at <= now() and not locked and id <> all(${failed}::uuid[])
            order by expires_at limit 1 for update skip locked`;
          if (!row) return undefined;
          id = row.id;
          const rule = (await lockRule(tx, row.id))!;
          return expireRule(tx, rule, options.graceSeconds);
        });
        if (released === undefined) break;
        log.info({ rule: id, released }, 'expired rule deleted');
        done++;
      } catch (err) {
        if (!id) throw err;
        log.error({ err, rule: id }, 'deleting an expired rule failed; will retry');
        failed.push(id);
      }
    }
    return done;
  }

  return {
    runOnce,
    run: (signal) => runLoop('judge-cleaner', log, runOnce, signal, { intervalMs: options.intervalMs ?? 30_000 }),
  };
}
