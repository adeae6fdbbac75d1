/**
 * API under load (issue 10.2): mixed reads and rule creation from concurrent clients against a
 * running server, with autocannon as the load generator.
 *
 * The server is a separate process (`node bin/sluice.mjs server --no-daemons`, embedded
 * PostgreSQL in a temporary SLUICE_HOME) so that the load generator and the API do not share an
 * event loop; daemons are off so that the figures are the API's own. Seeded: one VO, 8 RSEs with
 * tier/country attributes, 4 datasets of 1,000 files each with replicas on DISK_0.
 *
 * Two autocannon instances run side by side for the whole duration:
 * - reads (connections - rule connections): GET a file DID, list DIDs by name pattern + metadata
 *   filter (page of 100), list replicas of a 1,000-file dataset (page of 100), GET a rule;
 * - rules (1 in 5 connections): POST /v1/rules for a 1,000-file dataset (copies 1, expressions
 *   rotating over RSEs that hold the data and RSEs that do not, so some rules create 1,000
 *   transfer requests), each followed by DELETE of that rule so that the database does not grow
 *   without bound; creation and deletion latencies are reported separately.
 *
 *   npx tsx bench/api-load.ts [--seconds 60] [--connections 50] [--rule-connections N] [--cpu-prof DIR] [--no-analyze]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';
import { connect } from '../core/db.ts';
import { embeddedAddress } from '../core/embedded.ts';
import { isMain, percentile, printResults, type BenchResult } from './lib.ts';

const root = new URL('..', import.meta.url).pathname;
const FILES_PER_DATASET = 1000;
const DATASETS = 4;

export interface ApiLoadOptions {
  seconds?: number;
  connections?: number;
  /** Connections that create (and delete) rules; the rest read. Default: a fifth. */
  ruleConnections?: number;
  /** Skip the ANALYZE after seeding (to see the plans a freshly loaded database gets). */
  noAnalyze?: boolean;
  /** Directory for a V8 CPU profile of the server process (node --cpu-prof), written when it stops. */
  cpuProfDir?: string;
}

async function api(base: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function startServer(home: string, port: number, nodeArgs: string[] = []) {
  const env: NodeJS.ProcessEnv = { ...process.env, SLUICE_HOME: home, PORT: String(port), LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [...nodeArgs, 'bin/sluice.mjs', 'server', '--no-daemons'], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  const exited = new Promise((r) => child.once('exit', r));
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch {
      // starting
    }
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    if (Date.now() - t0 > 120_000) throw new Error('server did not become healthy in 120 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    },
  };
}

async function seed(url: string, rootToken: string, admin: string): Promise<{ ruleId: string }> {
  await api(url, rootToken, 'POST', '/v1/vos', { name: 'load' });
  await api(url, rootToken, 'POST', '/v1/endpoints', { name: 'ep', url: 'http://127.0.0.1:1', kind: 'http' });
  await api(url, admin, 'POST', '/v1/scopes', { name: 'data' });
  const countries = ['CH', 'FR', 'DE', 'IT'];
  for (let i = 0; i < 8; i++) {
    await api(url, admin, 'POST', '/v1/rses', { name: `DISK_${i}`, endpoint: 'ep', prefix: `/load/disk${i}`, attributes: { tier: i < 2 ? 0 : 1, country: countries[i % 4], type: 'DISK' } });
  }
  for (let d = 0; d < DATASETS; d++) {
    const files = Array.from({ length: FILES_PER_DATASET }, (_, i) => ({
      scope: 'data',
      name: `file.${d}.${String(i).padStart(5, '0')}`,
      bytes: 1_000_000 + i,
      adler32: (0x10000000 + d * FILES_PER_DATASET + i).toString(16).slice(-8),
      meta: { run: 1000 + (i % 50), stream: i % 2 ? 'physics' : 'calib' },
    }));
    await api(url, admin, 'POST', '/v1/dids', { dids: [...files, { scope: 'data', name: `ds.${d}`, type: 'DATASET' }] });
    await api(url, admin, 'POST', `/v1/dids/data/ds.${d}/children`, { children: files.map(({ scope, name }) => ({ scope, name })) });
    await api(url, admin, 'POST', '/v1/replicas', { rse: 'DISK_0', replicas: files.map(({ scope, name }) => ({ scope, name })) });
  }
  const rule = await api(url, admin, 'POST', '/v1/rules', { dids: [{ scope: 'data', name: 'ds.0' }], copies: 1, rse_expression: 'DISK_0', comment: 'kept for GET' });
  return { ruleId: rule.ids[0] };
}

/**
 * VACUUM ANALYZE the seeded database, as pgbench does after its initial load. Otherwise the load
 * runs on the statistics of empty tables until autovacuum's first pass (up to a minute in), and
 * the figures depend on when that pass happens to land.
 */
async function analyzeSeed(home: string): Promise<void> {
  const sql = connect({ url: (await embeddedAddress(home)).url, max: 1, applicationName: 'sluice-bench' });
  try {
    await sql`vacuum analyze`;
  } finally {
    await sql.end();
  }
}

interface TypedRun {
  result: autocannon.Result;
  /** Response times (ms) and non-2xx counts per request type, in the order of `requests`. */
  times: number[][];
  bad: number[];
}

/** One autocannon instance cycling through `requests`, latencies attributed per request type. */
function runTyped(opts: { url: string; token: string; connections: number; seconds: number; requests: autocannon.Request[]; title: string }): Promise<TypedRun> {
  const times = opts.requests.map(() => [] as number[]);
  const bad = opts.requests.map(() => 0);
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        title: opts.title,
        url: opts.url,
        connections: opts.connections,
        duration: opts.seconds,
        pipelining: 1,
        timeout: 30,
        headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json' },
        requests: opts.requests,
      },
      (err, result) => (err ? reject(err) : resolve({ result, times, bad })),
    );
    instance.on('response', (client: object, status: number, _bytes: number, ms: number) => {
      // The request this response answers: autocannon moves to the next one only after emitting
      // 'response'. (Counting responses per connection drifted after a timeout or a reconnect,
      // which skip a response and then send the next request: creations were then reported as
      // deletions and the other way round.)
      const k = (client as { requestIterator: { currentRequestIndex: number } }).requestIterator.currentRequestIndex;
      times[k].push(ms);
      if (status < 200 || status >= 300) bad[k]++;
    });
  });
}

export async function runApiLoadBench(options: ApiLoadOptions = {}): Promise<BenchResult[]> {
  const seconds = options.seconds ?? 60;
  const connections = options.connections ?? 50;
  const ruleConnections = Math.max(1, Math.min(connections - 1, options.ruleConnections ?? Math.round(connections / 5)));
  const readConnections = connections - ruleConnections;
  const home = await mkdtemp(join(tmpdir(), 'sluice-bench-load-'));
  const port = 30000 + Math.floor(Math.random() * 20000);
  const server = await startServer(home, port, options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []);
  try {
    const issuer = await loadOrCreateLocalIssuer(home);
    const rootToken = await mintToken(issuer, { lifetimeSeconds: 7200, audience: 'sluice' });
    const admin = await mintToken(issuer, { vo: 'load', account: 'admin', lifetimeSeconds: 7200, audience: 'sluice' });
    const seedStarted = Date.now();
    const { ruleId } = await seed(server.url, rootToken, admin);
    if (!options.noAnalyze) await analyzeSeed(home);
    console.error(`seeded ${DATASETS} x ${FILES_PER_DATASET} files in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s; loading for ${seconds} s with ${readConnections} reading + ${ruleConnections} rule connections`);

    let d = 0;
    const reads: autocannon.Request[] = [
      { method: 'GET', setupRequest: (r) => ({ ...r, path: `/v1/dids/data/file.${d % DATASETS}.${String((d++ * 7919) % FILES_PER_DATASET).padStart(5, '0')}` }) },
      { method: 'GET', setupRequest: (r) => ({ ...r, path: `/v1/dids?scope=data&name=file.${d % DATASETS}.*&filter=run%3D${1000 + (d++ % 50)}&filter=stream%3Dphysics&limit=100` }) },
      { method: 'GET', setupRequest: (r) => ({ ...r, path: `/v1/dids/data/ds.${d++ % DATASETS}/replicas?limit=100` }) },
      { method: 'GET', path: `/v1/rules/${ruleId}` },
    ];
    const readNames = ['GET DID', 'list DIDs (pattern + 2 metadata filters)', 'list replicas of a 1,000-file dataset (page of 100)', 'GET rule'];
    const expressions = ['DISK_0', 'tier=1&country=FR', 'country=DE', 'tier=1\\country=IT', 'DISK_0|DISK_1'];
    let e = 0;
    const rules: autocannon.Request[] = [
      {
        method: 'POST',
        path: '/v1/rules',
        setupRequest: (r) => ({ ...r, body: JSON.stringify({ dids: [{ scope: 'data', name: `ds.${e % DATASETS}` }], copies: 1, rse_expression: expressions[e++ % expressions.length] }) }),
        onResponse: (status, body, context) => {
          (context as { id?: string }).id = status === 201 ? (JSON.parse(body) as { ids: string[] }).ids[0] : undefined;
        },
      },
      {
        method: 'DELETE',
        // A failed creation leaves no id: the DELETE then 404s and is counted as an error.
        setupRequest: (r, context) => ({ ...r, body: undefined, path: `/v1/rules/${(context as { id?: string }).id ?? '00000000-0000-0000-0000-000000000000'}` }),
      },
    ];

    const [readRun, ruleRun] = await Promise.all([
      runTyped({ url: server.url, token: admin, connections: readConnections, seconds, requests: reads, title: 'reads' }),
      runTyped({ url: server.url, token: admin, connections: ruleConnections, seconds, requests: rules, title: 'rules' }),
    ]);

    const allReads = readRun.times.flat();
    const readErrors = readRun.bad.reduce((a, b) => a + b, 0) + readRun.result.errors;
    const creates = ruleRun.times[0];
    const deletes = ruleRun.times[1];
    // A failed DELETE is an error of the rule workload too (it leaves a rule and its locks behind).
    const ruleErrors = ruleRun.result.errors + ruleRun.bad[0] + ruleRun.bad[1];
    const r1 = (x: number) => Math.round(x * 10) / 10;
    const readP99 = percentile(allReads, 99);
    const createP99 = percentile(creates, 99);
    const results: BenchResult[] = [
      { name: `reads: throughput (${readConnections} connections)`, value: Math.round(allReads.length / seconds), unit: 'req/s' },
      { name: 'reads: p50 latency', value: r1(percentile(allReads, 50)), unit: 'ms' },
      { name: 'reads: p99 latency', value: r1(readP99), unit: 'ms', target: '< 50 ms', pass: readP99 < 50 },
      ...readNames.map((n, i) => ({ name: `reads: ${n} p99`, value: r1(percentile(readRun.times[i], 99)), unit: 'ms (p99)', note: `p50 ${r1(percentile(readRun.times[i], 50))} ms, ${readRun.times[i].length} requests` })),
      { name: 'reads: errors (non-2xx + connection errors)', value: readErrors, unit: 'errors', target: 0, pass: readErrors === 0 },
      { name: `rule creation on a 1,000-file dataset: throughput (${ruleConnections} connections)`, value: r1(creates.length / seconds), unit: 'rules/s' },
      { name: 'rule creation: p50 latency', value: r1(percentile(creates, 50)), unit: 'ms' },
      { name: 'rule creation: p99 latency', value: r1(createP99), unit: 'ms', target: '< 200 ms', pass: createP99 < 200 },
      { name: 'rule creation and deletion: errors (non-2xx + connection errors)', value: ruleErrors, unit: 'errors', target: 0, pass: ruleErrors === 0 },
      { name: 'rule deletion (cleanup between creations): p99', value: r1(percentile(deletes, 99)), unit: 'ms (p99)', note: `p50 ${r1(percentile(deletes, 50))} ms, ${ruleRun.bad[1]} non-2xx` },
    ];
    return results;
  } finally {
    await server.stop();
    await rm(home, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const raw = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const arg = (name: string) => (raw(name) === undefined ? undefined : Number(raw(name)));
  const results = await runApiLoadBench({ seconds: arg('seconds'), connections: arg('connections'), ruleConnections: arg('rule-connections'), cpuProfDir: raw('cpu-prof'), noAnalyze: process.argv.includes('--no-analyze') });
  printResults('api-load', results);
  for (const r of results) if (r.note) console.log(`  ${r.name}: ${r.note}`);
}
