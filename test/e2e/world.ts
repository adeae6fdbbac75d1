import { spawn } from 'node:child_process';
/**
 * A replication world for conveyor tests: fixture storage endpoints (real HTTP/WebDAV/TPC servers
 * on 127.0.0.1), one VO with RSEs on them, and a dataset whose files really exist on a source RSE.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { addDids, attachDids } from '../../core/catalogue.ts';
import { adler32Hex } from '../../core/checksum.ts';
import type { Sql } from '../../core/db.ts';
import { addEndpoint } from '../../core/endpoints.ts';
import { addRse } from '../../core/rses.ts';
import { createRules } from '../../core/rules.ts';
import { startFixtureStorage, type FaultRule, type FixtureStorage } from '../../fixtures/storage-server.ts';
import defaultPolicy, { hashPath } from '../../policies/default.ts';
import { resolvePolicy } from '../../policies/registry.ts';

export const policy = resolvePolicy(defaultPolicy);

export interface WorldFile {
  scope: string;
  name: string;
  bytes: number;
  adler32: string;
  data: Buffer;
}

export interface World {
  dir: string;
  storages: Record<string, FixtureStorage>;
  rses: Record<string, { id: number; storage: string; prefix: string }>;
  vo: string;
  /** Absolute filesystem path of a file's replica on an RSE (the fixture serves its root). */
  fsPath(rse: string, f: { scope: string; name: string }): string;
  readReplica(rse: string, f: { scope: string; name: string }): Promise<Buffer | undefined>;
  dataset(name: string, n: number, opts?: { size?: number; on?: string[]; register?: string[] }): Promise<WorldFile[]>;
  rule(did: { scope: string; name: string }, expression: string, copies: number, extra?: { source_replica_expression?: string; activity?: string }): Promise<string>;
  close(): Promise<void>;
}

/**
 * `endpoints`: name -> fixture options; `rses`: RSE name -> endpoint name. Every endpoint does
 * TPC both ways unless told otherwise.
 */
export async function createWorld(
  sql: Sql,
  spec: {
    vo?: string;
    endpoints: Record<string, { tpc?: 'pull' | 'push' | 'both' | 'none'; faults?: FaultRule[]; maxInbound?: number; maxOutbound?: number; settings?: Record<string, unknown> }>;
    rses: Record<string, string>;
    /** Run each endpoint as its own process, as real storage is (benchmarks); default in-process. */
    processes?: boolean;
  },
): Promise<World> {
  const vo = spec.vo ?? 'exp';
  const dir = await mkdtemp(join(tmpdir(), 'sluice-conveyor-'));
  const storages: Record<string, FixtureStorage> = {};
  await sql`insert into vos (name) values (${vo}) on conflict do nothing`;
  await sql`insert into accounts (vo, name, role) values (${vo}, 'admin', 'admin') on conflict do nothing`;
  await sql`insert into scopes (vo, name, account) values (${vo}, 'data', 'admin') on conflict do nothing`;
  for (const [name, o] of Object.entries(spec.endpoints)) {
    const s = spec.processes
      ? await startFixtureStorageProcess({ root: join(dir, name), faults: o.faults, tpc: o.tpc !== 'none' })
      : await startFixtureStorage({ root: join(dir, name), faults: o.faults, tpc: o.tpc !== 'none', markerIntervalMs: 200 });
    storages[name] = s;
    await addEndpoint(sql, { name, url: s.url, kind: 'http', tpc: o.tpc ?? 'both', max_inbound: o.maxInbound, max_outbound: o.maxOutbound, settings: o.settings });
  }
  const rses: World['rses'] = {};
  for (const [name, endpoint] of Object.entries(spec.rses)) {
    const prefix = `/${vo}/${name.toLowerCase()}`;
    const r = await addRse(sql, vo, { name, endpoint, prefix, attributes: { site: endpoint } });
    // The RSE's area exists on its storage, as on a real site (clients create only below it).
    await mkdir(join(storages[endpoint].root, prefix), { recursive: true });
    rses[name] = { id: r.id, storage: endpoint, prefix };
  }
  const fsPath = (rse: string, f: { scope: string; name: string }) => join(storages[rses[rse].storage].root, rses[rse].prefix, hashPath(f));
  return {
    dir,
    storages,
    rses,
    vo,
    fsPath,
    async readReplica(rse, f) {
      return readFile(fsPath(rse, f)).catch(() => undefined);
    },
    async dataset(name, n, opts = {}) {
      const size = opts.size ?? 4096;
      const files: WorldFile[] = Array.from({ length: n }, (_, i) => {
        const data = randomBytes(size);
        return { scope: 'data', name: `${name}.${String(i).padStart(6, '0')}`, bytes: size, adler32: adler32Hex(data), data };
      });
      await addDids(sql, vo, 'admin', [{ scope: 'data', name, type: 'DATASET' }]);
      for (let i = 0; i < files.length; i += 5000) {
        const chunk = files.slice(i, i + 5000);
        await addDids(sql, vo, 'admin', chunk.map((f) => ({ scope: f.scope, name: f.name, type: 'FILE' as const, bytes: f.bytes, adler32: f.adler32 })));
        await attachDids(sql, vo, { scope: 'data', name }, chunk.map((f) => ({ scope: f.scope, name: f.name })));
      }
      for (const rse of opts.on ?? []) {
        for (const f of files) {
          const p = fsPath(rse, f);
          await mkdir(dirname(p), { recursive: true });
          await writeFile(p, f.data);
        }
      }
      for (const rse of opts.register ?? opts.on ?? []) await registerReplicas(sql, vo, rses[rse].id, files);
      return files;
    },
    async rule(did, expression, copies, extra = {}) {
      const [r] = await createRules(sql, vo, 'admin', { dids: [did], copies, rse_expression: expression, grouping: 'NONE', ...extra }, { policy, seed: 1 });
      return r.id;
    },
    async close() {
      await Promise.all(Object.values(storages).map((s) => s.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs conveyor cycles until `done()` or the deadline. */
export async function runUntil(step: () => Promise<unknown>, done: () => Promise<boolean>, timeoutMs = 60_000, pauseMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await step();
    if (await done()) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for the conveyor');
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

/**
 * Registers AVAILABLE replicas at the default policy's paths in one statement (what
 * POST /v1/replicas does, without depending on the policy layer's calling convention).
 */
export async function registerReplicas(sql: Sql, vo: string, rseId: number, files: Array<{ scope: string; name: string }>): Promise<void> {
  await sql`
    insert into replicas (vo, scope, name, rse_id, state, path)
    select ${vo}, s, n, ${rseId}, 'AVAILABLE', p from unnest(${files.map((f) => f.scope)}::text[], ${files.map((f) => f.name)}::text[], ${files.map((f) => hashPath(f))}::text[]) as t(s, n, p)
    on conflict (vo, scope, name, rse_id) do update set state = 'AVAILABLE', path = excluded.path`;
}

/**
 * The fixture endpoint in a process of its own (`sluice fixture-storage`), so that the storage's
 * CPU work does not share the conveyor's event loop. Faults and capacity are set over its admin
 * routes.
 */
export async function startFixtureStorageProcess(o: { root: string; faults?: FaultRule[]; tpc?: boolean }): Promise<FixtureStorage> {
  await mkdir(o.root, { recursive: true });
  const args = [new URL('../../bin/sluice.mjs', import.meta.url).pathname, 'fixture-storage', '--root', o.root, '--port', '0', '--marker-interval-ms', '200'];
  if (o.tpc === false) args.push('--no-tpc');
  if (o.faults?.length) {
    const file = join(o.root, '..', `${o.root.split('/').pop()}-faults.json`);
    await writeFile(file, JSON.stringify(o.faults));
    args.push('--faults', file);
  }
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`fixture-storage exited with ${code}: ${out}`)));
  });
  const admin = (path: string, method: string, body?: unknown) =>
    fetch(`${url}/.fixture/${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.text());
  return {
    url,
    port: Number(new URL(url).port),
    root: o.root,
    setFaults: (rules) => void admin('faults', 'PUT', rules),
    setCapacity: (bps) => void admin('capacity', 'PUT', { bytesPerSecond: bps ?? null }),
    stats: () => ({ connections: 0, requests: {} }),
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
