import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';

/**
 * `npm run demo` as a newcomer runs it: the whole data lake comes up, data starts moving between
 * the storage sites, the dashboard is served, Ctrl-C stops everything, and a second run resumes.
 * How long the first transfers take is printed (the target lives in the issue, not in a timed
 * assertion).
 */
const root = new URL('..', import.meta.url).pathname;
let home: string;
const port = 21000 + Math.floor(Math.random() * 20000);
const storagePort = port + 1;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'sluice-demo-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

function startDemo(): { child: ChildProcess; output: () => string; ready: Promise<void> } {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_FORMAT: 'json' };
  delete env.DATABASE_URL;
  delete env.SLUICE_HOME;
  delete env.VITEST;
  const child = spawn(process.execPath, [join(root, 'bin/sluice.mjs'), 'demo', '--home', home, '--port', String(port), '--storage-port', String(storagePort)], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (/Ready in/.test(out)) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`demo exited (${code}) before it was ready:\n${out}`));
    });
  });
  return { child, output: () => out, ready };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGINT');
  return exited;
}

it('brings up the data lake, moves data, serves the dashboard, stops cleanly and resumes', { timeout: 240_000 }, async () => {
  const started = Date.now();
  const first = startDemo();
  try {
    await first.ready;
    expect(first.output()).toMatch(/Dashboard\s+http:\/\/127\.0\.0\.1:\d+\/ui/);
    const issuer = await loadOrCreateLocalIssuer(home);
    const token = await mintToken(issuer, { lifetimeSeconds: 600, audience: 'sluice' });
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? await r.json() : await r.text() };
    };
    // Transfers finish: replicas appear at the rules' destinations.
    let firstDone = 0;
    for (;;) {
      const done = await get('/v1/requests?state=DONE&limit=1');
      if (done.status === 200 && done.body.items.length > 0) {
        firstDone = Date.now() - started;
        break;
      }
      if (Date.now() - started > 180_000) throw new Error(`no transfer finished in 180 s:\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(`demo: first transfer DONE ${(firstDone / 1000).toFixed(1)} s after 'npm run demo' started`);
    const links = await get('/v1/links');
    expect(links.status).toBe(200);
    expect(links.body.items.length).toBeGreaterThan(0);
    const ui = await fetch(`http://127.0.0.1:${port}/ui`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/<html/i);
    // Two VOs with different policies: atlas files sit under their run number.
    const atlas = await mintToken(issuer, { vo: 'atlas', account: 'admin', lifetimeSeconds: 600, audience: 'sluice' });
    const reps = await fetch(`http://127.0.0.1:${port}/v1/dids/data18_13TeV/data18_13TeV.00358031.physics_Main.RAW/replicas?limit=1`, { headers: { authorization: `Bearer ${atlas}` } });
    expect(JSON.stringify(await reps.json())).toContain('data18_13TeV/00358031/');
  } finally {
    expect(await stop(first.child)).toBe(0);
  }
  expect(first.output()).toContain('stopped; run the demo again to resume');

  const second = startDemo();
  try {
    await second.ready;
    expect(second.output()).toContain('Resumed.');
  } finally {
    expect(await stop(second.child)).toBe(0);
  }
});
