import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadOrCreateLocalIssuer, mintToken } from '../../core/auth.ts';
import { adler32Hex } from '../../core/checksum.ts';
import { hashPath } from '../../policies/default.ts';
import { startFixtureStorage, type FixtureStorage } from '../../fixtures/storage-server.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

/**
 * The production layout of docs/production.md on one machine: two API processes, two conveyors,
 * two judges, one optimizer and one reaper, every one a separate OS process against one
 * database (DATABASE_URL). A client uses both APIs; a dataset is replicated end to end; every
 * process stops cleanly on SIGTERM.
 */
const CLI = fileURLToPath(new URL('../../bin/sluice.mjs', import.meta.url));
let db: TestDatabase;
let home: string;
let storageRoot: string;
const storages: FixtureStorage[] = [];
const procs: Array<{ name: string; child: ChildProcess; out: () => string; exited: Promise<number | null> }> = [];

function start(name: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, DATABASE_URL: db.url, SLUICE_HOME: home, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', VITEST: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + String(d)).slice(-20_000)));
  child.stderr!.on('data', (d) => (out = (out + String(d)).slice(-20_000)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  procs.push({ name, child, out: () => out, exited });
}

beforeAll(async () => {
  db = await createTestDatabase();
  home = await mkdtemp(join(tmpdir(), 'sluice-prod-'));
  storageRoot = await mkdtemp(join(tmpdir(), 'sluice-prod-storage-'));
  storages.push(await startFixtureStorage({ root: join(storageRoot, 'a') }), await startFixtureStorage({ root: join(storageRoot, 'b') }));
});
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await Promise.all(storages.map((s) => s.close()));
  await db.drop();
  await rm(home, { recursive: true, force: true });
  await rm(storageRoot, { recursive: true, force: true });
});

it('2 APIs, 2 conveyors, 2 judges, an optimizer and a reaper as separate processes replicate a dataset', { timeout: 180_000 }, async () => {
  // The test database is migrated already (as `sluice migrate` would have done).
  const ports = [0, 1].map(() => 22000 + Math.floor(Math.random() * 20000));
  start('api-1', ['api', '--port', String(ports[0])]);
  start('api-2', ['api', '--port', String(ports[1])]);
  for (const n of [1, 2]) start(`conveyor-${n}`, ['daemon', 'conveyor', '--grace', '5'], { SLUICE_CONVEYOR_INTERVAL_MS: '100' });
  for (const n of [1, 2]) start(`judge-${n}`, ['daemon', 'judge-evaluator', 'judge-repairer', 'judge-cleaner', '--grace', '5']);
  start('optimizer', ['daemon', 'optimizer', '--grace', '5']);
  start('reaper', ['daemon', 'reaper', '--grace', '5']);

  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const deadlineUp = Date.now() + 60_000;
  for (const url of urls) {
    for (;;) {
      const ok = await fetch(`${url}/health`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > deadlineUp) throw new Error(`${url} not up:\n${procs.map((p) => `${p.name}: ${p.out()}`).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Tokens from the local key both APIs registered; requests alternate between the two APIs.
  const issuer = await loadOrCreateLocalIssuer(home);
  const root = await mintToken(issuer, { lifetimeSeconds: 600, audience: 'sluice' });
  const admin = await mintToken(issuer, { vo: 'prod', account: 'admin', lifetimeSeconds: 600, audience: 'sluice' });
  let turn = 0;
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const url = urls[turn++ % urls.length];
    const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${url}${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  await call('POST', '/v1/vos', root, { name: 'prod' });
  await call('POST', '/v1/endpoints', root, { name: 'site-a', url: storages[0].url, kind: 'http', tpc: 'both' });
  await call('POST', '/v1/endpoints', root, { name: 'site-b', url: storages[1].url, kind: 'http', tpc: 'both' });
  await call('POST', '/v1/scopes', admin, { name: 'data' });
  await call('POST', '/v1/rses', admin, { name: 'SITE_A', endpoint: 'site-a', prefix: '/prod/a', attributes: { tier: 0 } });
  await call('POST', '/v1/rses', admin, { name: 'SITE_B', endpoint: 'site-b', prefix: '/prod/b', attributes: { tier: 1 } });

  // 300 files written on site A and registered through the API.
  const files = Array.from({ length: 300 }, (_, i) => {
    const data = randomBytes(2048 + i);
    return { scope: 'data', name: `f.${String(i).padStart(4, '0')}`, data, bytes: data.length, adler32: adler32Hex(data) };
  });
  for (const f of files) {
    const p = join(storages[0].root, 'prod/a', hashPath(f));
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, f.data);
  }
  await call('POST', '/v1/dids', admin, { dids: [...files.map(({ scope, name, bytes, adler32 }) => ({ scope, name, bytes, adler32 })), { scope: 'data', name: 'set', type: 'DATASET' }] });
  await call('POST', '/v1/dids/data/set/children', admin, { children: files.map(({ scope, name }) => ({ scope, name })) });
  await call('POST', '/v1/replicas', admin, { rse: 'SITE_A', replicas: files.map(({ scope, name }) => ({ scope, name })) });
  const { ids } = await call('POST', '/v1/rules', admin, { dids: [{ scope: 'data', name: 'set' }], copies: 1, rse_expression: 'tier=1' });

  const deadline = Date.now() + 120_000;
  for (;;) {
    const rule = await call('GET', `/v1/rules/${ids[0]}`, admin);
    if (rule.state === 'OK') break;
    if (rule.state === 'STUCK' || Date.now() > deadline) {
      throw new Error(`rule ${rule.state}: ${JSON.stringify(rule)}\n${procs.map((p) => `${p.name}: ${p.out().slice(-2000)}`).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  // Every file on site B with the right checksum, and both conveyors took part.
  const { items } = await call('GET', '/v1/dids/data/set/replicas?limit=1000&state=AVAILABLE', admin);
  expect(items.filter((f: { replicas: Array<{ rse: string }> }) => f.replicas.some((r) => r.rse === 'SITE_B'))).toHaveLength(300);
  for (const f of files.slice(0, 50)) {
    const body = Buffer.from(await (await fetch(`${storages[1].url}/prod/b/${hashPath(f)}`)).arrayBuffer());
    expect(adler32Hex(body)).toBe(f.adler32);
  }
  const owners = await db.sql<{ n: number }[]>`select count(distinct owner)::int as n from transfer_attempts where error_code is null`;
  expect(owners[0].n).toBe(2);
  const twice = await db.sql`select request_id from transfer_attempts where error_code is null group by request_id having count(*) > 1`;
  expect(twice).toEqual([]);

  for (const p of procs) p.child.kill('SIGTERM');
  const codes = await Promise.all(procs.map(async (p) => [p.name, await p.exited]));
  expect(Object.fromEntries(codes)).toEqual(Object.fromEntries(procs.map((p) => [p.name, 0])));
});
