import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { createConveyor } from '../../daemons/conveyor.ts';
import { createOptimizerDaemon } from '../../daemons/optimizer.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createWorld, type World } from './world.ts';

/**
 * The optimizer and the conveyor together, on real fixture endpoints: the source serves each
 * download at a per-connection rate, so more concurrency moves more bytes and the limit must
 * climb; when about half of the transfers start failing the limit must fall; when it
 * recovers the limit must climb again, all decided by the optimizer daemon from what the
 * conveyor's transfers show. (Moving the optimum by throughput alone, with a shared capacity, is
 * not tested here: on this machine the windows right after a change mislead the optimizer; see
 * docs/optimizer.md.)
 */
const KiB = 1024;
// Each file takes about a second at the per-connection rate, so transfer time, not per-file
// overhead, decides throughput.
const PER_CONNECTION = 128 * KiB; // bytes/s for each download
let db: TestDatabase;
let world: World;

beforeAll(async () => {
  db = await createTestDatabase();
  world = await createWorld(db.sql, {
    endpoints: { src: { faults: [{ path: '/**', method: 'GET', bytesPerSecond: PER_CONNECTION }] }, dst: {} },
    rses: { SRC: 'src', DST: 'dst' },
  });
});
afterAll(async () => {
  await world?.close();
  await db?.drop();
});

it('raises a link limit while more concurrency helps, lowers it when transfers fail, raises it again after', { timeout: 240_000 }, async () => {
  const source = world.storages.src;
  await world.dataset('flow', 2000, { on: ['SRC'], size: 128 * KiB });
  // Start the link low, as a new link would, with room to grow.
  await db.sql`
    insert into links (src_endpoint_id, dst_endpoint_id, limit_active, min_active, max_active)
    select s.id, d.id, 2, 1, 48 from storage_endpoints s, storage_endpoints d
    where s.url = ${source.url} and d.url = ${world.storages.dst.url}`;
  await world.rule({ scope: 'data', name: 'flow' }, 'DST', 1);

  const conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { intervalMs: 50, maxActive: 200, plan: { backoffBaseMs: 50, backoffMaxMs: 500 } });
  const optimizer = createOptimizerDaemon({ sql: db.sql, log: silentLogger }, { intervalMs: 4000, optimizer: { reprobeAfter: 3 } });
  const ac = new AbortController();
  const loops = [conveyor.run(ac.signal), optimizer.run(ac.signal)];
  const limit = async () => (await db.sql<{ limit_active: number }[]>`select limit_active from links`)[0].limit_active;
  const waitFor = async (what: string, ok: (l: number) => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const l = await limit();
      if (ok(l)) return l;
      if (Date.now() > deadline) {
        const ds = await db.sql`select previous_limit, limit_active, reason from link_decisions order by id`;
        throw new Error(`${what}: limit ${l} after ${ms} ms; decisions:\n${ds.map((d) => `${d.previous_limit}->${d.limit_active}: ${d.reason}`).join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  try {
    const risen = await waitFor('first climb', (l) => l >= 6, 60_000);
    // The destination refuses most writes: every copy mode (pull, push, stream) writes there, so
    // about half of the transfers fail even after falling back from one mode to the next.
    const destination = world.storages.dst;
    destination.setFaults([{ path: '/**', method: ['COPY', 'PUT'], rate: 0.8, status: 503 }]);
    const fallen = await waitFor('fall while transfers fail', (l) => l <= Math.floor(risen / 2), 60_000);
    destination.setFaults([]);
    const again = await waitFor('climb after recovery', (l) => l >= fallen + 2, 80_000);
    expect(risen).toBeGreaterThanOrEqual(6);
    expect(fallen).toBeLessThan(risen);
    expect(again).toBeGreaterThan(fallen);
    // Every change has a recorded reason and the inputs it was made from.
    const decisions = await db.sql<{ reason: string; inputs: { active: number } }[]>`select reason, inputs from link_decisions where limit_active <> previous_limit`;
    expect(decisions.length).toBeGreaterThanOrEqual(3);
    for (const d of decisions) {
      expect(d.reason.length).toBeGreaterThan(10);
      expect(typeof d.inputs.active).toBe('number');
    }
  } finally {
    ac.abort();
    await Promise.all(loops);
    await conveyor.drain(2000);
  }
});
