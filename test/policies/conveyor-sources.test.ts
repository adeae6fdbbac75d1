/** The conveyor's source choice follows a VO package's rankSources hook (run-number: disk before tape). */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareRequests } from '../../core/requests.ts';
import { createPolicyRegistry, type PolicyRegistry } from '../../policies/registry.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createWorld, type World } from '../e2e/world.ts';

let db: TestDatabase;
let world: World;
let policies: PolicyRegistry;

beforeAll(async () => {
  db = await createTestDatabase();
  world = await createWorld(db.sql, { endpoints: { tape: {}, disk: {}, dst: {} }, rses: { SRC_TAPE: 'tape', SRC_DISK: 'disk', DST: 'dst' } });
  await db.sql`insert into rse_attributes (rse_id, key, value) values (${world.rses.SRC_TAPE.id}, 'type', 'TAPE'), (${world.rses.SRC_DISK.id}, 'type', 'DISK')`;
  // Sluice alone prefers the nearer source: the tape.
  await db.sql`insert into distances (src_rse_id, dst_rse_id, distance) values (${world.rses.SRC_TAPE.id}, ${world.rses.DST.id}, 1), (${world.rses.SRC_DISK.id}, ${world.rses.DST.id}, 9)`;
  policies = createPolicyRegistry(db.sql, { cacheMs: 0 });
});
afterAll(async () => {
  await policies?.close();
  await world?.close();
  await db?.drop();
});

const sources = () => db.sql<{ name: string }[]>`select distinct r.name from requests q join rses r on r.id = q.source_rse_id`;

it('picks sources by distance without a package hook, and disk first under the run-number package', async () => {
  await world.dataset('a', 5, { on: [], register: ['SRC_TAPE', 'SRC_DISK'] });
  await world.rule({ scope: 'data', name: 'a' }, 'DST', 1);
  expect(await prepareRequests(db.sql, { batch: 100, recheckSeconds: 30, policies })).toMatchObject({ assigned: 5 });
  expect(await sources()).toEqual([{ name: 'SRC_TAPE' }]);

  await db.sql`update requests set source_rse_id = null, link_id = null`;
  await db.sql`update vos set policy_package = 'examples/run-number.ts' where name = ${world.vo}`;
  expect(await prepareRequests(db.sql, { batch: 100, recheckSeconds: 30, policies })).toMatchObject({ assigned: 5 });
  expect(await sources()).toEqual([{ name: 'SRC_DISK' }]);
});

it('a package that never loaded holds its VO\'s requests back with the reason instead of guessing', async () => {
  await db.sql`update requests set source_rse_id = null, link_id = null`;
  await db.sql`update vos set policy_package = 'examples/does-not-exist.ts' where name = ${world.vo}`;
  // A process that starts now has no previous package to keep (a running one keeps its last good one).
  const fresh = createPolicyRegistry(db.sql, { cacheMs: 0 });
  try {
    expect(await prepareRequests(db.sql, { batch: 100, recheckSeconds: 30, policies: fresh })).toMatchObject({ assigned: 0, waiting: 5 });
  } finally {
    await fresh.close();
  }
  const [r] = await db.sql<{ waiting_reason: string }[]>`select waiting_reason from requests limit 1`;
  expect(r.waiting_reason).toMatch(/policy/);
});
