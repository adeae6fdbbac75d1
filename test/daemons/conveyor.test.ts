import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { getRequest, wakeWaitingRequests } from '../../core/requests.ts';
import { createConveyor, type Conveyor } from '../../daemons/conveyor.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { checkInvariants } from '../core/rules-helpers.ts';
import { createWorld, registerReplicas, runUntil, type World } from '../e2e/world.ts';

let db: TestDatabase;
let world: World | undefined;
let conveyor: Conveyor | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await conveyor?.drain(1000);
  conveyor = undefined;
  await world?.close();
  world = undefined;
  await db.sql`truncate vos, storage_endpoints, links, requests, transfer_attempts, rules, locks, replicas, dids, did_contents, rses, accounts, scopes, updated_dids, account_usage cascade`;
});
afterAll(async () => {
  await db.drop();
});

const fast = { timeoutBaseMs: 10_000, backoffBaseMs: 20, backoffMaxMs: 100, backoffJitter: 0 };

async function ruleState(id: string) {
  const [r] = await db.sql<{ state: string; locks_ok_cnt: number; locks_stuck_cnt: number; error: string | null }[]>`
    select state, locks_ok_cnt, locks_stuck_cnt, error from rules where id = ${id}::uuid`;
  return r;
}

async function step(c: Conveyor) {
  await c.runOnce();
  await c.settle();
}

describe('conveyor', { timeout: 60_000 }, () => {
  it('copies a dataset by TPC pull, marks replicas AVAILABLE and the rule OK, one attempt each', async () => {
    world = await createWorld(db.sql, { endpoints: { a: {}, b: {} }, rses: { SRC: 'a', DST: 'b' } });
    const files = await world.dataset('ds1', 20, { on: ['SRC'] });
    const rule = await world.rule({ scope: 'data', name: 'ds1' }, 'DST', 1);
    conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { plan: fast });

    // runOnce: prepare gives every request its source and a link; claim starts them.
    const first = await conveyor.runOnce();
    expect(first).toBeGreaterThanOrEqual(20);
    const [link] = await db.sql<{ id: number; limit_active: number }[]>`select id, limit_active from links`;
    expect(link).toBeDefined();
    await conveyor.settle();
    await runUntil(() => step(conveyor!), async () => (await ruleState(rule)).state === 'OK', 30_000);

    for (const f of files) expect((await world.readReplica('DST', f))?.equals(f.data)).toBe(true);
    const attempts = await db.sql<{ request_id: number; n: number; modes: string[]; errors: number }[]>`
      select request_id, count(*)::int as n, array_agg(distinct mode) as modes, count(error_code)::int as errors
      from transfer_attempts group by request_id`;
    expect(attempts).toHaveLength(20);
    for (const a of attempts) expect(a).toMatchObject({ n: 1, modes: ['tpc-pull'], errors: 0 });
    const [st] = await db.sql<{ done: number; available: number }[]>`
      select (select count(*)::int from requests where state = 'DONE' and lease_owner is null and bytes_done = bytes) as done,
             (select count(*)::int from replicas r join rses s on s.id = r.rse_id where s.name = 'DST' and r.state = 'AVAILABLE') as available`;
    expect(st).toEqual({ done: 20, available: 20 });
    expect(await checkInvariants(db.sql)).toEqual([]);
  });

  it('retries through 5xx from the source and completes; every attempt is kept with its error', async () => {
    world = await createWorld(db.sql, {
      endpoints: { a: { tpc: 'none', faults: [{ method: 'GET', status: 503, count: 6 }] }, b: { tpc: 'none' } },
      rses: { SRC: 'a', DST: 'b' },
    });
    const files = await world.dataset('ds2', 3, { on: ['SRC'] });
    const rule = await world.rule({ scope: 'data', name: 'ds2' }, 'DST', 1);
    conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { plan: { ...fast, maxAttempts: 5 } });
    await runUntil(() => step(conveyor!), async () => (await ruleState(rule)).state === 'OK', 30_000);
    for (const f of files) expect((await world.readReplica('DST', f))?.equals(f.data)).toBe(true);
    const rows = await db.sql<{ error_code: string | null; mode: string; retryable: boolean | null }[]>`select error_code, mode, retryable from transfer_attempts order by id`;
    expect(rows.filter((r) => r.error_code === 'ServerError')).toHaveLength(6);
    expect(rows.filter((r) => r.error_code === null)).toHaveLength(3);
    expect(rows.every((r) => r.mode === 'stream')).toBe(true);
    const [one] = await db.sql<{ id: number }[]>`select request_id as id from transfer_attempts where error_code is not null limit 1`;
    const view = await getRequest(db.sql, 'exp', one.id);
    expect(view.state).toBe('DONE');
    expect(view.attempts_list.length).toBeGreaterThan(1);
    expect(view.attempts_list[0]).toMatchObject({ error_code: 'ServerError', source_rse: 'SRC', dest_rse: 'DST', retryable: true });
  });

  it('never registers corrupted bytes: checksum mismatch is fatal, the file is removed, the lock is STUCK with why', async () => {
    world = await createWorld(db.sql, {
      endpoints: { a: { tpc: 'none', faults: [{ method: 'GET', corrupt: true }] }, b: { tpc: 'none' } },
      rses: { SRC: 'a', DST: 'b' },
    });
    const files = await world.dataset('ds3', 2, { on: ['SRC'] });
    const rule = await world.rule({ scope: 'data', name: 'ds3' }, 'DST', 1);
    conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { plan: fast });
    await runUntil(() => step(conveyor!), async () => (await ruleState(rule)).state === 'STUCK' && (await ruleState(rule)).locks_stuck_cnt === 2, 30_000);
    const [avail] = await db.sql<{ n: number }[]>`select count(*)::int as n from replicas r join rses s on s.id = r.rse_id where s.name = 'DST' and r.state = 'AVAILABLE'`;
    expect(avail.n).toBe(0);
    for (const f of files) expect(await world.readReplica('DST', f)).toBeUndefined();
    const locks = await db.sql<{ state: string; error: string }[]>`select state, error from locks where rule_id = ${rule}::uuid`;
    for (const l of locks) {
      expect(l.state).toBe('STUCK');
      expect(l.error).toMatch(/^ChecksumMismatch \((source|destination)\) after 1 attempt/);
    }
    expect((await ruleState(rule)).error).toMatch(/ChecksumMismatch/);
    expect(await checkInvariants(db.sql)).toEqual([]);
  });

  it('waits with a visible reason when no replica exists, and copies once one appears', async () => {
    world = await createWorld(db.sql, { endpoints: { a: {}, b: {} }, rses: { SRC: 'a', DST: 'b' } });
    const files = await world.dataset('ds4', 2, {});
    const rule = await world.rule({ scope: 'data', name: 'ds4' }, 'DST', 1);
    conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { plan: fast, waitRecheckSeconds: 3600 });
    await step(conveyor);
    const waiting = await db.sql<{ state: string; waiting_reason: string; source_rse_id: number | null }[]>`select state, waiting_reason, source_rse_id from requests`;
    expect(waiting).toHaveLength(2);
    for (const w of waiting) {
      expect(w).toMatchObject({ state: 'QUEUED', source_rse_id: null });
      expect(w.waiting_reason).toMatch(/no AVAILABLE replica/);
    }
    await step(conveyor);
    expect((await ruleState(rule)).state).toBe('REPLICATING');

    for (const f of files) {
      const p = world.fsPath('SRC', f);
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, f.data);
    }
    await registerReplicas(db.sql, 'exp', world.rses.SRC.id, files);
    expect(await wakeWaitingRequests(db.sql, 'exp', files)).toBe(2);
    await runUntil(() => step(conveyor!), async () => (await ruleState(rule)).state === 'OK', 30_000);
    for (const f of files) expect((await world.readReplica('DST', f))?.equals(f.data)).toBe(true);
  });

  it('honours a rule source expression and prefers another source on retry', async () => {
    world = await createWorld(db.sql, {
      endpoints: { a: { tpc: 'none', faults: [{ method: 'GET', status: 500, count: 1 }] }, b: { tpc: 'none' }, c: { tpc: 'none' } },
      rses: { SRC1: 'a', SRC2: 'b', DST: 'c' },
    });
    await db.sql`insert into distances (src_rse_id, dst_rse_id, distance) values (${world.rses.SRC1.id}, ${world.rses.DST.id}, 1), (${world.rses.SRC2.id}, ${world.rses.DST.id}, 5)`;
    const files = await world.dataset('ds5', 1, { on: ['SRC1', 'SRC2'] });
    const rule = await world.rule({ scope: 'data', name: 'ds5' }, 'DST', 1);
    conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { plan: fast });
    await runUntil(() => step(conveyor!), async () => (await ruleState(rule)).state === 'OK', 30_000);
    const rows = await db.sql<{ src: string; error_code: string | null }[]>`
      select s.name as src, a.error_code from transfer_attempts a join rses s on s.id = a.source_rse_id order by a.id`;
    // The closer source first; it fails once; the retry goes to the other one.
    expect(rows).toEqual([{ src: 'SRC1', error_code: 'ServerError' }, { src: 'SRC2', error_code: null }]);
    expect((await world.readReplica('DST', files[0]))?.equals(files[0].data)).toBe(true);

    // A source expression that excludes the only good source: the request waits and says why.
    await world.dataset('ds6', 1, { on: ['SRC2'] });
    const r2 = await world.rule({ scope: 'data', name: 'ds6' }, 'DST', 1, { source_replica_expression: 'SRC1' });
    await step(conveyor);
    const [q] = await db.sql<{ waiting_reason: string }[]>`
      select q.waiting_reason from requests q where q.name like 'ds6.%'`;
    expect(q.waiting_reason).toMatch(/source expression 'SRC1'/);
    expect((await ruleState(r2)).state).toBe('REPLICATING');
  });
});
