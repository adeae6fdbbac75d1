import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import { checkInvariants } from '../core/rules-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { spawnDaemon, type DaemonProcess } from './processes.ts';
import { createWorld, type World } from './world.ts';

/**
 * SIGKILL conveyor processes again and again while they replicate a dataset; restart them. The
 * rule must still reach OK, and the catalogue must equal storage: every AVAILABLE replica is on
 * disk with the right bytes, and no file is on disk that the catalogue does not know.
 * Bounded for CI: 200 files x 2 copies, about 6 kills, well under a minute.
 */
let db: TestDatabase;
let world: World;
const procs: DaemonProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  world = await createWorld(db.sql, {
    // throttled reads from the source: transfers last long enough to be killed mid-flight
    endpoints: { a: { faults: [{ method: 'GET', bytesPerSecond: 256 * 1024 }] }, b: {}, c: {} },
    rses: { SRC: 'a', DST_B: 'b', DST_C: 'c' },
  });
});
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await world.close();
  await db.drop();
});

async function filesOnDisk(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string) {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(dir, e.name));
      else out.push(relative(root, join(dir, e.name)));
    }
  }
  await walk(root);
  return out.sort();
}

it('survives repeated SIGKILLs: the rule reaches OK and the catalogue matches storage byte for byte', { timeout: 120_000 }, async () => {
  const files = await world.dataset('chaos', 200, { on: ['SRC'], size: 64 * 1024 });
  const env = {
    SLUICE_CONVEYOR_LEASE_SECONDS: '3',
    SLUICE_CONVEYOR_INTERVAL_MS: '100',
    SLUICE_CONVEYOR_MAX_ATTEMPTS: '50',
    SLUICE_CONVEYOR_BACKOFF_BASE_MS: '100',
    SLUICE_CONVEYOR_BACKOFF_MAX_MS: '1000',
  };
  const live: DaemonProcess[] = [];
  const start = () => {
    const p = spawnDaemon(db.url, ['conveyor'], env);
    procs.push(p);
    live.push(p);
  };
  start();
  start();
  const rule = await world.rule({ scope: 'data', name: 'chaos' }, 'DST_B|DST_C', 2);
  await db.sql`update links set limit_active = 20`;

  let kills = 0;
  let killedWhileActive = 0;
  const deadline = Date.now() + 90_000;
  for (;;) {
    const [r] = await db.sql<{ state: string; ok: number }[]>`select state, locks_ok_cnt as ok from rules where id = ${rule}::uuid`;
    if (r.state === 'OK') break;
    if (r.state === 'STUCK' || Date.now() > deadline) {
      throw new Error(`rule ${r.state} (${r.ok} OK) after ${kills} kills:\n${procs.map((p) => p.output()).join('\n').slice(-4000)}`);
    }
    await new Promise((res) => setTimeout(res, 700 + Math.random() * 800));
    if (kills < 6) {
      const [a] = await db.sql<{ n: number }[]>`select count(*)::int as n from requests where state = 'ACTIVE'`;
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0];
      victim.child.kill('SIGKILL');
      await victim.exited;
      kills++;
      if (a.n > 0) killedWhileActive++;
      start();
    }
  }
  expect(kills).toBeGreaterThanOrEqual(3);
  expect(killedWhileActive).toBeGreaterThan(0);
  const [lost] = await db.sql<{ n: number }[]>`select count(*)::int as n from transfer_attempts where error_code = 'Lost'`;
  // At least one kill hit running transfers, which were recovered by the others.
  expect(lost.n).toBeGreaterThan(0);

  for (const p of live) p.child.kill('SIGTERM');
  await Promise.all(live.map((p) => p.exited));

  // catalogue == storage, both ways, byte for byte
  const byPath = new Map(files.map((f) => [`data/${f.name}`, f]));
  for (const rse of ['DST_B', 'DST_C'] as const) {
    const root = join(world.storages[world.rses[rse].storage].root, world.rses[rse].prefix);
    const catalogue = await db.sql<{ path: string }[]>`select path from replicas where rse_id = ${world.rses[rse].id} and state = 'AVAILABLE' order by path`;
    const onDisk = await filesOnDisk(root);
    expect(onDisk).toEqual(catalogue.map((c) => c.path));
    expect(onDisk).toHaveLength(200);
    for (const p of onDisk) {
      const f = byPath.get(p.replace(/^data\/[0-9a-f]{2}\/[0-9a-f]{2}\//, 'data/'))!;
      expect(adler32Hex(await readFile(join(root, p)))).toBe(f.adler32);
    }
  }
  const [left] = await db.sql<{ n: number }[]>`select count(*)::int as n from requests where state in ('QUEUED', 'ACTIVE')`;
  expect(left.n).toBe(0);
  expect(await checkInvariants(db.sql)).toEqual([]);
});
