import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import type { Sql } from '../../core/db.ts';
import { withTransaction } from '../../core/db.ts';
import { addDids, attachDids } from '../../core/catalogue.ts';
import { addReplicas } from '../../core/replicas.ts';
import { hashPath } from '../../policies/default.ts';
import { createRules, deleteRule, getRule, listLocks, listRules, resolveExpression, updateRule, type NewRule } from '../../core/rules.ts';
import { markReplicaAvailable, markRequestFailed } from '../../core/locks.ts';
import { accountUsage, setAccountLimit } from '../../core/quota.ts';
import { checkInvariants, count, dataset, policy, seedVo, snapshot, type SeedRse } from './rules-helpers.ts';

let db: TestDatabase;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
});
afterAll(async () => {
  await db?.drop();
});

const RSES: SeedRse[] = [
  { name: 'A', attributes: { tier: '1', country: 'FR', w: '1' } },
  { name: 'B', attributes: { tier: '1', country: 'DE', w: '5' } },
  { name: 'C', attributes: { tier: '2', country: 'FR', w: '0' } },
  { name: 'D', attributes: { tier: '2', country: 'DE' } },
  { name: 'RO', attributes: { tier: '1', country: 'IT' }, writable: false },
];

let voSeq = 0;
async function freshVo(rses = RSES) {
  const vo = `v${++voSeq}`;
  return seedVo(sql, vo, rses);
}

function rule(vo: string, input: Partial<NewRule> & { dids: NewRule['dids'] }, opts: { account?: string; seed?: number } = {}) {
  return createRules(sql, vo, opts.account ?? 'admin', { copies: 1, rse_expression: '*', ...input }, { policy, seed: opts.seed ?? 1 });
}

async function lockRows(vo: string, id: string) {
  return sql<{ scope: string; name: string; rse: string; state: string }[]>`
    select l.scope, l.name, r.name as rse, l.state from locks l join rses r on r.id = l.rse_id
    where l.vo = ${vo} and l.rule_id = ${id}::uuid order by l.name, r.name`;
}

describe('rule creation', () => {
  it('writes locks, COPYING replicas at the policy path and one request per (file, destination)', async () => {
    const { vo, ids } = await freshVo();
    await dataset(sql, vo, 'data', 'ds1', 20);
    const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'ds1' }], copies: 2, rse_expression: 'tier=1' });
    expect(r.state).toBe('REPLICATING');
    expect(r.locks_replicating_cnt).toBe(40);
    expect(r.grouping).toBe('DATASET');
    const locks = await lockRows(vo, r.id);
    expect(locks).toHaveLength(40);
    // DATASET grouping: every file on the same two RSEs, which are the writable tier=1 ones.
    expect(new Set(locks.map((l) => l.rse))).toEqual(new Set(['A', 'B']));
    const reps = await sql<{ name: string; state: string; path: string; lock_cnt: number; rse_id: number }[]>`
      select name, state, path, lock_cnt, rse_id from replicas where vo = ${vo} order by name, rse_id`;
    expect(reps).toHaveLength(40);
    for (const rep of reps) {
      expect(rep.state).toBe('COPYING');
      expect(rep.lock_cnt).toBe(1);
      expect(rep.path).toBe(hashPath({ scope: 'data', name: rep.name }));
    }
    const reqs = await sql<{ state: string; dest_rse_id: number; priority: number; bytes: number }[]>`select state, dest_rse_id, priority, bytes from requests where vo = ${vo}`;
    expect(reqs).toHaveLength(40);
    expect(reqs.every((q) => q.state === 'QUEUED' && q.priority === 3)).toBe(true);
    expect(new Set(reqs.map((q) => q.dest_rse_id))).toEqual(new Set([ids.get('A'), ids.get('B')]));
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('places on RSEs already holding the data first: lock OK, no transfer', async () => {
    const { vo } = await freshVo();
    const fs = await dataset(sql, vo, 'data', 'held', 5);
    await addReplicas(sql, vo, policy, 'D', fs.map((f) => ({ scope: f.scope, name: f.name })));
    for (const seed of [1, 2, 3, 4, 5]) {
      const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'held' }], rse_expression: 'A|B|D' }, { seed });
      expect(r.state).toBe('OK');
      expect((await lockRows(vo, r.id)).every((l) => l.rse === 'D' && l.state === 'OK')).toBe(true);
      await deleteRule(sql, vo, r.id);
    }
    expect(await count(sql, 'requests', vo)).toBe(0);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('shares one live request between rules and keeps the higher priority', async () => {
    const { vo } = await freshVo();
    await dataset(sql, vo, 'data', 'shared', 3);
    const [r1] = await rule(vo, { dids: [{ scope: 'data', name: 'shared' }], rse_expression: 'A', priority: 2 });
    const [r2] = await rule(vo, { dids: [{ scope: 'data', name: 'shared' }], rse_expression: 'A', priority: 5 }, { account: 'alice' });
    const reqs = await sql<{ priority: number }[]>`select priority from requests where vo = ${vo}`;
    expect(reqs.map((q) => q.priority)).toEqual([5, 5, 5]);
    const reps = await sql<{ lock_cnt: number }[]>`select lock_cnt from replicas where vo = ${vo}`;
    expect(reps.map((r) => r.lock_cnt)).toEqual([2, 2, 2]);
    expect((await getRule(sql, vo, r2.id)).locks_replicating_cnt).toBe(3);
    // Deleting the high-priority rule leaves the request to the other rule.
    await deleteRule(sql, vo, r2.id);
    expect((await sql`select 1 from requests where vo = ${vo} and state = 'QUEUED'`).length).toBe(3);
    await deleteRule(sql, vo, r1.id);
    expect((await sql`select 1 from requests where vo = ${vo} and state = 'QUEUED'`).length).toBe(0);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('groups ALL on one RSE set, DATASET per dataset, NONE per file', async () => {
    const rses = Array.from({ length: 8 }, (_, i) => ({ name: `S${i}`, attributes: { disk: 'true' } }));
    const { vo } = await freshVo(rses);
    await addDids(sql, vo, 'admin', [{ scope: 'data', name: 'cont', type: 'CONTAINER' }]);
    for (const ds of ['d1', 'd2', 'd3', 'd4']) {
      await dataset(sql, vo, 'data', ds, 10);
      await attachDids(sql, vo, { scope: 'data', name: 'cont' }, [{ scope: 'data', name: ds }]);
    }
    const cont = [{ scope: 'data', name: 'cont' }];
    const perDataset = async (id: string) => {
      const rows = await sql<{ ds: string; rses: string[] }[]>`
        select c.name as ds, array_agg(distinct r.name order by r.name) as rses
        from locks l join rses r on r.id = l.rse_id join did_contents c on c.child_scope = l.scope and c.child_name = l.name and c.vo = l.vo
        where l.rule_id = ${id}::uuid group by c.name order by c.name`;
      return rows;
    };
    // NONE first: later rules prefer RSEs already copying the data, which is the point of step 1.
    const [none] = await rule(vo, { dids: cont, rse_expression: 'disk', copies: 2, grouping: 'NONE' }, { seed: 7 });
    const noneLocks = await lockRows(vo, none.id);
    expect(noneLocks).toHaveLength(80);
    const perFile = new Map<string, Set<string>>();
    for (const l of noneLocks) perFile.set(l.name, (perFile.get(l.name) ?? new Set()).add(l.rse));
    expect([...perFile.values()].every((s) => s.size === 2)).toBe(true);
    // 40 files over 8 RSEs at random: a per-file placement uses (nearly) all of them.
    expect(new Set(noneLocks.map((l) => l.rse)).size).toBeGreaterThanOrEqual(6);
    const [all] = await rule(vo, { dids: cont, rse_expression: 'disk', copies: 2, grouping: 'ALL' }, { seed: 7 });
    const allRses = new Set((await lockRows(vo, all.id)).map((l) => l.rse));
    expect(allRses.size).toBe(2);
    const [byDs] = await rule(vo, { dids: cont, rse_expression: 'disk', copies: 2, grouping: 'DATASET' }, { seed: 7 });
    for (const d of await perDataset(byDs.id)) expect(d.rses).toHaveLength(2);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('is reproducible for a seed and spreads by weight', async () => {
    const rses = [
      { name: 'H', attributes: { w: '9' } },
      { name: 'L', attributes: { w: '1' } },
    ];
    const placements: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const { vo } = await freshVo(rses);
      await dataset(sql, vo, 'data', 'w', 400);
      const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'w' }], rse_expression: '*', weight: 'w', grouping: 'NONE' }, { seed: 42 });
      placements.push((await lockRows(vo, r.id)).map((l) => `${l.name}@${l.rse}`));
    }
    expect(placements[0]).toEqual(placements[1]);
    const heavy = placements[0].filter((p) => p.endsWith('@H')).length;
    // 400 draws at p=0.9: mean 360, sd 6.
    expect(heavy).toBeGreaterThan(330);
    expect(heavy).toBeLessThan(390);
  });

  it('applies expressions strictly left to right', async () => {
    const { vo } = await freshVo();
    await dataset(sql, vo, 'data', 'ltr', 2);
    const did = [{ scope: 'data', name: 'ltr' }];
    // (tier=1 & country=DE) | C = {B, C}
    expect((await resolveExpression(sql, vo, 'tier=1&country=DE|C')).rses).toEqual(['B', 'C']);
    const [r] = await rule(vo, { dids: did, rse_expression: 'tier=1&country=DE|C', copies: 2 });
    expect(new Set((await lockRows(vo, r.id)).map((l) => l.rse))).toEqual(new Set(['B', 'C']));
    // (C | tier=1) & country=DE = {B}: with precedence it would be {C, B} and take two copies.
    expect((await resolveExpression(sql, vo, 'C|tier=1&country=DE')).rses).toEqual(['B']);
    const before = await snapshot(sql);
    await expect(rule(vo, { dids: did, rse_expression: 'C|tier=1&country=DE', copies: 2 })).rejects.toMatchObject({ code: 'InsufficientTargetRses' });
    expect(await snapshot(sql)).toEqual(before);
  });
});

describe('bad input writes nothing', () => {
  const cases: Array<[string, (vo: string) => Partial<NewRule>, string]> = [
    ['copies < 1', () => ({ copies: 0 }), 'InvalidCopies'],
    ['more copies than matching RSEs', () => ({ copies: 3, rse_expression: 'tier=1' }), 'InsufficientTargetRses'],
    ['non-writable RSEs do not count', () => ({ copies: 1, rse_expression: 'RO' }), 'InsufficientTargetRses'],
    ['weight attribute on too few RSEs', () => ({ copies: 3, weight: 'w' }), 'InsufficientTargetRses'],
    ['syntax error', () => ({ rse_expression: 'tier=1&' }), 'InvalidRSEExpression'],
    ['unknown attribute', () => ({ rse_expression: 'tierr=1' }), 'UnknownRSEOrAttribute'],
    ['empty result', () => ({ rse_expression: 'tier=3' }), 'RSEExpressionEmpty'],
    ['bad source expression', () => ({ source_replica_expression: 'nope' }), 'UnknownRSEOrAttribute'],
    ['negative lifetime', () => ({ lifetime: -5 }), 'InvalidLifetime'],
    ['unknown grouping', () => ({ grouping: 'SOME' as never }), 'InvalidGrouping'],
    ['priority out of range', () => ({ priority: 9 }), 'InvalidPriority'],
    ['unknown DID', () => ({ dids: [{ scope: 'data', name: 'nope' }] }), 'DidNotFound'],
    ['second DID unknown: the first rule is not kept either', () => ({ dids: [{ scope: 'data', name: 'bad' }, { scope: 'data', name: 'nope' }] }), 'DidNotFound'],
    ['duplicate DID', () => ({ dids: [{ scope: 'data', name: 'bad' }, { scope: 'data', name: 'bad' }] }), 'DuplicateDid'],
    ['no DIDs', () => ({ dids: [] }), 'EmptyRequest'],
  ];
  it.each(cases)('%s', async (_label, make, code) => {
    const { vo } = await freshVo();
    if (!(await sql`select 1 from dids where vo = ${vo} and name = 'bad'`).length) await dataset(sql, vo, 'data', 'bad', 3);
    const before = await snapshot(sql);
    await expect(rule(vo, { dids: [{ scope: 'data', name: 'bad' }], ...make(vo) })).rejects.toMatchObject({ code });
    expect(await snapshot(sql)).toEqual(before);
  });

  it("refuses another VO's DIDs and RSEs", async () => {
    const { vo: mine } = await freshVo();
    const { vo: other } = await seedVo(sql, `x${++voSeq}`, [{ name: 'OTHER' }]);
    await dataset(sql, other, 'data', 'theirs', 2);
    await dataset(sql, mine, 'data', 'mine', 2);
    const before = await snapshot(sql);
    await expect(rule(mine, { dids: [{ scope: 'data', name: 'theirs' }] })).rejects.toMatchObject({ code: 'DidNotFound' });
    await expect(rule(mine, { dids: [{ scope: 'data', name: 'mine' }], rse_expression: 'OTHER' })).rejects.toMatchObject({ code: 'UnknownRSEOrAttribute' });
    expect(await snapshot(sql)).toEqual(before);
    // '*' only ever means the caller's VO's RSEs.
    const [r] = await rule(mine, { dids: [{ scope: 'data', name: 'mine' }], copies: 4, rse_expression: '*' });
    expect((await lockRows(mine, r.id)).some((l) => l.rse === 'OTHER')).toBe(false);
  });
});

describe('transfer outcomes (the conveyor contract)', () => {
  it('markReplicaAvailable turns locks OK and the rule OK when all are', async () => {
    const { vo, ids } = await freshVo();
    await dataset(sql, vo, 'data', 'tx', 2);
    const [r1] = await rule(vo, { dids: [{ scope: 'data', name: 'tx' }], rse_expression: 'A' });
    const [r2] = await rule(vo, { dids: [{ scope: 'data', name: 'tx.000000' }], rse_expression: 'A' }, { account: 'alice' });
    const a = ids.get('A')!;
    const res = await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: 'tx.000000', rseId: a }));
    expect(res).toEqual({ updated: true, locks: 2 });
    expect((await getRule(sql, vo, r2.id)).state).toBe('OK');
    const mid = await getRule(sql, vo, r1.id);
    expect([mid.state, mid.locks_ok_cnt, mid.locks_replicating_cnt]).toEqual(['REPLICATING', 1, 1]);
    expect(mid.progress.bytes_ok).toBe(1000);
    await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: 'tx.000001', rseId: a }));
    const done = await getRule(sql, vo, r1.id);
    expect([done.state, done.locks_ok_cnt, done.locks_replicating_cnt]).toEqual(['OK', 2, 0]);
    expect((await sql`select state from requests where vo = ${vo}`).map((q) => q.state)).toEqual(['DONE', 'DONE']);
    expect((await sql`select state from replicas where vo = ${vo}`).map((q) => q.state)).toEqual(['AVAILABLE', 'AVAILABLE']);
    // Idempotent; and an unknown replica changes nothing.
    expect(await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: 'tx.000001', rseId: a }))).toEqual({ updated: true, locks: 0 });
    expect(await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: 'tx.000001', rseId: ids.get('B')! }))).toEqual({ updated: false, locks: 0 });
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('markRequestFailed makes locks and rules STUCK with the reason', async () => {
    const { vo } = await freshVo();
    await dataset(sql, vo, 'data', 'fail', 2);
    const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'fail' }], rse_expression: 'B' });
    const [req] = await sql<{ id: number }[]>`select id from requests where vo = ${vo} and name = 'fail.000001'`;
    expect(await withTransaction(sql, (tx) => markRequestFailed(tx, req.id, 'checksum mismatch at destination'))).toEqual({ updated: true, locks: 1 });
    const g = await getRule(sql, vo, r.id);
    expect([g.state, g.locks_stuck_cnt, g.locks_replicating_cnt, g.error]).toEqual(['STUCK', 1, 1, 'checksum mismatch at destination']);
    expect(g.stuck_at).toBeInstanceOf(Date);
    const stuck = await listLocks(sql, vo, r.id, { state: 'STUCK', limit: 10 });
    expect(stuck.map((l) => [l.name, l.error])).toEqual([['fail.000001', 'checksum mismatch at destination']]);
    // A request that is no longer live is not failed twice.
    expect(await withTransaction(sql, (tx) => markRequestFailed(tx, req.id, 'again'))).toEqual({ updated: false, locks: 0 });
    expect(await checkInvariants(sql)).toEqual([]);
  });
});

describe('delete, update, release', () => {
  it('deleting releases locks; replicas left unlocked get a tombstone (now with purge_replicas)', async () => {
    const { vo, ids } = await freshVo();
    await dataset(sql, vo, 'data', 'del', 2);
    const [keep] = await rule(vo, { dids: [{ scope: 'data', name: 'del.000000' }], rse_expression: 'A' });
    const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'del' }], rse_expression: 'A', purge_replicas: true });
    await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: 'del.000001', rseId: ids.get('A')! }));
    expect(await deleteRule(sql, vo, r.id)).toEqual({ released: 2 });
    const reps = await sql<{ name: string; lock_cnt: number; purged: boolean | null }[]>`
      select name, lock_cnt, tombstone <= now() as purged from replicas where vo = ${vo} order by name`;
    expect(reps).toEqual([
      { name: 'del.000000', lock_cnt: 1, purged: null },
      { name: 'del.000001', lock_cnt: 0, purged: true },
    ]);
    await expect(getRule(sql, vo, r.id)).rejects.toMatchObject({ code: 'RuleNotFound' });
    // Without purge: tombstone after the grace period.
    await deleteRule(sql, vo, keep.id, { graceSeconds: 600 });
    const [later] = await sql<{ ahead: boolean }[]>`select tombstone > now() + interval '500 seconds' as ahead from replicas where vo = ${vo} and name = 'del.000000'`;
    expect(later.ahead).toBe(true);
    // Its queued request is cancelled: nobody wants that copy any more.
    expect((await sql`select state from requests where vo = ${vo} and name = 'del.000000'`)[0].state).toBe('FAILED');
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('a locked rule cannot be deleted until unlocked; updates reach queued requests', async () => {
    const { vo } = await freshVo();
    await dataset(sql, vo, 'data', 'upd', 2);
    const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'upd' }], rse_expression: 'D', locked: true, priority: 2 });
    const before = await snapshot(sql);
    await expect(deleteRule(sql, vo, r.id)).rejects.toMatchObject({ code: 'RuleLocked', status: 409 });
    expect(await snapshot(sql)).toEqual(before);
    const u = await updateRule(sql, vo, r.id, { lifetime: 3600, priority: 4, activity: 'express', locked: false, comment: 'why' });
    expect(u.locked).toBe(false);
    expect(u.priority).toBe(4);
    expect(u.expires_at!.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    const reqs = await sql<{ priority: number; activity: string }[]>`select priority, activity from requests where vo = ${vo}`;
    expect(reqs).toEqual([{ priority: 4, activity: 'express' }, { priority: 4, activity: 'express' }]);
    await expect(updateRule(sql, vo, r.id, { lifetime: -1 })).rejects.toMatchObject({ code: 'InvalidLifetime' });
    await expect(updateRule(sql, vo, r.id, {})).rejects.toMatchObject({ code: 'EmptyRequest' });
    expect((await updateRule(sql, vo, r.id, { lifetime: null })).expires_at).toBeNull();
    await deleteRule(sql, vo, r.id);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('lists by account, DID and state, paginated', async () => {
    const { vo } = await freshVo();
    await dataset(sql, vo, 'data', 'l1', 1);
    await dataset(sql, vo, 'data', 'l2', 1);
    await rule(vo, { dids: [{ scope: 'data', name: 'l1' }, { scope: 'data', name: 'l2' }], rse_expression: 'A' });
    await rule(vo, { dids: [{ scope: 'data', name: 'l1' }], rse_expression: 'B' }, { account: 'alice' });
    expect((await listRules(sql, vo, { limit: 10 })).length).toBe(3);
    expect((await listRules(sql, vo, { account: 'alice', limit: 10 })).map((r) => r.rse_expression)).toEqual(['B']);
    expect((await listRules(sql, vo, { did: { scope: 'data', name: 'l1' }, limit: 10 })).length).toBe(2);
    expect((await listRules(sql, vo, { state: 'OK', limit: 10 })).length).toBe(0);
    const page1 = await listRules(sql, vo, { limit: 1 });
    expect(page1.length).toBe(2); // limit + 1: the caller cuts and makes a cursor
    const page2 = await listRules(sql, vo, { limit: 10, after: [page1[0].created_at.toISOString(), page1[0].id] });
    expect(page2.map((r) => r.id)).not.toContain(page1[0].id);
    expect(page2.length).toBe(2);
  });
});

describe('quota', () => {
  it('refuses a rule over the limit with the numbers, counts usage per lock, frees it on release', async () => {
    const { vo } = await freshVo();
    await dataset(sql, vo, 'data', 'q', 3); // 1000 + 1001 + 1002 bytes
    await setAccountLimit(sql, vo, 'alice', 'A', 3000);
    const before = await snapshot(sql);
    const err = await rule(vo, { dids: [{ scope: 'data', name: 'q' }], rse_expression: 'A' }, { account: 'alice' }).catch((e) => e);
    expect(err.code).toBe('QuotaExceeded');
    expect(err.status).toBe(409);
    expect(err.message).toContain('limit 3000 B');
    expect(err.details.over[0]).toMatchObject({ rse: 'A', limit_bytes: 3000, used_bytes: 0, needed_bytes: 3003 });
    expect(await snapshot(sql)).toEqual(before);
    // An RSE without room is skipped when others can take the copy.
    const [r] = await rule(vo, { dids: [{ scope: 'data', name: 'q' }], rse_expression: 'A|B' }, { account: 'alice' });
    expect(new Set((await lockRows(vo, r.id)).map((l) => l.rse))).toEqual(new Set(['B']));
    await setAccountLimit(sql, vo, 'alice', 'A', 10_000);
    const [r2] = await rule(vo, { dids: [{ scope: 'data', name: 'q' }], rse_expression: 'A' }, { account: 'alice' });
    expect(await accountUsage(sql, vo, 'alice')).toEqual([
      { rse: 'A', files: 3, bytes: 3003, limit_bytes: 10_000, remaining_bytes: 6997 },
      { rse: 'B', files: 3, bytes: 3003, limit_bytes: null, remaining_bytes: null },
    ]);
    await deleteRule(sql, vo, r2.id);
    expect((await accountUsage(sql, vo, 'alice'))[0]).toMatchObject({ rse: 'A', files: 0, bytes: 0, remaining_bytes: 10_000 });
    await expect(setAccountLimit(sql, vo, 'nobody', 'A', 1)).rejects.toMatchObject({ code: 'AccountNotFound' });
    await expect(setAccountLimit(sql, vo, 'alice', 'NOPE', 1)).rejects.toMatchObject({ code: 'RseNotFound' });
    expect(await checkInvariants(sql)).toEqual([]);
  });
});
