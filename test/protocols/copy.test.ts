import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import type { FixtureStorage } from '../../fixtures/storage-server.ts';
import { copyFile, createStorageClient, type StorageClient } from '../../protocols/index.ts';
import { NullStorageClient } from '../../protocols/null.ts';
import { resources, transferError } from './helpers.ts';

const r = resources();
let A: FixtureStorage;
let B: FixtureStorage;
let a: StorageClient;
let b: StorageClient;
const data = randomBytes(700_000);
const size = data.length;
const adler32 = adler32Hex(data);

beforeAll(async () => {
  A = await r.fixture();
  B = await r.fixture();
  a = r.client(A.url, 'both', { stallTimeoutMs: 5_000 });
  b = r.client(B.url, 'both', { stallTimeoutMs: 5_000 });
  await a.write('src/file.bin', data);
});
afterAll(() => r.cleanup());
beforeEach(() => {
  A.setFaults([]);
  B.setFaults([]);
});

const dst = (p: string) => join(B.root, 'rse', p);
const copy = (path: string, extra: Partial<Parameters<typeof copyFile>[0]> = {}) =>
  copyFile({ source: { client: a, path: 'src/file.bin' }, destination: { client: b, path }, size, adler32, ...extra });

describe('copyFile modes', () => {
  it.each(['tpc-pull', 'tpc-push', 'stream'] as const)('%s copies, creates the parent and verifies', async (mode) => {
    const progress: number[] = [];
    const res = await copy(`modes/${mode}/deep/f.bin`, { modes: [mode], onProgress: (n) => progress.push(n) });
    expect(res).toMatchObject({ mode, bytes: size, adler32, attempts: [] });
    expect((await readFile(dst(`modes/${mode}/deep/f.bin`))).equals(data)).toBe(true);
    expect(progress.at(-1)).toBe(size);
  });

  it('prefers pull, and skips TPC when neither side can do it', async () => {
    expect((await copy('pref/p.bin')).mode).toBe('tpc-pull');
    const plainA = r.client(A.url, 'none');
    const plainB = r.client(B.url, 'none');
    const res = await copyFile({ source: { client: plainA, path: 'src/file.bin' }, destination: { client: plainB, path: 'pref/s.bin' }, size, adler32 });
    expect(res.mode).toBe('stream');
    await expect(copy('pref/x.bin', { modes: [] })).rejects.toMatchObject({ code: 'TpcUnsupported' });
  });

  it('falls back pull -> push -> stream, recording why, and cleans up each failed attempt', async () => {
    B.setFaults([{ method: 'COPY', tpcFailure: 'Remote side failed with status code 500; error message: "boom"' }]);
    A.setFaults([{ method: 'COPY', status: 501 }]);
    const res = await copy('fb/f.bin');
    expect(res.mode).toBe('stream');
    expect(res.attempts.map((x) => [x.mode, x.code])).toEqual([
      ['tpc-pull', 'ServerError'],
      ['tpc-push', 'TpcUnsupported'],
    ]);
    expect((await readFile(dst('fb/f.bin'))).equals(data)).toBe(true);
  });

  it('an endpoint that refuses COPY (no TPC) makes pull fall back to push', async () => {
    const noTpc = await r.fixture({ tpc: false });
    const c = r.client(noTpc.url, 'both');
    const res = await copyFile({ source: { client: a, path: 'src/file.bin' }, destination: { client: c, path: 'x/f.bin' }, size, adler32 });
    expect(res.mode).toBe('tpc-push');
    expect(res.attempts[0]).toMatchObject({ mode: 'tpc-pull', code: 'TpcUnsupported' });
  });

  it('recreates a parent directory removed behind the cache', async () => {
    await copy('gone/one.bin', { modes: ['tpc-pull'] });
    await rm(dst('gone'), { recursive: true });
    expect((await copy('gone/two.bin', { modes: ['tpc-pull'] })).mode).toBe('tpc-pull');
  });
});

describe('copyFile failures', () => {
  it('source missing: NotFound from the source, no fallback, no 0-byte file left by the failed pull', async () => {
    const e = await transferError(copyFile({ source: { client: a, path: 'nope.bin' }, destination: { client: b, path: 'nf/x.bin' }, size: 1 }));
    expect([e.code, e.phase, e.retryable]).toEqual(['NotFound', 'source', false]);
    expect((e.details?.attempts as unknown[]).length).toBe(1);
    expect(existsSync(dst('nf/x.bin'))).toBe(false);
  });

  it('bytes corrupted at the destination -> ChecksumMismatch, file removed', async () => {
    B.setFaults([{ method: 'PUT', corrupt: true }]);
    const e = await transferError(copy('bad/c.bin', { modes: ['stream'] }));
    expect([e.code, e.phase, e.retryable]).toEqual(['ChecksumMismatch', 'destination', true]);
    expect(existsSync(dst('bad/c.bin'))).toBe(false);
  });

  it('bytes corrupted on the way from the source -> ChecksumMismatch before registering', async () => {
    A.setFaults([{ path: '/rse/src/file.bin', method: 'GET', corrupt: true }]);
    const e = await transferError(copy('bad/s.bin', { modes: ['stream'] }));
    expect([e.code, e.retryable]).toEqual(['ChecksumMismatch', true]);
    expect(existsSync(dst('bad/s.bin'))).toBe(false);
  });

  it('a pull that lands wrong bytes is caught by the destination checksum', async () => {
    A.setFaults([{ path: '/rse/src/file.bin', method: 'GET', corrupt: true }]);
    const e = await transferError(copy('bad/p.bin', { modes: ['tpc-pull'] }));
    expect(e.code).toBe('ChecksumMismatch');
    expect(existsSync(dst('bad/p.bin'))).toBe(false);
  });

  it('wrong expected size -> SizeMismatch', async () => {
    const e = await transferError(copy('bad/size.bin', { size: size + 1, modes: ['tpc-pull'] }));
    expect([e.code, e.retryable]).toEqual(['SizeMismatch', true]);
    expect(existsSync(dst('bad/size.bin'))).toBe(false);
  });

  it('connection reset mid-stream -> ConnectionReset from the source, nothing left', async () => {
    A.setFaults([{ path: '/rse/src/file.bin', method: 'GET', reset: true }]);
    const e = await transferError(copy('bad/reset.bin', { modes: ['stream'] }));
    expect([e.code, e.phase, e.retryable]).toEqual(['ConnectionReset', 'source', true]);
    expect(existsSync(dst('bad/reset.bin'))).toBe(false);
  });

  it('the whole copy is bounded by timeoutMs (slow source), with no fallback after the deadline', async () => {
    A.setFaults([{ path: '/rse/src/file.bin', method: 'GET', bytesPerSecond: 100_000 }]);
    const t0 = Date.now();
    const e = await transferError(copy('bad/slow.bin', { timeoutMs: 1_000 }));
    expect([e.code, e.retryable]).toEqual(['Timeout', true]);
    expect(Date.now() - t0).toBeLessThan(4_000);
    await new Promise((res) => setTimeout(res, 200));
    expect(existsSync(dst('bad/slow.bin'))).toBe(false);
  });

  it('overwrite off: an existing destination is left alone and the copy fails with Exists', async () => {
    await writeFile(dst('pref/p.bin'), 'precious');
    for (const mode of ['tpc-pull', 'stream'] as const) {
      const e = await transferError(copy('pref/p.bin', { overwrite: false, modes: [mode] }));
      expect([e.code, e.retryable]).toEqual(['Exists', false]);
      expect(await readFile(dst('pref/p.bin'), 'utf8')).toBe('precious');
    }
  });
});

describe('null protocol', () => {
  it('copies by recording what was expected, with latency, and verifies', async () => {
    const src = createStorageClient({ kind: 'null', url: 'null://a', prefix: '/', settings: { delayMs: 5 } }) as NullStorageClient;
    const dest = createStorageClient({ kind: 'null', url: 'null://b', prefix: '/', settings: { delayMs: 5 } });
    src.seed('f', { size: 10, adler32: 'abc' });
    const res = await copyFile({ source: { client: src, path: 'f' }, destination: { client: dest, path: 'g' }, size: 10, adler32: '00000abc' });
    expect(res).toMatchObject({ mode: 'tpc-pull', bytes: 10, adler32: '00000abc' });
    expect(await dest.stat('g')).toMatchObject({ size: 10, adler32: '00000abc' });
    await expect(dest.stat('missing')).rejects.toMatchObject({ code: 'NotFound' });
  });
});
