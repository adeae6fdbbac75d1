/**
 * Catalogue benchmarks (issue: foundation):
 * - 100,000 files and their replicas registered through the HTTP API, end to end (files/s);
 * - `npm start` (sluice server on an existing SLUICE_HOME) to a healthy /health.
 * Run alone: npx tsx bench/catalogue.ts [--files 100000]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';
import { loadConfig } from '../core/config.ts';
import { silentLogger } from '../core/log.ts';
import { openDatabase } from '../core/runtime.ts';
import { serveApi } from '../api/server.ts';
import { isMain, median, printResults, type BenchResult, post } from './lib.ts';

const root = new URL('..', import.meta.url).pathname;


export async function benchRegistration(files = 100_000, batch = 10_000, concurrency = 2): Promise<BenchResult[]> {
  const home = await mkdtemp(join(tmpdir(), 'sluice-bench-cat-'));
  const config = loadConfig({ SLUICE_HOME: home, PORT: '0' });
  const db = await openDatabase(config, { log: silentLogger, migrate: 'apply' });
  const api = await serveApi(db.sql, config, silentLogger);
  try {
    const issuer = await loadOrCreateLocalIssuer(home);
    const root = await mintToken(issuer, { lifetimeSeconds: 3600, audience: 'sluice' });
    const admin = await mintToken(issuer, { vo: 'bench', account: 'admin', lifetimeSeconds: 3600, audience: 'sluice' });
    await post(`${api.url}/v1/vos`, root, { name: 'bench' });
    await post(`${api.url}/v1/endpoints`, root, { name: 'ep', url: 'http://127.0.0.1:1', kind: 'http' });
    await post(`${api.url}/v1/scopes`, admin, { name: 'data' });
    await post(`${api.url}/v1/rses`, admin, { name: 'DISK', endpoint: 'ep', prefix: '/bench' });

    const batches = Array.from({ length: Math.ceil(files / batch) }, (_, b) =>
      Array.from({ length: Math.min(batch, files - b * batch) }, (_, i) => {
        const n = b * batch + i;
        return { scope: 'data', name: `file.${String(n).padStart(8, '0')}`, bytes: 1_000_000 + n, adler32: (0x10000000 + n).toString(16).slice(-8), meta: { run: 1000 + (n % 100) } };
      }),
    );
    const started = performance.now();
    const perRequest: number[] = [];
    let next = 0;
    // Each worker registers a batch of DIDs, then their replicas: the client's natural order.
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < batches.length) {
          const dids = batches[next++];
          const t0 = performance.now();
          await post(`${api.url}/v1/dids`, admin, { dids });
          await post(`${api.url}/v1/replicas`, admin, { rse: 'DISK', replicas: dids.map(({ scope, name }) => ({ scope, name })) });
          perRequest.push((performance.now() - t0) / 2);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const [{ n }] = await db.sql<{ n: number }[]>`select count(*)::int as n from replicas`;
    if (n !== files) throw new Error(`expected ${files} replicas, found ${n}`);
    const rate = files / seconds;
    return [
      { name: `register ${files} files + replicas via API`, value: Math.round(rate), unit: 'files/s', target: '>= 20000 files/s', pass: rate >= 20_000 },
      { name: `median request (${batch} items)`, value: Math.round(median(perRequest)), unit: 'ms' },
    ];
  } finally {
    await api.close();
    await db.close();
    await rm(home, { recursive: true, force: true });
  }
}

/** Time from `npm start` to a 200 on /health, on a home that has been started once before. */
export async function benchStartup(runs = 3): Promise<BenchResult[]> {
  const home = await mkdtemp(join(tmpdir(), 'sluice-bench-start-'));
  const port = 30000 + Math.floor(Math.random() * 20000);
  const env: NodeJS.ProcessEnv = { ...process.env, SLUICE_HOME: home, PORT: String(port), LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    const child = spawn('npm', ['start', '--silent'], { cwd: root, env, stdio: 'ignore', detached: true });
    try {
      for (;;) {
        try {
          if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) return performance.now() - t0;
        } catch {
          // starting
        }
        if (performance.now() - t0 > 60_000) throw new Error('server did not become healthy in 60 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  try {
    const first = await once(); // initialises the database
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await once());
    const m = median(times);
    return [
      { name: 'npm start -> /health 200 (first start, initdb)', value: Math.round(first), unit: 'ms' },
      { name: 'npm start -> /health 200 (installed checkout)', value: Math.round(m), unit: 'ms', target: '< 5000 ms', pass: m < 5000 },
    ];
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

export async function runCatalogueBench(options: { files?: number } = {}): Promise<BenchResult[]> {
  return [...(await benchRegistration(options.files)), ...(await benchStartup())];
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--files');
  const results = await runCatalogueBench({ files: i > 0 ? Number(process.argv[i + 1]) : undefined });
  printResults('catalogue', results);
}
