/**
 * Judge repairer: a STUCK rule's stuck locks move to another RSE of its expression (or, when no
 * other RSE can take them, are queued again at the same one after a delay), and files that could
 * not be placed are placed again. Each pass backs off exponentially per rule; a rule stuck for
 * longer than suspendAfterSeconds goes SUSPENDED and is left alone (until its locks turn OK).
 *
 *   claim one STUCK rule due for repair (FOR UPDATE SKIP LOCKED) -> repairRule -> schedule next
 */
import type { Sql } from '../core/db.ts';
import { withTransaction } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { lockRule, randomFor, repairRule } from '../core/rules.ts';
import type { PolicyRegistry } from '../policies/registry.ts';
import { runLoop, type Daemon } from './loop.ts';

export interface RepairerOptions {
  intervalMs?: number;
  /** Rules per runOnce. */
  batch?: number;
  /** First backoff between passes over one rule; doubles per attempt up to maxBackoffSeconds. */
  backoffSeconds?: number;
  maxBackoffSeconds?: number;
  /** Delay before a transfer retried at the same RSE may start. */
  retryDelaySeconds?: number;
  /** A rule STUCK this long (since it was last OK) is SUSPENDED. */
  suspendAfterSeconds?: number;
  seed?: number;
}

export function createJudgeRepairer(deps: { sql: Sql; log: Logger; policies: PolicyRegistry }, options: RepairerOptions = {}): Daemon {
  const { sql, log, policies } = deps;
  const batch = options.batch ?? 50;
  const backoff = options.backoffSeconds ?? 60;
  const maxBackoff = options.maxBackoffSeconds ?? 6 * 3600;
  const suspendAfter = options.suspendAfterSeconds ?? 7 * 86400;
  const random = randomFor(options.seed);

  async function runOnce(signal?: AbortSignal): Promise<number> {
    const failed: string[] = [];
    let done = 0;
    while (done + failed.length < batch && !signal?.aborted) {
      let id: string | undefined;
      try {
        const outcome = await withTransaction(sql, async (tx) => {
          const [row] = await tx<{ id: string; suspend: boolean }[]>`
            select id, stuck_at <= now() - make_interval(secs => ${suspendAfter}) as suspend from rules
            where state = 'STUCK' and (next_repair_at is null or next_repair_at <= now()) and id <> all(${failed}::uuid[])
            order by next_repair_at nulls first, id limit 1 for update skip locked`;
          if (!row) return undefined;
          id = row.id;
          if (row.suspend) {
            await tx`
              update rules set state = 'SUSPENDED',
                     error = left('suspended: stuck for more than ' || ${suspendAfter}::text || ' s; last error: ' || coalesce(error, 'none'), 4000)
              where id = ${row.id}::uuid`;
            return { suspended: true };
          }
          const rule = (await lockRule(tx, row.id))!;
          const res = await repairRule(tx, rule, { policy: await policies.forVo(rule.vo), random, retryDelaySeconds: options.retryDelaySeconds ?? backoff });
          await tx`
            update rules set repair_attempts = repair_attempts + 1,
                   next_repair_at = now() + make_interval(secs => least(${maxBackoff}, ${backoff} * power(2, repair_attempts)))
            where id = ${row.id}::uuid`;
          return res;
        });
        if (outcome === undefined) break;
        log.info({ rule: id, ...outcome }, outcome.suspended ? 'rule suspended' : 'rule repaired');
        done++;
      } catch (err) {
        if (!id) throw err;
        log.error({ err, rule: id }, 'repairing a rule failed; will retry');
        failed.push(id);
        await sql`
          update rules set repair_attempts = repair_attempts + 1,
                 next_repair_at = now() + make_interval(secs => least(${maxBackoff}, ${backoff} * power(2, repair_attempts)))
          where id = ${id}::uuid and state = 'STUCK'`.catch(() => {});
      }
    }
    return done;
  }

  return {
    runOnce,
    run: (signal) => runLoop('judge-repairer', log, runOnce, signal, { intervalMs: options.intervalMs ?? 10_000 }),
  };
}
