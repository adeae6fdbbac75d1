import { afterAll, beforeAll, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import { silentLogger } from '../../core/log.ts';
import { createConveyor } from '../../daemons/conveyor.ts';
import { createStorageClient } from '../../protocols/index.ts';
import { hashPath } from '../../policies/default.ts';
import { checkInvariants } from '../core/rules-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createWorld, type World } from './world.ts';

let db: TestDatabase;
let world: World;

beforeAll(async () => {
  db = await createTestDatabase();
  world = await createWorld(db.sql, { endpoints: { a: {}, b: {}, c: {} }, rses: { SRC: 'a', DST_B: 'b', DST_C: 'c' } });
});
afterAll(async () => {
  await world.close();
  await db.drop();
});

it('replicates a 1,000-file dataset from one endpoint to RSEs on two others; every file verified through the protocol layer', { timeout: 120_000 }, async () => {
  const files = await world.dataset('big', 1000, { on: ['SRC'], size: 4096 });
  const rule = await world.rule({ scope: 'data', name: 'big' }, 'DST_B|DST_C', 2);
  const conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { intervalMs: 50, maxActive: 200, plan: { backoffBaseMs: 50, backoffMaxMs: 500 } });
  const ac = new AbortController();
  const loop = conveyor.run(ac.signal);
  const deadline = Date.now() + 100_000;
  for (;;) {
    const [r] = await db.sql<{ state: string; locks_ok_cnt: number }[]>`select state, locks_ok_cnt from rules where id = ${rule}::uuid`;
    if (r.state === 'OK') break;
    if (r.state === 'STUCK' || Date.now() > deadline) throw new Error(`rule is ${r.state} with ${r.locks_ok_cnt} locks OK`);
    await new Promise((res) => setTimeout(res, 200));
  }
  ac.abort();
  await loop;
  await conveyor.drain(5000);

  const [r] = await db.sql<{ locks_ok_cnt: number; available: number; requests_done: number }[]>`
    select locks_ok_cnt,
           (select count(*)::int from replicas where state = 'AVAILABLE' and rse_id in (${world.rses.DST_B.id}, ${world.rses.DST_C.id})) as available,
           (select count(*)::int from requests where state = 'DONE') as requests_done
    from rules where id = ${rule}::uuid`;
  expect(r).toEqual({ locks_ok_cnt: 2000, available: 2000, requests_done: 2000 });
  // Storage, read back through the protocol layer (stat with Want-Digest, and the bytes).
  for (const rse of ['DST_B', 'DST_C'] as const) {
    const client = createStorageClient({ kind: 'http', url: world.storages[world.rses[rse].storage].url, prefix: world.rses[rse].prefix });
    try {
      for (const f of files) {
        const st = await client.stat(hashPath(f));
        expect(st.size).toBe(4096);
        expect(st.adler32).toBe(f.adler32);
      }
      for (const f of files.slice(0, 50)) {
        const { stream } = await client.read(hashPath(f));
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(c as Buffer);
        expect(adler32Hex(Buffer.concat(chunks))).toBe(f.adler32);
      }
    } finally {
      await client.close();
    }
  }
  expect(await checkInvariants(db.sql)).toEqual([]);
});
