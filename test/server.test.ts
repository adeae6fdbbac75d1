import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

/**
 * The server as a user runs it: `sluice server` in its own process, embedded PostgreSQL in a
 * fresh SLUICE_HOME, the README's tour pasted into a shell, restarts and a SIGKILL.
 */
let home: string;
let port: number;
const env = () => {
  const e: NodeJS.ProcessEnv = { ...process.env, SLUICE_HOME: home, PORT: String(port), SLUICE_URL: `http://127.0.0.1:${port}`, LOG_FORMAT: 'json' };
  delete e.DATABASE_URL;
  delete e.SLUICE_TOKEN;
  delete e.VITEST; // the child is a real server, not a test worker
  return e;
};

async function start(): Promise<{ child: ChildProcess; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [join(root, 'bin/sluice.mjs'), 'server'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode}):\n${output}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) return { child, ms: Date.now() - started };
    } catch {
      // not up yet
    }
    if (Date.now() - started > 60_000) throw new Error(`server not healthy after 60 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill(signal);
  return exited;
}

function cli(...args: string[]) {
  return run(process.execPath, [join(root, 'bin/sluice.mjs'), ...args], { env: env(), cwd: root });
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'sluice-server-'));
  port = 20000 + Math.floor(Math.random() * 20000);
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('sluice server', () => {
  it('starts on embedded PostgreSQL, runs the README tour, stops cleanly and keeps data across restarts', async () => {
    const first = await start();
    try {
      const readme = await readFile(join(root, 'README.md'), 'utf8');
      const tour = /<!-- tour:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- tour:end -->/.exec(readme)?.[1];
      expect(tour, 'README has a tour block').toBeTruthy();
      const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', tour!], { env: env(), cwd: root, timeout: 120_000 });
      expect(stdout).toContain('CERN_DISK');
      expect(stdout).toMatch(/http:\/\/127\.0\.0\.1:1094\/eos\/atlas\/data18\/[0-9a-f]{2}\/[0-9a-f]{2}\/raw\.0001/);
      expect(stdout).toContain('IN2P3_DISK');
      // The upload/download section, with the fixture storage the README starts in a third terminal.
      const upload = /<!-- upload:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- upload:end -->/.exec(readme)?.[1];
      expect(upload, 'README has an upload block').toBeTruthy();
      const storeRoot = join(home, 'store');
      const store = spawn(process.execPath, [join(root, 'bin/sluice.mjs'), 'fixture-storage', '--root', storeRoot, '--port', '8081'], { env: env(), stdio: 'ignore' });
      try {
        for (let i = 0; i < 100 && !(await fetch('http://127.0.0.1:8081/').then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
        await run('bash', ['-euo', 'pipefail', '-c', upload!], { env: env(), cwd: root, timeout: 120_000 });
      } finally {
        store.kill('SIGTERM');
      }
    } finally {
      expect(await stop(first.child)).toBe(0);
    }
    const second = await start();
    try {
      const { stdout } = await cli('--json', 'vo', 'list');
      expect(JSON.parse(stdout).map((v: { name: string }) => v.name)).toEqual(['atlas']);
      const files = JSON.parse((await cli('--json', '--vo', 'atlas', 'did', 'files', 'data18:run358031')).stdout);
      expect(files).toHaveLength(2);
    } finally {
      // A SIGKILLed server leaves its PostgreSQL running; the next start must cope.
      await stop(second.child, 'SIGKILL');
    }
    const third = await start();
    try {
      const { stdout } = await cli('--json', 'vo', 'list');
      expect(JSON.parse(stdout)).toHaveLength(1);
      // Errors reach the user as a code and a message, with a non-zero exit.
      const failed = await cli('--vo', 'atlas', 'did', 'add', 'data18:bad', '--bytes', '5', '--adler32', 'xyz').catch((e) => e);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(/error InvalidChecksum: .*adler32 must be 8 hex digits/);
    } finally {
      expect(await stop(third.child)).toBe(0);
    }
  }, 180_000);
});
