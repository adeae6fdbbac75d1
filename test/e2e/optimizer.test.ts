import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { createConveyor } from '../../daemons/conveyor.ts';
import { createOptimizerDaemon } from '../../daemons/optimizer.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createWorld, type World } from './world.ts';

/**
 * The optimizer and the conveyor together, on real fixture endpoints. The source serves each
 * download at a per-connection rate under a capacity shared by all downloads, like a site link:
 * throughput is min(N x rate, capacity), so the best concurrency is capacity / rate. The test
 * moves that capacity and watches the limit the optimizer daemon decides from what the
 * conveyor's transfers show: it climbs while concurrency helps, falls when the capacity is cut
 * (no failures, only less bandwidth), climbs when the capacity comes back, and falls again when
 * most transfers start failing.
 */
const KiB = 1024;
// Each file takes half a second at the per-connection rate, so transfer time, not per-file
// overhead, decides throughput; and still well under the decision window (6 s) when 24 downloads
// share a capacity for 4: a window measures a limit from transfers that ran under it.
const PER_CONNECTION = 64 * KiB; // bytes/s for each download
const FILE = 32 * KiB;
const WINDOW_MS = 6000;
const HIGH = 12;
const LOW = 4;
let db: TestDatabase;
let world: World;

beforeAll(async () => {
  db = await createTestDatabase();
  world = await createWorld(db.sql, {
    endpoints: {
      src: { faults: [{ path: '/**', method: 'GET', bytesPerSecond: PER_CONNECTION }] },
      dst: {},
    },
    rses: { SRC: 'src', DST: 'dst' },
  });
  // Capacity for 12 downloads at full speed: below what this machine's conveyor and fixtures can
  // move (~30 files/s when loaded), so that the capacity, not the CPU, is what the link has.
  world.storages.src.setCapacity(HIGH * PER_CONNECTION);
});
afterAll(async () => {
  await world?.close();
  await db?.drop();
});

it('follows the link: climbs while concurrency helps, falls when its capacity is cut, climbs when it returns, falls when transfers fail', { timeout: 420_000 }, async () => {
  const source = world.storages.src;
  await world.dataset('flow', 10_000, { on: ['SRC'], size: FILE });
  // Start the link low, as a new link would, with room to grow.
  await db.sql`
    insert into links (src_endpoint_id, dst_endpoint_id, limit_active, min_active, max_active)
    select s.id, d.id, 2, 1, 24 from storage_endpoints s, storage_endpoints d
    where s.url = ${source.url} and d.url = ${world.storages.dst.url}`;
  await world.rule({ scope: 'data', name: 'flow' }, 'DST', 1);

  const conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { intervalMs: 50, maxActive: 200, plan: { backoffBaseMs: 50, backoffMaxMs: 500 } });
  const optimizer = createOptimizerDaemon({ sql: db.sql, log: silentLogger }, { intervalMs: WINDOW_MS, optimizer: { reprobeAfter: 3, failureMemory: 6 } });
  const ac = new AbortController();
  const loops = [conveyor.run(ac.signal), optimizer.run(ac.signal)];
  const limit = async () => (await db.sql<{ limit_active: number }[]>`select limit_active from links`)[0].limit_active;
  /** The last two decisions kept the limit where it was. */
  const kept = async () => {
    const last = await db.sql<{ moved: boolean }[]>`select limit_active <> previous_limit as moved from link_decisions order by id desc limit 2`;
    return last.length === 2 && last.every((d) => !d.moved);
  };
  /** Until the limit satisfies `ok` (and, if `settled`, the last two decisions kept it). */
  const waitFor = async (what: string, ok: (l: number) => boolean, ms: number, opts: { settled?: boolean } = {}) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const l = await limit();
      if (ok(l) && (!opts.settled || (await kept()))) return l;
      if (Date.now() > deadline) {
        const ds = await db.sql`select previous_limit, limit_active, reason, inputs from link_decisions order by id`;
        throw new Error(`${what}: limit ${l} after ${ms} ms; decisions:\n${ds.map((d) => `${d.previous_limit}->${d.limit_active}: ${d.reason} ${JSON.stringify(d.inputs)}`).join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  try {
    // The climb probes past the knee and settles before the link changes.
    const risen = await waitFor('first climb', (l) => l >= HIGH, 90_000, { settled: true });
    // Capacity for 4: the same concurrency now moves a third of the bytes, and every download
    // beyond 4 only shares the same bandwidth. No transfer fails.
    source.setCapacity(LOW * PER_CONNECTION);
    // (Transfers spend part of their life outside the download, in TPC set-up and verification,
    // so the knee is above 4 and moves with the machine's load: the limit must fall by a quarter
    // at least, and stay there.)
    const fallen = await waitFor('fall when the capacity is cut', (l) => l <= Math.floor(risen * 0.75), 90_000, { settled: true });
    // Capacity for 12 again.
    source.setCapacity(HIGH * PER_CONNECTION);
    const again = await waitFor('climb when the capacity returns', (l) => l >= Math.max(HIGH, Math.ceil(fallen * 1.4)), 90_000, { settled: true });
    // The destination refuses most writes: every copy mode (pull, push, stream) writes there, so
    // about half of the transfers fail even after falling back from one mode to the next.
    const destination = world.storages.dst;
    destination.setFaults([{ path: '/**', method: ['COPY', 'PUT'], rate: 0.8, status: 503 }]);
    const failing = await waitFor('fall while transfers fail', (l) => l <= Math.floor(again / 2), 90_000);
    expect(fallen).toBeLessThan(risen);
    expect(again).toBeGreaterThan(fallen);
    expect(failing).toBeLessThan(again);
    // Every change has a recorded reason and the inputs it was made from; the capacity cut was
    // seen as a throughput drop, not as failures.
    const decisions = await db.sql<{ reason: string; inputs: { active: number } }[]>`select reason, inputs from link_decisions where limit_active <> previous_limit`;
    expect(decisions.length).toBeGreaterThanOrEqual(4);
    expect(decisions.some((d) => /throughput fell .* link degraded/.test(d.reason))).toBe(true);
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
