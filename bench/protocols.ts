/**
 * Protocol-layer benchmark. Measures, side by side in one run:
 *  (a) a large streaming copy between two fixture endpoints (separate processes), Sluice's
 *      copyFile in stream mode (run in a child process so its peak RSS is its own) against
 *      `curl GET | curl PUT` between the same endpoints;
 *  (b) many small files by HTTP-TPC pull between two real XRootD servers, Sluice's copyFile at
 *      concurrency N against one `curl -X COPY` process per file at the same concurrency.
 *
 *   npx tsx bench/protocols.ts [--size-mib 1024] [--files 1000] [--concurrency 16] [--rounds 2]
 *
 * Prints a table and writes the figures to bench/out/protocols.json.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, openSync, writeSync, closeSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { createAdler32 } from '../core/checksum.ts';
import { reachableTempDir, which } from '../fixtures/servers/common.ts';
import { startXrootd, xrootdAvailable } from '../fixtures/servers/xrootd.ts';
import { copyFile, createStorageClient } from '../protocols/index.ts';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

// --- child mode: one streaming copy, reporting its own duration and peak RSS ----------------
if (process.argv[2] === '--child-copy') {
  const [, , , srcUrl, dstUrl, size, adler32] = process.argv;
  const src = createStorageClient({ kind: 'http', url: srcUrl, prefix: '/', tpc: 'none' });
  const dst = createStorageClient({ kind: 'http', url: dstUrl, prefix: '/', tpc: 'none' });
  const t0 = performance.now();
  const res = await copyFile({
    source: { client: src, path: 'big.bin' },
    destination: { client: dst, path: 'sluice.bin' },
    size: Number(size),
    adler32,
    modes: ['stream'],
  });
  const ms = performance.now() - t0;
  await src.close();
  await dst.close();
  process.stdout.write(JSON.stringify({ ms, bytes: res.bytes, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
  process.exit(0);
}

interface Proc {
  url: string;
  kill(): void;
}

async function startFixtureProcess(root: string): Promise<Proc> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'fixtures/storage-server.ts'), '--port', '0', '--root', root], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      if (out.includes('\n')) res(out.trim());
    });
    child.on('exit', (code) => rej(new Error(`fixture exited ${code}`)));
  });
  return { url, kill: () => child.kill('SIGTERM') };
}

async function makeFile(path: string, bytes: number): Promise<string> {
  // 4 MiB of random data repeated with a changing first byte: incompressible enough, fast to make.
  const block = randomBytes(4 * 1024 * 1024);
  const a = createAdler32();
  const fd = openSync(path, 'w');
  for (let off = 0, i = 0; off < bytes; off += block.length, i++) {
    block[0] = i & 0xff;
    const piece = block.subarray(0, Math.min(block.length, bytes - off));
    writeSync(fd, piece);
    a.update(piece);
  }
  closeSync(fd);
  return a.hex();
}

async function adlerOf(path: string): Promise<string> {
  const a = createAdler32();
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) a.update(c as Buffer);
  return a.hex();
}

function timeShell(cmd: string): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn('bash', ['-o', 'pipefail', '-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? res(performance.now() - t0) : rej(new Error(`${cmd}: exit ${code}`))));
  });
}

const CHILD_NODE_FLAGS = (process.env.BENCH_CHILD_FLAGS ?? '').split(' ').filter(Boolean);

function runChildCopy(a: string, b: string, size: number, adler: string): Promise<{ ms: number; maxRssKiB: number; bytes: number }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [...CHILD_NODE_FLAGS, '--import', 'tsx', fileURLToPath(import.meta.url), '--child-copy', a, b, String(size), adler], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('exit', (code) => (code === 0 ? res(JSON.parse(out.trim())) : rej(new Error(`child copy exit ${code}`))));
  });
}

const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, cpus: (await import('node:os')).cpus().length };

// --- (a) large streaming copy ------------------------------------------------------------------
async function largeCopy(): Promise<void> {
  const sizeMiB = arg('size-mib', 1024);
  const rounds = arg('rounds', 2);
  const bytes = sizeMiB * 1024 * 1024;
  if (!which('curl')) {
    results.largeCopy = { skipped: 'curl not installed' };
    return;
  }
  const work = await reachableTempDir('sluice-bench-');
  try {
    const rootA = join(work, 'a');
    const rootB = join(work, 'b');
    await mkdir(rootA);
    await mkdir(rootB);
    process.stderr.write(`(a) making a ${sizeMiB} MiB file...\n`);
    const adler = await makeFile(join(rootA, 'big.bin'), bytes);
    const A = await startFixtureProcess(rootA);
    const B = await startFixtureProcess(rootB);
    try {
      const curlMs: number[] = [];
      const sluice: { ms: number; maxRssKiB: number }[] = [];
      for (let r = 0; r < rounds; r++) {
        process.stderr.write(`(a) round ${r + 1}/${rounds}: curl | curl...\n`);
        curlMs.push(await timeShell(`curl -sS --fail ${A.url}/big.bin | curl -sS --fail -o /dev/null -T - ${B.url}/curl.bin`));
        if ((await adlerOf(join(rootB, 'curl.bin'))) !== adler) throw new Error('curl copy is corrupt');
        await rm(join(rootB, 'curl.bin'));
        process.stderr.write(`(a) round ${r + 1}/${rounds}: sluice copyFile (stream)...\n`);
        const s = await runChildCopy(A.url, B.url, bytes, adler);
        if (s.bytes !== bytes) throw new Error('sluice copy has the wrong size');
        sluice.push(s);
        await rm(join(rootB, 'sluice.bin'));
      }
      const mbps = (ms: number) => bytes / 1e6 / (ms / 1000);
      const bestCurl = Math.min(...curlMs);
      const bestSluice = Math.min(...sluice.map((s) => s.ms));
      results.largeCopy = {
        sizeMiB,
        rounds,
        curlMBps: curlMs.map(mbps),
        sluiceMBps: sluice.map((s) => mbps(s.ms)),
        sluicePeakRssMiB: sluice.map((s) => s.maxRssKiB / 1024),
        ratioBest: mbps(bestSluice) / mbps(bestCurl),
        ratioMedianOfRounds: curlMs.map((c, i) => c / sluice[i].ms),
        targets: { ratio: 0.8, peakRssMiB: 150 },
      };
    } finally {
      A.kill();
      B.kill();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// --- (b) many small files by TPC between two XRootD servers -----------------------------------
async function smallFiles(): Promise<void> {
  const files = arg('files', 1000);
  const concurrency = arg('concurrency', 16);
  const avail = xrootdAvailable();
  if (!avail.ok || !which('curl')) {
    results.smallFilesTpc = { skipped: avail.reason ?? 'curl not installed' };
    process.stderr.write(`(b) SKIPPED: ${avail.reason ?? 'curl not installed'}\n`);
    return;
  }
  const [X, Y] = await Promise.all([startXrootd({ name: 'benchA' }), startXrootd({ name: 'benchB' })]);
  const a = createStorageClient({ kind: 'http', url: X.url, prefix: '/bench', tpc: 'both', settings: { connections: concurrency } });
  const b = createStorageClient({ kind: 'http', url: Y.url, prefix: '/bench', tpc: 'both', settings: { connections: concurrency } });
  try {
    const body = randomBytes(4096);
    const adler = createAdler32().update(body).hex();
    const limit = pLimit(concurrency);
    process.stderr.write(`(b) uploading ${files} x 4 KiB to XRootD A...\n`);
    await a.mkdir('src');
    await Promise.all(Array.from({ length: files }, (_, i) => limit(() => a.write(`src/f${i}`, body, { size: body.length }))));
    await b.mkdir('curl');

    process.stderr.write(`(b) curl -X COPY, one process per file, ${concurrency} at a time...\n`);
    const curl = which('curl')!;
    let t0 = performance.now();
    await Promise.all(
      Array.from({ length: files }, (_, i) =>
        limit(async () => {
          const { stdout } = await run(curl, ['-sS', '--fail', '-X', 'COPY', '-H', `Source: ${a.url(`src/f${i}`)}`, `${Y.url}/bench/curl/f${i}`]);
          if (!/success: /.test(stdout)) throw new Error(`curl COPY f${i}: ${stdout.slice(-200)}`);
        }),
      ),
    );
    const curlMs = performance.now() - t0;

    process.stderr.write(`(b) Sluice copyFile (tpc-pull, verified by size + adler32), ${concurrency} at a time...\n`);
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: files }, (_, i) =>
        limit(() =>
          copyFile({
            source: { client: a, path: `src/f${i}` },
            destination: { client: b, path: `sluice/f${i}` },
            size: body.length,
            adler32: adler,
            modes: ['tpc-pull'],
          }),
        ),
      ),
    );
    const sluiceMs = performance.now() - t0;
    const rate = (ms: number) => files / (ms / 1000);
    results.smallFilesTpc = {
      files,
      concurrency,
      curlFilesPerSec: rate(curlMs),
      sluiceFilesPerSec: rate(sluiceMs),
      ratio: rate(sluiceMs) / rate(curlMs),
      sluiceIncludes: 'MKCOL of the parent (cached), COPY with perf-marker parsing, HEAD Want-Digest verification',
      target: { ratio: 3 },
    };
  } finally {
    await a.close();
    await b.close();
    await Promise.all([X.stop(), Y.stop()]);
    await Promise.all([rm(X.dir, { recursive: true, force: true }), rm(Y.dir, { recursive: true, force: true })]);
  }
}

await largeCopy();
await smallFiles();

const f = (n: unknown, d = 1) => (typeof n === 'number' ? n.toFixed(d) : String(n));
const lc = results.largeCopy as Record<string, number[] | number> & { skipped?: string };
const sf = results.smallFilesTpc as Record<string, number> & { skipped?: string };
const rows: [string, string, string][] = [];
if (lc && !lc.skipped) {
  rows.push(['(a) curl GET | curl PUT, MB/s', (lc.curlMBps as number[]).map((x) => f(x)).join(' / '), '']);
  rows.push(['(a) Sluice copyFile stream, MB/s', (lc.sluiceMBps as number[]).map((x) => f(x)).join(' / '), '']);
  rows.push(['(a) Sluice/curl (best rounds)', f(lc.ratioBest, 2), '>= 0.80']);
  rows.push(['(a) Sluice peak RSS, MiB', (lc.sluicePeakRssMiB as number[]).map((x) => f(x)).join(' / '), '< 150']);
} else rows.push(['(a) large copy', `skipped: ${lc?.skipped}`, '']);
if (sf && !sf.skipped) {
  rows.push([`(b) curl -X COPY per file, files/s (c=${sf.concurrency})`, f(sf.curlFilesPerSec), '']);
  rows.push([`(b) Sluice copyFile tpc-pull, files/s (c=${sf.concurrency})`, f(sf.sluiceFilesPerSec), '']);
  rows.push(['(b) Sluice/curl', f(sf.ratio, 2), '>= 3.00']);
} else rows.push(['(b) small files TPC', `skipped: ${sf?.skipped}`, '']);
const w = Math.max(...rows.map((r) => r[0].length));
process.stdout.write(`\n${'measure'.padEnd(w)}  ${'value'.padEnd(24)}  target\n`);
for (const [k, v, t] of rows) process.stdout.write(`${k.padEnd(w)}  ${v.padEnd(24)}  ${t}\n`);
await mkdir(join(here, 'out'), { recursive: true });
await writeFile(join(here, 'out', 'protocols.json'), JSON.stringify(results, null, 2) + '\n');
process.stdout.write(`\nwritten to bench/out/protocols.json\n`);
