import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkInvariants } from '../core/rules-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { spawnDaemon, type DaemonProcess } from './processes.ts';
import { createWorld, type World } from './world.ts';

let db: TestDatabase;
let world: World;
const procs: DaemonProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  world = await createWorld(db.sql, { endpoints: { a: {}, b: {} }, rses: { SRC: 'a', DST: 'b' } });
});
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await world.close();
  await db.drop();
});

it('two conveyor processes split one rule without executing any request twice', { timeout: 90_000 }, async () => {
  const n = 400;
  const files = await world.dataset('two', n, { on: ['SRC'], size: 4096 });
  const env = { SLUICE_CONVEYOR_INTERVAL_MS: '50', SLUICE_CONVEYOR_MAX_ACTIVE: '30' };
  procs.push(spawnDaemon(db.url, ['conveyor'], env), spawnDaemon(db.url, ['conveyor'], env));
  // Both processes are up (LISTENing) before the rule creates the requests.
  const deadlineUp = Date.now() + 20_000;
  for (;;) {
    const [l] = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and query ilike 'listen %sluice_requests%'`;
    if (l.n >= 2) break;
    if (Date.now() > deadlineUp) {
      const act = await db.sql`select application_name, state, query from pg_stat_activity where datname = current_database()`;
      throw new Error(`conveyors did not start: ${JSON.stringify(act)}\n${procs.map((p) => p.output()).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await db.sql`update links set limit_active = 40`;
  const rule = await world.rule({ scope: 'data', name: 'two' }, 'DST', 1);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [r] = await db.sql<{ state: string }[]>`select state from rules where id = ${rule}::uuid`;
    if (r.state === 'OK') break;
    if (r.state === 'STUCK' || Date.now() > deadline) throw new Error(`rule ${r.state}:\n${procs.map((p) => p.output()).join('\n')}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  const perRequest = await db.sql<{ n: number; ok: number; owner: string }[]>`
    select count(*)::int as n, count(*) filter (where error_code is null)::int as ok, min(owner) as owner
    from transfer_attempts group by request_id`;
  expect(perRequest).toHaveLength(n);
  expect(perRequest.every((r) => r.n === 1 && r.ok === 1)).toBe(true);
  // Both processes did work (each has its own owner id).
  expect(new Set(perRequest.map((r) => r.owner)).size).toBe(2);
  // Storage saw exactly one TPC pull per destination file: nothing was written twice.
  expect(world.storages.b.stats().requests.COPY).toBe(n);
  for (const f of files.slice(0, 50)) expect((await world.readReplica('DST', f))?.equals(f.data)).toBe(true);
  expect(await checkInvariants(db.sql)).toEqual([]);

  // SIGTERM: both exit cleanly (drain) and leave no lease behind.
  for (const p of procs) p.child.kill('SIGTERM');
  const exits = await Promise.all(procs.map((p) => p.exited));
  expect(exits.map((e) => e.code)).toEqual([0, 0]);
  const [leases] = await db.sql<{ n: number }[]>`select count(*)::int as n from requests where lease_owner is not null`;
  expect(leases.n).toBe(0);
});
