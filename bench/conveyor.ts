/**
 * Conveyor benchmarks (issue 5):
 * - latency from rule creation to its first transfer ACTIVE (median over 20 rules, LISTEN/NOTIFY);
 * - 10,000 files of 4 KiB replicated by one rule between two fixture endpoints by HTTP-TPC, end
 *   to end with every catalogue update (files/s);
 * - dispatch overhead with the null protocol: 10,000 and 1,000,000 queued requests over 100
 *   links, requests claimed and finished per second (the 1M run measures its first 100,000).
 * Uses DATABASE_URL when set, else an embedded PostgreSQL in a temporary directory.
 *   npx tsx bench/conveyor.ts [latency|tpc|dispatch ...] [--big 1000000]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../core/log.ts';
import { ensureLinks } from '../core/requests.ts';
import { createConveyor } from '../daemons/conveyor.ts';
import { createStorageClient } from '../protocols/index.ts';
import { createWorld } from '../test/e2e/world.ts';
import { benchDatabase, isMain, median, printResults, type BenchResult } from './lib.ts';

const database = (tag: string) => benchDatabase(`conveyor_${tag}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchLatency(rules = 20): Promise<BenchResult[]> {
  const db = await database('latency');
  const world = await createWorld(db.sql, { endpoints: { a: {}, b: {} }, rses: { SRC: 'a', DST: 'b' } });
  const conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { intervalMs: 1000 });
  const ac = new AbortController();
  const loop = conveyor.run(ac.signal);
  await sleep(500); // LISTEN is up
  const ms: number[] = [];
  try {
    for (let i = 0; i < rules; i++) {
      await world.dataset(`lat${i}`, 1, { on: ['SRC'] });
      const t0 = Date.now();
      const rule = await world.rule({ scope: 'data', name: `lat${i}` }, 'DST', 1);
      for (;;) {
        const [r] = await db.sql<{ started_at: Date | null }[]>`
          select q.started_at from requests q join locks l on l.vo = q.vo and l.scope = q.scope and l.name = q.name and l.rse_id = q.dest_rse_id
          where l.rule_id = ${rule}::uuid`;
        if (r?.started_at) {
          ms.push(r.started_at.getTime() - t0);
          break;
        }
        await sleep(2);
      }
      await conveyor.settle();
    }
  } finally {
    ac.abort();
    await loop;
    await conveyor.drain(5000);
    await world.close();
    await db.close();
  }
  const m = median(ms);
  return [{ name: `rule -> first transfer ACTIVE, median of ${rules}`, value: m, unit: 'ms', target: '< 300', pass: m < 300, note: `max ${Math.max(...ms)} ms` }];
}

export async function benchTpc(files = Number(process.env.BENCH_TPC_FILES ?? 10_000)): Promise<BenchResult[]> {
  const db = await database('tpc');
  const world = await createWorld(db.sql, { endpoints: { a: {}, b: {} }, rses: { SRC: 'a', DST: 'b' }, processes: true });
  try {
    await world.dataset('tpc', files, { on: ['SRC'], size: 4096 });
    // The link exists before the rule and runs at a fixed limit (the optimizer is not running).
    const eps = await db.sql<{ id: number; name: string }[]>`select id, name from storage_endpoints order by name`;
    await ensureLinks(db.sql, [[eps[0].id, eps[1].id]]);
    await db.sql`update links set limit_active = ${Number(process.env.BENCH_LINK_LIMIT ?? 64)}`;
    const conveyor = createConveyor({ sql: db.sql, log: silentLogger }, { intervalMs: 200, maxActive: 200 });
    const ac = new AbortController();
    const loop = conveyor.run(ac.signal);
    await sleep(300);
    const t0 = performance.now();
    const rule = await world.rule({ scope: 'data', name: 'tpc' }, 'DST', 1);
    for (;;) {
      const [r] = await db.sql<{ state: string }[]>`select state from rules where id = ${rule}::uuid`;
      if (r.state === 'OK') break;
      if (r.state === 'STUCK') throw new Error('TPC benchmark rule is STUCK');
      await sleep(50);
    }
    const s = (performance.now() - t0) / 1000;
    ac.abort();
    await loop;
    await conveyor.drain(5000);
    const [modes] = await db.sql<{ modes: string[] }[]>`select array_agg(distinct mode) as modes from transfer_attempts`;
    const rate = files / s;
    const slow = await db.sql`select avg(duration_ms)::int as ms from transfer_attempts`;
    console.error(`mean attempt duration ${slow[0].ms} ms`);
    const results: BenchResult[] = [
      { name: `${files} x 4 KiB by TPC, fixture -> fixture, rule to OK`, value: rate, unit: 'files/s', target: '>= 500', pass: rate >= 500, note: `${s.toFixed(1)} s, modes ${modes.modes.join(',')}, link limit ${Number(process.env.BENCH_LINK_LIMIT ?? 64)}, storage endpoints in their own processes` },
    ];
    return results;
  } finally {
    await world.close();
    await db.close();
  }
}

/**
 * Null protocol, 10 source x 10 destination endpoints = 100 links, `queued` requests seeded with
 * set-based inserts (files, source replicas, COPYING destination replicas, requests with source
 * and link assigned). Measures claimed + finished per second over the first `window` finishes.
 */
export async function benchDispatch(queued: number, window: number): Promise<BenchResult[]> {
  const db = await database(`dispatch${queued}`);
  const { sql } = db;
  try {
    await sql`insert into vos (name) values ('bench')`;
    await sql`insert into accounts (vo, name, role) values ('bench', 'admin', 'admin')`;
    await sql`insert into scopes (vo, name, account) values ('bench', 'data', 'admin')`;
    await sql`
      insert into storage_endpoints (name, url, kind, tpc)
      select 'ep' || i, 'http://null-' || i || '.invalid:1', 'http', 'both' from generate_series(0, 19) i`;
    await sql`
      insert into rses (vo, name, endpoint_id, prefix)
      select 'bench', 'R' || substr(e.name, 3), e.id, '/r' || substr(e.name, 3) from storage_endpoints e`;
    const rses = await sql<{ id: number; endpoint_id: number; n: number }[]>`select id, endpoint_id, substr(name, 2)::int as n from rses order by n`;
    const src = rses.filter((r) => r.n < 10);
    const dst = rses.filter((r) => r.n >= 10);
    const links = await ensureLinks(sql, src.flatMap((s) => dst.map((d) => [s.endpoint_id, d.endpoint_id] as [number, number])));
    await sql`update links set limit_active = 100`;
    const filesN = Math.ceil(queued / 10);
    const t0 = performance.now();
    await sql`
      insert into dids (vo, scope, name, type, account, bytes, adler32)
      select 'bench', 'data', 'f' || i, 'FILE', 'admin', 4096, lpad(to_hex(i + 1), 8, '0') from generate_series(0, ${filesN - 1}) i`;
    await sql`
      insert into replicas (vo, scope, name, rse_id, state, path)
      select 'bench', 'data', 'f' || i, (${src.map((s) => s.id)}::bigint[])[1 + i % 10], 'AVAILABLE', 'data/f' || i from generate_series(0, ${filesN - 1}) i`;
    const dstIds = dst.map((d) => d.id);
    await sql`
      insert into replicas (vo, scope, name, rse_id, state, path, lock_cnt)
      select 'bench', 'data', 'f' || i, (${dstIds}::bigint[])[1 + j], 'COPYING', 'data/f' || i, 0
      from generate_series(0, ${filesN - 1}) i, generate_series(0, 9) j
      where i * 10 + j < ${queued}`;
    const linkOf = src.map((s) => dst.map((d) => links.get(`${s.endpoint_id}:${d.endpoint_id}`)!));
    await sql`
      insert into requests (vo, scope, name, dest_rse_id, bytes, adler32, source_rse_id, link_id, created_at)
      select 'bench', 'data', 'f' || i, (${dstIds}::bigint[])[1 + j], 4096, lpad(to_hex(i + 1), 8, '0'),
             (${src.map((s) => s.id)}::bigint[])[1 + i % 10], (${linkOf.flat()}::bigint[])[1 + (i % 10) * 10 + j],
             now() + make_interval(secs => i * 0.000001)
      from generate_series(0, ${filesN - 1}) i, generate_series(0, 9) j
      where i * 10 + j < ${queued}`;
    await sql`vacuum analyze requests`;
    await sql`vacuum analyze replicas`;
    const seedS = (performance.now() - t0) / 1000;

    const conveyor = createConveyor(
      { sql, log: silentLogger, clientFactory: (c) => createStorageClient({ ...c, kind: 'null' }) },
      { intervalMs: 50, maxActive: 3000, finishBatch: 1000, finishConcurrency: 3, claimConcurrency: 4, listen: false },
    );
    const ac = new AbortController();
    const started = performance.now();
    const loop = conveyor.run(ac.signal);
    let done = 0;
    for (;;) {
      const [r] = await sql<{ n: number }[]>`select count(*)::int as n from requests where vo = 'bench' and state = 'DONE'`;
      done = r.n;
      if (done >= window) break;
      if (performance.now() - started > 600_000) break;
      await sleep(200);
    }
    const s = (performance.now() - started) / 1000;
    ac.abort();
    await loop;
    await conveyor.drain(10_000);
    const rate = done / s;
    return [
      {
        name: `null-protocol dispatch, ${queued.toLocaleString('en')} queued over 100 links`,
        value: rate,
        unit: 'requests/s',
        target: '>= 5000',
        pass: rate >= 5000,
        note: `first ${done.toLocaleString('en')} finished in ${s.toFixed(1)} s (seeding ${seedS.toFixed(0)} s, not measured)`,
      },
    ];
  } finally {
    await db.close();
  }
}

/**
 * The conveyor between two real XRootD servers (TPC pull, verified by Want-Digest adler32), at
 * the concurrency of the protocol benchmark's process-per-file baseline, reported beside it.
 */
export async function benchXrootd(files = Number(process.env.BENCH_XROOTD_FILES ?? 1000), concurrency = 16): Promise<BenchResult[]> {
  const { xrootdAvailable, startXrootd } = await import('../fixtures/servers/xrootd.ts');
  const available = xrootdAvailable();
  if (!available.ok) return [{ name: 'XRootD <-> XRootD through the conveyor', value: NaN, unit: 'files/s', note: `skipped: ${available.reason}` }];
  const db = await database('xrootd');
  const a = await startXrootd({ name: 'bench-a' });
  const b = await startXrootd({ name: 'bench-b' });
  try {
    const { addEndpoint } = await import('../core/endpoints.ts');
    const { addRse } = await import('../core/rses.ts');
    const { addDids, attachDids } = await import('../core/catalogue.ts');
    const { createRules } = await import('../core/rules.ts');
    const { registerReplicas, policy } = await import('../test/e2e/world.ts');
    const { hashPath } = await import('../policies/default.ts');
    const { adler32Hex } = await import('../core/checksum.ts');
    const { randomBytes } = await import('node:crypto');
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { dirname } = await import('node:path');
    const sql = db.sql;
    await sql`insert into vos (name) values ('exp')`;
    await sql`insert into accounts (vo, name, role) values ('exp', 'admin', 'admin')`;
    await sql`insert into scopes (vo, name, account) values ('exp', 'data', 'admin')`;
    await addEndpoint(sql, { name: 'xa', url: a.url, kind: 'http', tpc: 'both' });
    await addEndpoint(sql, { name: 'xb', url: b.url, kind: 'http', tpc: 'both' });
    const src = await addRse(sql, 'exp', { name: 'SRC', endpoint: 'xa', prefix: '/exp/src' });
    await addRse(sql, 'exp', { name: 'DST', endpoint: 'xb', prefix: '/exp/dst' });
    const list = Array.from({ length: files }, (_, i) => {
      const data = randomBytes(4096);
      return { scope: 'data', name: `x.${String(i).padStart(6, '0')}`, type: 'FILE' as const, bytes: 4096, adler32: adler32Hex(data), data };
    });
    for (const f of list) {
      const path = join(a.exportDir, 'exp/src', hashPath(f));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, f.data);
    }
    await addDids(sql, 'exp', 'admin', [...list.map(({ data: _d, ...f }) => f), { scope: 'data', name: 'xds', type: 'DATASET' }]);
    await attachDids(sql, 'exp', { scope: 'data', name: 'xds' }, list.map(({ scope, name }) => ({ scope, name })));
    await registerReplicas(sql, 'exp', src.id, list);
    const eps = await sql<{ id: number }[]>`select id from storage_endpoints order by name`;
    await ensureLinks(sql, [[eps[0].id, eps[1].id]]);
    await sql`update links set limit_active = ${concurrency}`;
    const conveyor = createConveyor({ sql, log: silentLogger }, { intervalMs: 200, maxActive: concurrency * 2 });
    const ac = new AbortController();
    const loop = conveyor.run(ac.signal);
    await sleep(300);
    const t0 = performance.now();
    const [rule] = await createRules(sql, 'exp', 'admin', { dids: [{ scope: 'data', name: 'xds' }], copies: 1, rse_expression: 'DST', grouping: 'NONE' }, { policy });
    for (;;) {
      const [r] = await sql<{ state: string; error: string | null }[]>`select state, error from rules where id = ${rule.id}::uuid`;
      if (r.state === 'OK') break;
      if (r.state === 'STUCK') throw new Error(`XRootD benchmark rule is STUCK: ${r.error}`);
      await sleep(50);
    }
    const seconds = (performance.now() - t0) / 1000;
    ac.abort();
    await loop;
    await conveyor.drain(5000);
    const rate = files / seconds;
    const out: BenchResult[] = [
      { name: `${files} x 4 KiB, XRootD -> XRootD through the conveyor (limit ${concurrency}), rule to OK`, value: rate, unit: 'files/s', note: 'TPC pull, verified by Want-Digest adler32, all catalogue updates' },
    ];
    try {
      const p = JSON.parse(await readFile(new URL('./out/protocols.json', import.meta.url), 'utf8')) as { smallFilesTpc?: { curlFilesPerSec: number; concurrency: number } };
      if (p.smallFilesTpc) {
        out.push({ name: `process-per-file baseline: curl -X COPY per file (c=${p.smallFilesTpc.concurrency}), from bench/protocols.ts`, value: p.smallFilesTpc.curlFilesPerSec, unit: 'files/s' });
        out.push({ name: 'conveyor / process-per-file', value: rate / p.smallFilesTpc.curlFilesPerSec, unit: 'x' });
      }
    } catch {
      out.push({ name: 'process-per-file baseline', value: NaN, unit: 'files/s', note: 'run bench/protocols.ts first (npm run bench runs it before this group)' });
    }
    return out;
  } finally {
    await a.stop();
    await b.stop();
    await db.close();
  }
}

export async function runConveyorBench(options: { groups?: string[]; big?: number } = {}): Promise<BenchResult[]> {
  const groups = options.groups?.length ? options.groups : ['latency', 'tpc', 'xrootd', 'dispatch'];
  const out: BenchResult[] = [];
  if (groups.includes('latency')) out.push(...(await benchLatency()));
  if (groups.includes('tpc')) out.push(...(await benchTpc()));
  if (groups.includes('xrootd')) out.push(...(await benchXrootd()));
  if (groups.includes('dispatch')) {
    const small = await benchDispatch(10_000, 10_000);
    const big = await benchDispatch(options.big ?? 1_000_000, 100_000);
    out.push(...small, ...big);
    const ratio = big[0].value / small[0].value;
    out.push({ name: 'dispatch rate at 1M queued / at 10k queued', value: ratio, unit: 'x', target: '>= ~1 (no slower)', pass: ratio >= 0.9 });
  }
  return out;
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const bigAt = args.indexOf('--big');
  const big = bigAt >= 0 ? Number(args[bigAt + 1]) : undefined;
  const groups = args.filter((a, i) => !a.startsWith('--') && (bigAt < 0 || i !== bigAt + 1));
  runConveyorBench({ groups, big })
    .then((r) => printResults('conveyor', r))
    .catch((e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    });
}
