import { mkdtemp, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import type { Sql } from '../../core/db.ts';
import { withTransaction } from '../../core/db.ts';
import { createLogger } from '../../core/log.ts';
const silentLogger = createLogger({ level: process.env.TEST_LOG ?? 'silent', pretty: false });
import { addReplicas } from '../../core/replicas.ts';
import { createRules, deleteRule } from '../../core/rules.ts';
import { markReplicaAvailable } from '../../core/locks.ts';
import { startFixtureStorage, type FixtureStorage } from '../../fixtures/storage-server.ts';
import { createReaper } from '../../daemons/reaper.ts';
import { createStorageClient, type StorageClient } from '../../protocols/index.ts';
import { prepareRequests } from '../../core/requests.ts';
import { checkInvariants, dataset, policy, seedVo } from '../core/rules-helpers.ts';

let db: TestDatabase;
let sql: Sql;
let storage: FixtureStorage;
let root: string;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  root = await mkdtemp(join(tmpdir(), 'sluice-reaper-'));
  storage = await startFixtureStorage({ port: 0, root });
});
afterAll(async () => {
  await storage?.close();
  await db?.drop();
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
async function setup(n: number) {
  const vo = `r${++seq}`;
  const { ids } = await seedVo(sql, vo, [{ name: 'DISK' }], { endpointUrl: `${storage.url}/${vo}`, prefix: () => '/disk' });
  const fs = await dataset(sql, vo, 'data', 'ds', n);
  const [rule] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'ds' }], copies: 1, rse_expression: 'DISK', purge_replicas: true }, { policy });
  const rseId = ids.get('DISK')!;
  const paths = new Map<string, string>();
  for (const r of await sql<{ name: string; path: string }[]>`select name, path from replicas where vo = ${vo}`) {
    const file = join(root, vo, 'disk', r.path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, 'x'.repeat(10));
    paths.set(r.name, file);
    await withTransaction(sql, (tx) => markReplicaAvailable(tx, { vo, scope: 'data', name: r.name, rseId }));
  }
  return { vo, fs, rule, rseId, paths };
}

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('reaper', () => {
  it('a rule locking a replica while its bytes are being deleted gets a copy only after the delete', async () => {
    const { vo, fs, rule, paths } = await setup(1);
    await deleteRule(sql, vo, rule.id);
    // Hold the storage delete open until the rule below has locked the replica.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let deleting!: () => void;
    const started = new Promise<void>((r) => (deleting = r));
    const storage = (cfg: Parameters<typeof createStorageClient>[0]): StorageClient => {
      const client = createStorageClient(cfg);
      return Object.assign(Object.create(client) as StorageClient, {
        delete: async (path: string, opts?: object) => {
          deleting();
          await held;
          return client.delete(path, opts);
        },
        close: () => client.close(),
      });
    };
    const reaper = createReaper({ sql, log: silentLogger, storage }, { greedy: true, vos: [vo] });
    const reaping = reaper.runOnce();
    await started;
    const [again] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: fs[0].name }], copies: 1, rse_expression: 'DISK' }, { policy });
    // While the delete runs the replica stays BEING_DELETED and its transfer must not start.
    expect((await sql`select state, lock_cnt from replicas where vo = ${vo}`)[0]).toEqual({ state: 'BEING_DELETED', lock_cnt: 1 });
    // Not even considered for a source (a request merely lacking one would count as waiting).
    expect(await prepareRequests(sql, { batch: 100, recheckSeconds: 30 })).toEqual({ assigned: 0, waiting: 0 });
    release();
    await reaping;
    // The bytes are gone; the catalogue says so, and the rule's transfer may now run.
    expect(await exists(paths.get(fs[0].name)!)).toBe(false);
    expect((await sql`select state from replicas where vo = ${vo}`)[0].state).toBe('COPYING');
    expect((await sql`select state from requests where vo = ${vo} and state = 'QUEUED'`).length).toBe(1);
    expect((await sql`select state from locks where rule_id = ${again.id}::uuid`)[0].state).toBe('REPLICATING');
    expect(await prepareRequests(sql, { batch: 100, recheckSeconds: 30 })).toEqual({ assigned: 0, waiting: 1 });
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('deletes unlocked, tombstoned replicas from storage and catalogue; never a locked one', async () => {
    const { vo, fs, rule, paths } = await setup(4);
    // file 0 stays locked by a second rule
    await createRules(sql, vo, 'alice', { dids: [{ scope: 'data', name: fs[0].name }], copies: 1, rse_expression: 'DISK' }, { policy });
    await deleteRule(sql, vo, rule.id);
    // already gone from storage: a 404 counts as deleted
    await rm(paths.get(fs[3].name)!);
    const reaper = createReaper({ sql, log: silentLogger }, { greedy: true, vos: [vo] });
    expect(await reaper.runOnce()).toBe(3);
    expect(await reaper.runOnce()).toBe(0);
    expect((await sql`select name from replicas where vo = ${vo}`).map((r) => r.name)).toEqual([fs[0].name]);
    expect(await exists(paths.get(fs[0].name)!)).toBe(true);
    for (const f of fs.slice(1)) expect(await exists(paths.get(f.name)!)).toBe(false);
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('keeps replicas whose storage delete fails, records the error and retries later', async () => {
    const { vo, fs, rule, paths } = await setup(2);
    await deleteRule(sql, vo, rule.id);
    storage.setFaults([{ method: 'DELETE', path: `/${vo}/**`, status: 500, count: 1 }]);
    const reaper = createReaper({ sql, log: silentLogger }, { greedy: true, vos: [vo], concurrency: 1, retryDelaySeconds: 300 });
    try {
      expect(await reaper.runOnce()).toBe(2);
    } finally {
      storage.setFaults([]);
    }
    const left = await sql<{ name: string; state: string; deletion_error: string; deletion_attempts: number; later: boolean }[]>`
      select name, state, deletion_error, deletion_attempts, tombstone > now() + interval '200 seconds' as later from replicas where vo = ${vo}`;
    expect(left).toHaveLength(1);
    expect(left[0]).toMatchObject({ state: 'AVAILABLE', deletion_attempts: 1, later: true });
    expect(left[0].deletion_error).toMatch(/500/);
    expect(await exists(paths.get(left[0].name)!)).toBe(true);
    expect(await reaper.runOnce()).toBe(0); // not before the retry delay
    await sql`update replicas set tombstone = now() where vo = ${vo}`;
    expect(await reaper.runOnce()).toBe(1);
    expect(await sql`select 1 from replicas where vo = ${vo}`).toHaveLength(0);
    expect(fs).toHaveLength(2);
  });

  it('without greedy, frees only what an RSE over its quota needs, oldest tombstone first; runs as a loop', async () => {
    const { vo, fs, rule, rseId } = await setup(3); // 1000, 1001, 1002 bytes
    // a replica nobody ever locked has no tombstone and is never reaped
    await sql`insert into dids (vo, scope, name, type, account, bytes, adler32) values (${vo}, 'data', 'kept', 'FILE', 'admin', 5, '00000001')`;
    await addReplicas(sql, vo, policy, 'DISK', [{ scope: 'data', name: 'kept' }]);
    await deleteRule(sql, vo, rule.id);
    await sql`update replicas set tombstone = now() - make_interval(mins => case name when ${fs[1].name} then 30 when ${fs[0].name} then 20 else 10 end)
              where vo = ${vo} and name <> 'kept'`;
    const reaper = createReaper({ sql, log: silentLogger }, { vos: [vo], freeRatio: 0 });
    expect(await reaper.runOnce()).toBe(0); // no quota: no pressure
    await sql`update rses set quota_bytes = 2100 where id = ${rseId}`; // used 3008: free >= 908 bytes
    expect(await reaper.runOnce()).toBe(1);
    expect((await sql`select name from replicas where vo = ${vo} order by name`).map((r) => r.name)).toEqual([fs[0].name, fs[2].name, 'kept']);
    expect(await reaper.runOnce()).toBe(0);

    await sql`update rses set quota_bytes = null where id = ${rseId}`;
    const ac = new AbortController();
    const running = createReaper({ sql, log: silentLogger }, { vos: [vo], greedy: true, intervalMs: 20 }).run(ac.signal);
    try {
      for (let i = 0; i < 250 && (await sql`select 1 from replicas where vo = ${vo}`).length > 1; i++) await new Promise((r) => setTimeout(r, 20));
    } finally {
      ac.abort();
      await running;
    }
    expect((await sql`select name from replicas where vo = ${vo}`).map((r) => r.name)).toEqual(['kept']);
  });
});
