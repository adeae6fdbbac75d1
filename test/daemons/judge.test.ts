import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import type { Sql } from '../../core/db.ts';
import { withTransaction } from '../../core/db.ts';
import { silentLogger } from '../../core/log.ts';
import { addDids, attachDids, detachDids } from '../../core/catalogue.ts';
import { createRules, getRule } from '../../core/rules.ts';
import { markReplicaAvailable, markRequestFailed } from '../../core/locks.ts';
import { setAccountLimit } from '../../core/quota.ts';
import { createPolicyRegistry } from '../../policies/registry.ts';
import { createJudgeEvaluator } from '../../daemons/judge-evaluator.ts';
import { createJudgeCleaner } from '../../daemons/judge-cleaner.ts';
import { createJudgeRepairer } from '../../daemons/judge-repairer.ts';
import { checkInvariants, dataset, files, policy, seedVo, type SeedRse } from '../core/rules-helpers.ts';

let db: TestDatabase;
let sql: Sql;
let policies: ReturnType<typeof createPolicyRegistry>;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  policies = createPolicyRegistry(sql, { cacheMs: 0 });
});
afterAll(async () => {
  await db?.drop();
});

const RSES: SeedRse[] = [
  { name: 'A', attributes: { tier: '1' } },
  { name: 'B', attributes: { tier: '1' } },
  { name: 'C', attributes: { tier: '2' } },
  { name: 'D', attributes: { tier: '2' } },
];
let seq = 0;
const fresh = () => seedVo(sql, `j${++seq}`, RSES);
const deps = () => ({ sql, log: silentLogger, policies });

async function locksPerFile(ruleId: string) {
  return sql<{ name: string; n: number; rses: string[] }[]>`
    select l.name, count(*)::int as n, array_agg(r.name order by r.name) as rses
    from locks l join rses r on r.id = l.rse_id where l.rule_id = ${ruleId}::uuid group by l.name order by l.name`;
}

async function until(check: () => Promise<boolean>, ms = 5000) {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('judge evaluator', () => {
  it('attached files gain locks where their dataset already is; detached files lose them', async () => {
    const { vo } = await fresh();
    await dataset(sql, vo, 'data', 'ds', 5);
    await addDids(sql, vo, 'admin', [{ scope: 'data', name: 'cont', type: 'CONTAINER' }]);
    await attachDids(sql, vo, { scope: 'data', name: 'cont' }, [{ scope: 'data', name: 'ds' }]);
    const [r1] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'ds' }], copies: 2, rse_expression: 'tier=1', grouping: 'DATASET' }, { policy, seed: 3 });
    const [r2] = await createRules(sql, vo, 'alice', { dids: [{ scope: 'data', name: 'cont' }], copies: 1, rse_expression: 'tier=2', grouping: 'NONE' }, { policy, seed: 3 });
    const placed = new Set((await locksPerFile(r1.id)).flatMap((f) => f.rses));
    expect(placed.size).toBe(2);

    const ev = createJudgeEvaluator(deps(), { seed: 1 });
    await ev.runOnce(); // drains what the setup queued
    const more = files('data', 10, 'ds', 5);
    await addDids(sql, vo, 'admin', more);
    await attachDids(sql, vo, { scope: 'data', name: 'ds' }, more);
    expect(await ev.runOnce()).toBe(1);
    const after = await locksPerFile(r1.id);
    expect(after).toHaveLength(15);
    // DATASET grouping: new files join the dataset's RSEs.
    for (const f of after) expect(new Set(f.rses)).toEqual(placed);
    expect((await locksPerFile(r2.id)).length).toBe(15); // via the container above
    expect((await getRule(sql, vo, r1.id)).locks_replicating_cnt).toBe(30);

    await detachDids(sql, vo, { scope: 'data', name: 'ds' }, more.slice(0, 3));
    expect(await ev.runOnce()).toBe(1);
    expect((await locksPerFile(r1.id)).length).toBe(12);
    expect((await locksPerFile(r2.id)).length).toBe(12);
    const orphans = await sql`select lock_cnt, tombstone from replicas where vo = ${vo} and name = any(${more.slice(0, 3).map((f) => f.name)}::text[])`;
    expect(orphans.length).toBe(9); // 3 files x (A, B for r1 + one of C, D for r2)
    expect(orphans.every((o) => o.lock_cnt === 0 && o.tombstone !== null)).toBe(true);
    expect(await ev.runOnce()).toBe(0);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('a rule the evaluator cannot place turns STUCK with the reason; the repairer places it later', async () => {
    const { vo } = await fresh();
    await dataset(sql, vo, 'data', 'q', 1);
    await setAccountLimit(sql, vo, 'alice', 'C', 100_000);
    const [r] = await createRules(sql, vo, 'alice', { dids: [{ scope: 'data', name: 'q' }], copies: 1, rse_expression: 'C' }, { policy, seed: 1 });
    await setAccountLimit(sql, vo, 'alice', 'C', 1500);
    const ev = createJudgeEvaluator(deps());
    await ev.runOnce();
    const more = files('data', 2, 'qq');
    await addDids(sql, vo, 'admin', more);
    await attachDids(sql, vo, { scope: 'data', name: 'q' }, more);
    await ev.runOnce();
    const stuck = await getRule(sql, vo, r.id);
    expect([stuck.state, stuck.unplaced_cnt]).toEqual(['STUCK', 2]);
    expect(stuck.error).toMatch(/^QuotaExceeded: .*limit 1500 B/);
    await setAccountLimit(sql, vo, 'alice', 'C', null);
    expect(await createJudgeRepairer(deps()).runOnce()).toBe(1);
    const fixed = await getRule(sql, vo, r.id);
    expect([fixed.state, fixed.unplaced_cnt, fixed.locks_replicating_cnt]).toEqual(['REPLICATING', 0, 3]);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('two evaluators at once never double-create locks or requests', async () => {
    const { vo } = await fresh();
    await dataset(sql, vo, 'data', 'big', 0);
    const rules = [];
    for (const [grouping, copies] of [['DATASET', 2], ['NONE', 2], ['ALL', 1]] as const) {
      rules.push((await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'big' }], copies, rse_expression: '*', grouping }, { policy }))[0]);
    }
    const all = files('data', 2000, 'big');
    await addDids(sql, vo, 'admin', all);
    for (let i = 0; i < all.length; i += 250) await attachDids(sql, vo, { scope: 'data', name: 'big' }, all.slice(i, i + 250));
    const a = createJudgeEvaluator(deps(), { batch: 1 });
    const b = createJudgeEvaluator(deps(), { batch: 1 });
    const drain = async (e: typeof a) => {
      let total = 0;
      for (let n = await e.runOnce(); n > 0; n = await e.runOnce()) total += n;
      return total;
    };
    const [na, nb] = await Promise.all([drain(a), drain(b)]);
    expect(na + nb).toBe(8);
    expect(na).toBeGreaterThan(0);
    expect(nb).toBeGreaterThan(0);
    for (const [i, copies] of [2, 2, 1].entries()) {
      const per = await locksPerFile(rules[i].id);
      expect(per).toHaveLength(2000);
      expect(per.every((f) => f.n === copies && new Set(f.rses).size === copies)).toBe(true);
    }
    const [{ live, pairs }] = await sql<{ live: number; pairs: number }[]>`
      select (select count(*) from requests where vo = ${vo} and state = 'QUEUED')::int as live,
             (select count(distinct (scope, name, rse_id)) from locks where vo = ${vo} and state = 'REPLICATING')::int as pairs`;
    expect(live).toBe(pairs);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('runs as a loop: an attach is reflected without calling runOnce', async () => {
    const { vo } = await fresh();
    await dataset(sql, vo, 'data', 'live', 1);
    const [r] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'live' }], copies: 1, rse_expression: 'A' }, { policy });
    const ac = new AbortController();
    const running = createJudgeEvaluator(deps(), { intervalMs: 5000 }).run(ac.signal);
    try {
      const more = files('data', 50, 'live', 1);
      await addDids(sql, vo, 'admin', more);
      await attachDids(sql, vo, { scope: 'data', name: 'live' }, more);
      // interval 5 s: reaching this well before proves the NOTIFY wake-up works
      const t0 = Date.now();
      await until(async () => (await getRule(sql, vo, r.id)).locks_replicating_cnt === 51, 4000);
      expect(Date.now() - t0).toBeLessThan(4000);
    } finally {
      ac.abort();
      await running;
    }
  });
});

describe('judge cleaner', () => {
  it('deletes expired rules (not locked ones) and tombstones what they held; also as a loop', async () => {
    const { vo } = await fresh();
    await dataset(sql, vo, 'data', 'exp', 2);
    const mk = (locked: boolean) => createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'exp' }], copies: 1, rse_expression: 'C', lifetime: 60, locked, purge_replicas: true }, { policy });
    const [gone] = await mk(false);
    const [kept] = await mk(true);
    const [later] = await mk(false);
    await sql`update rules set expires_at = now() - interval '1 second' where id = any(${[gone.id, kept.id]}::uuid[])`;
    const cleaner = createJudgeCleaner({ sql, log: silentLogger });
    expect(await cleaner.runOnce()).toBe(1);
    expect(await cleaner.runOnce()).toBe(0);
    await expect(getRule(sql, vo, gone.id)).rejects.toMatchObject({ code: 'RuleNotFound' });
    expect((await getRule(sql, vo, kept.id)).locked).toBe(true);
    expect((await sql`select lock_cnt from replicas where vo = ${vo}`).map((r) => r.lock_cnt)).toEqual([2, 2]);

    await sql`update rules set locked = false where id = ${kept.id}::uuid`;
    await sql`update rules set expires_at = now() where id = ${later.id}::uuid`;
    const ac = new AbortController();
    const running = cleaner.run(ac.signal);
    try {
      await until(async () => (await sql`select 1 from rules where vo = ${vo}`).length === 0);
    } finally {
      ac.abort();
      await running;
    }
    const reps = await sql`select lock_cnt, tombstone <= now() as due from replicas where vo = ${vo}`;
    expect(reps.every((r) => r.lock_cnt === 0 && r.due)).toBe(true);
    expect(await checkInvariants(sql)).toEqual([]);
  });
});

describe('judge repairer', () => {
  async function stuckRule(vo: string, expression: string, name: string, n = 2) {
    await dataset(sql, vo, 'data', name, n);
    const [r] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name }], copies: 1, rse_expression: expression, grouping: 'NONE' }, { policy, seed: 5 });
    const reqs = await sql<{ id: number }[]>`select q.id from requests q where q.vo = ${vo} and q.name like ${name + '.%'} and q.state = 'QUEUED'`;
    for (const q of reqs) await withTransaction(sql, (tx) => markRequestFailed(tx, q.id, 'destination refused: 507 Insufficient Storage'));
    expect((await getRule(sql, vo, r.id)).state).toBe('STUCK');
    return r;
  }

  it('moves stuck locks to another RSE of the expression, or retries the same one later', async () => {
    const { vo } = await fresh();
    const r = await stuckRule(vo, 'A|B', 'mv');
    const before = await locksPerFile(r.id);
    const rep = createJudgeRepairer(deps(), { seed: 1, retryDelaySeconds: 30 });
    expect(await rep.runOnce()).toBe(1);
    expect(await rep.runOnce()).toBe(0); // backed off
    const after = await locksPerFile(r.id);
    for (const [i, f] of after.entries()) {
      expect(f.n).toBe(1);
      expect(f.rses).not.toEqual(before[i].rses);
    }
    const g = await getRule(sql, vo, r.id);
    expect([g.state, g.locks_stuck_cnt, g.locks_replicating_cnt]).toEqual(['REPLICATING', 0, 2]);
    // The failed destinations hold no data: released at once for the reaper.
    const old = await sql`select lock_cnt, tombstone <= now() as due from replicas r join rses s on s.id = r.rse_id
                          where r.vo = ${vo} and s.name = ${before[0].rses[0]} and r.name = ${before[0].name}`;
    expect(old[0]).toEqual({ lock_cnt: 0, due: true });

    // Only one RSE: the same transfer is queued again, not before the delay.
    const one = await stuckRule(vo, 'C', 'same', 1);
    expect(await rep.runOnce()).toBe(1);
    const [lock] = await locksPerFile(one.id);
    expect(lock.rses).toEqual(['C']);
    const [q] = await sql`select state, not_before > now() + interval '20 seconds' as later from requests
                          where vo = ${vo} and name = 'same.000000' and state = 'QUEUED'`;
    expect(q).toEqual({ state: 'QUEUED', later: true });
    expect((await getRule(sql, vo, one.id)).state).toBe('REPLICATING');
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('suspends a rule stuck for too long; an OK lock set brings it back', async () => {
    const { vo, ids } = await fresh();
    const r = await stuckRule(vo, 'D', 'susp', 1);
    await sql`update rules set stuck_at = now() - interval '2 hours' where id = ${r.id}::uuid`;
    expect(await createJudgeRepairer(deps(), { suspendAfterSeconds: 3600 }).runOnce()).toBe(1);
    const s = await getRule(sql, vo, r.id);
    expect(s.state).toBe('SUSPENDED');
    expect(s.error).toMatch(/^suspended: stuck for more than 3600 s; last error: destination refused/);
    expect(await createJudgeRepairer(deps()).runOnce()).toBe(0); // left alone
    // The data turns up after all (e.g. registered by hand): everything OK again.
    await sql`update locks set state = 'REPLICATING' where rule_id = ${r.id}::uuid`;
    await sql`update rules set locks_stuck_cnt = 0, locks_replicating_cnt = 1 where id = ${r.id}::uuid`;
    await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: 'susp.000000', rseId: ids.get('D')! }));
    expect((await getRule(sql, vo, r.id)).state).toBe('OK');
  });

  it('two repairers at once repair each rule once; also runs as a loop', async () => {
    const { vo } = await fresh();
    const rules = [];
    for (let i = 0; i < 6; i++) rules.push(await stuckRule(vo, 'tier=1', `par${i}`, 3));
    const a = createJudgeRepairer(deps(), { batch: 1 });
    const b = createJudgeRepairer(deps(), { batch: 1 });
    const drain = async (rp: typeof a) => {
      let total = 0;
      for (let n = await rp.runOnce(); n > 0; n = await rp.runOnce()) total += n;
      return total;
    };
    const [na, nb] = await Promise.all([drain(a), drain(b)]);
    expect(na + nb).toBe(6);
    for (const r of rules) {
      const per = await locksPerFile(r.id);
      expect(per.every((f) => f.n === 1)).toBe(true);
    }
    const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from rules where vo = ${vo} and repair_attempts = 1`;
    expect(n).toBe(6);

    const looped = await stuckRule(vo, 'tier=1', 'loop', 1);
    const ac = new AbortController();
    const running = createJudgeRepairer(deps(), { intervalMs: 20 }).run(ac.signal);
    try {
      await until(async () => (await getRule(sql, vo, looped.id)).state === 'REPLICATING');
    } finally {
      ac.abort();
      await running;
    }
    expect(await checkInvariants(sql)).toEqual([]);
  });
});
