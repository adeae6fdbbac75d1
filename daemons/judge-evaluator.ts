/**
 * Judge evaluator: files attached to or detached from a collection under a rule gain or lose
 * locks. Work comes from `updated_dids` (written by a trigger on did_contents); each claimed
 * collection's rules, and those of every collection above it, are reconciled (core/rules.ts).
 *
 *   claim a batch (FOR UPDATE SKIP LOCKED, deleted on commit) -> lock the rules above (id order)
 *   -> reconcileRule each -> commit
 *
 * Two evaluators never double-create: they claim different queue rows, and serialise on the
 * rule rows, so the second one sees the first one's locks. A batch that fails is retried one
 * collection at a time; a collection that still fails waits with backoff instead of blocking.
 */
import type { Sql } from '../core/db.ts';
import { withTransaction } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { lockRulesAbove, randomFor, reconcileRule } from '../core/rules.ts';
import type { PolicyRegistry } from '../policies/registry.ts';
import { createWaker, runLoop, type Daemon } from './loop.ts';

export interface EvaluatorOptions {
  intervalMs?: number;
  /** Queue entries per transaction. */
  batch?: number;
  graceSeconds?: number;
  seed?: number;
  /** LISTEN for attach/detach notifications to wake up early (default true in run()). */
  listen?: boolean;
}

type Entry = { id: number; vo: string; scope: string; name: string };

export function createJudgeEvaluator(deps: { sql: Sql; log: Logger; policies: PolicyRegistry }, options: EvaluatorOptions = {}): Daemon {
  const { sql, log, policies } = deps;
  const batch = options.batch ?? 500;
  const random = randomFor(options.seed);

  async function evaluate(only?: Entry): Promise<number> {
    return withTransaction(sql, async (tx) => {
      const claimed = only
        ? await tx<Entry[]>`
            delete from updated_dids where id in (
              select id from updated_dids where vo = ${only.vo} and scope = ${only.scope} and name = ${only.name}
              for update skip locked)
            returning id, vo, scope, name`
        : await tx<Entry[]>`
            delete from updated_dids where id in (
              select id from updated_dids where not_before is null or not_before <= now()
              order by id limit ${batch} for update skip locked)
            returning id, vo, scope, name`;
      if (!claimed.length) return 0;
      const dids = [...new Map(claimed.map((c) => [`${c.vo}\u0000${c.scope}\u0000${c.name}`, c])).values()];
      const rules = await lockRulesAbove(tx, dids);
      for (const rule of rules) {
        const r = await reconcileRule(tx, rule, { policy: await policies.forVo(rule.vo), random, strict: false, graceSeconds: options.graceSeconds });
        if (r.ok + r.replicating + r.released + r.unplaced > 0) log.debug({ rule: rule.id, ...r }, 'rule re-evaluated');
      }
      return claimed.length;
    });
  }

  async function runOnce(): Promise<number> {
    try {
      return await evaluate();
    } catch (err) {
      // Find the entries that fail on their own and make them wait; the rest go through.
      log.warn({ err }, 'evaluator batch failed; retrying collection by collection');
      const pending = await sql<Entry[]>`
        select distinct on (vo, scope, name) id, vo, scope, name from updated_dids
        where not_before is null or not_before <= now() order by vo, scope, name, id limit ${batch}`;
      let done = 0;
      for (const e of pending) {
        try {
          done += await evaluate(e);
        } catch (err2) {
          log.error({ err: err2, did: `${e.scope}:${e.name}`, vo: e.vo }, 'evaluating a collection failed; will retry later');
          await sql`
            update updated_dids set attempts = attempts + 1,
                   not_before = now() + make_interval(secs => least(3600, 10 * power(2, attempts)))
            where vo = ${e.vo} and scope = ${e.scope} and name = ${e.name}`;
        }
      }
      return done;
    }
  }

  return {
    runOnce,
    async run(signal) {
      const waker = createWaker();
      let unlisten: (() => Promise<void>) | undefined;
      if (options.listen ?? true) {
        try {
          const sub = await sql.listen('sluice_updated_dids', () => waker.wake());
          unlisten = sub.unlisten;
        } catch (err) {
          log.warn({ err }, 'LISTEN failed; evaluator polls only');
        }
      }
      try {
        await runLoop('judge-evaluator', log, runOnce, signal, { intervalMs: options.intervalMs ?? 1000 }, waker);
      } finally {
        await unlisten?.().catch(() => {});
      }
    },
  };
}
