import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import type { FixtureStorage } from '../../fixtures/storage-server.ts';
import { createStorageClient, type StorageClient } from '../../protocols/index.ts';
import { resources, transferError } from './helpers.ts';

const r = resources();
let srv: FixtureStorage;
let c: StorageClient;

async function drain(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const x of s) parts.push(x as Buffer);
  return Buffer.concat(parts);
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise((res) => s.close(res));
  return port;
}

beforeAll(async () => {
  srv = await r.fixture();
  c = r.client(srv.url, 'both', { stallTimeoutMs: 5_000 });
});
afterAll(() => r.cleanup());
beforeEach(() => srv.setFaults([]));

describe('HTTP client: operations', () => {
  it('writes (creating parents), stats with adler32, reads, lists, deletes idempotently', async () => {
    const data = randomBytes(1_000_000);
    const w = await c.write('a/b/c/file.bin', data, { size: data.length });
    expect(w).toEqual({ size: data.length, adler32: adler32Hex(data) });
    expect((await readFile(join(srv.root, 'rse/a/b/c/file.bin'))).equals(data)).toBe(true);
    expect(await c.stat('a/b/c/file.bin')).toMatchObject({ size: data.length, adler32: adler32Hex(data), isDirectory: false });
    expect(await c.stat('a/b')).toMatchObject({ isDirectory: true });
    const rd = await c.read('a/b/c/file.bin');
    expect(rd.size).toBe(data.length);
    expect((await drain(rd.stream)).equals(data)).toBe(true);
    const part = await c.read('a/b/c/file.bin', { offset: 10, length: 5 });
    expect((await drain(part.stream)).equals(data.subarray(10, 15))).toBe(true);
    const listing = await c.list('a/b/c');
    expect(listing).toEqual([expect.objectContaining({ path: 'a/b/c/file.bin', name: 'file.bin', size: data.length, isDirectory: false })]);
    await c.delete('a/b/c/file.bin');
    await c.delete('a/b/c/file.bin');
    expect(existsSync(join(srv.root, 'rse/a/b/c/file.bin'))).toBe(false);
    expect((await transferError(c.stat('a/b/c/file.bin'))).code).toBe('NotFound');
  });

  it('streams an upload of unknown length (chunked) and checksums it on the way', async () => {
    const chunks = Array.from({ length: 50 }, () => randomBytes(10_000));
    const w = await c.write('stream/unknown.bin', Readable.from(chunks));
    const all = Buffer.concat(chunks);
    expect(w).toEqual({ size: all.length, adler32: adler32Hex(all) });
    expect((await readFile(join(srv.root, 'rse/stream/unknown.bin'))).equals(all)).toBe(true);
  });

  it('mkdir is recursive and idempotent', async () => {
    await c.mkdir('m/n/o');
    await c.mkdir('m/n/o');
    expect((await stat(join(srv.root, 'rse/m/n/o'))).isDirectory()).toBe(true);
  });

  it('reuses keep-alive connections for many small files', async () => {
    const fresh = await r.fixture();
    const cl = r.client(fresh.url, 'none', { connections: 4 });
    const body = Buffer.alloc(4096, 1);
    for (let i = 0; i < 100; i++) await cl.write(`small/f${i}`, body, { size: body.length });
    await Promise.all(Array.from({ length: 100 }, (_, i) => cl.stat(`small/f${i}`)));
    expect(fresh.stats().requests.PUT).toBe(100);
    // 4 undici connections for the stats + 1 node:http keep-alive socket for the sequential PUTs.
    expect(fresh.stats().connections).toBeLessThanOrEqual(5);
  });

  it('refuses paths that climb out of the RSE', async () => {
    const e = await transferError(c.stat('../other-vo/file'));
    expect([e.code, e.retryable]).toEqual(['BadRequest', false]);
  });
});

describe('HTTP client: failures are typed, bounded in time and leave nothing behind', () => {
  beforeAll(async () => {
    await mkdir(join(srv.root, 'rse/f'), { recursive: true });
    await writeFile(join(srv.root, 'rse/f/data.bin'), randomBytes(2_000_000));
  });

  it.each([
    [401, 'Unauthorized', false],
    [403, 'PermissionDenied', false],
    [404, 'NotFound', false],
    [500, 'ServerError', true],
    [503, 'ServerError', true],
    [507, 'NoSpace', true],
  ] as const)('status %i -> %s (retryable %s)', async (status, code, retryable) => {
    srv.setFaults([{ path: '/rse/f/data.bin', status }]);
    const e = await transferError(c.read('f/data.bin'));
    expect([e.code, e.retryable, e.phase, e.details?.httpStatus]).toEqual([code, retryable, 'source', status]);
  });

  it('409 on PUT -> ParentMissing; 412 on COPY with overwrite off -> Exists', async () => {
    srv.setFaults([{ path: '/rse/f/up.bin', method: 'PUT', status: 409 }]);
    const e = await transferError(c.write('f/up.bin', 'x'));
    expect([e.code, e.retryable, e.phase]).toEqual(['ParentMissing', false, 'destination']);
    srv.setFaults([]);
    const x = await transferError(c.tpcPull!('f/data.bin', await c.tpcSource('f/data.bin'), { overwrite: false }));
    expect([x.code, x.retryable]).toEqual(['Exists', false]);
  });

  it('a token is sent as Bearer; a missing or wrong one is 401/403', async () => {
    const guarded = await r.fixture({ token: 'tok' });
    const good = r.client(guarded.url, 'none', { token: 'tok' });
    await good.write('t/x', 'secret');
    expect((await transferError(r.client(guarded.url, 'none').stat('t/x'))).code).toBe('Unauthorized');
    expect((await transferError(r.client(guarded.url, 'none', { token: 'bad' }).stat('t/x'))).code).toBe('PermissionDenied');
  });

  it('connection reset mid-GET -> ConnectionReset, retryable', async () => {
    srv.setFaults([{ path: '/rse/f/data.bin', reset: true }]);
    const rd = await c.read('f/data.bin');
    const e = await transferError(drain(rd.stream));
    expect([e.code, e.retryable, e.phase]).toEqual(['ConnectionReset', true, 'source']);
  });

  it('connection reset mid-PUT -> ConnectionReset and the partial file is removed', async () => {
    srv.setFaults([{ path: '/rse/f/reset-up.bin', method: 'PUT', reset: true, afterBytes: 300_000 }]);
    const e = await transferError(c.write('f/reset-up.bin', Readable.from([randomBytes(500_000), randomBytes(500_000)]), { size: 1_000_000 }));
    expect([e.code, e.retryable]).toEqual(['ConnectionReset', true]);
    expect(existsSync(join(srv.root, 'rse/f/reset-up.bin'))).toBe(false);
  });

  it('stalled GET -> Stalled within the stall timeout', async () => {
    srv.setFaults([{ path: '/rse/f/data.bin', stallMs: 10_000 }]);
    const t0 = Date.now();
    const rd = await c.read('f/data.bin', { stallTimeoutMs: 500 });
    const e = await transferError(drain(rd.stream));
    expect([e.code, e.retryable, e.phase]).toEqual(['Stalled', true, 'source']);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('stalled PUT (server stops reading) -> Stalled at the destination, partial removed', async () => {
    srv.setFaults([{ path: '/rse/f/stall-up.bin', method: 'PUT', stallMs: 10_000, afterBytes: 100_000 }]);
    const t0 = Date.now();
    const big = Readable.from(Array.from({ length: 400 }, () => Buffer.alloc(64 * 1024, 1)));
    const e = await transferError(c.write('f/stall-up.bin', big, { stallTimeoutMs: 700 }));
    expect([e.code, e.retryable, e.phase]).toEqual(['Stalled', true, 'destination']);
    expect(Date.now() - t0).toBeLessThan(4_000);
    srv.setFaults([]);
    await new Promise((res) => setTimeout(res, 100));
    expect(existsSync(join(srv.root, 'rse/f/stall-up.bin'))).toBe(false);
  });

  it('slow server beyond the timeout -> Timeout within the timeout', async () => {
    srv.setFaults([{ path: '/rse/f/data.bin', bytesPerSecond: 200_000 }]);
    const t0 = Date.now();
    const rd = await c.read('f/data.bin', { timeoutMs: 800 });
    const e = await transferError(drain(rd.stream));
    expect([e.code, e.retryable]).toEqual(['Timeout', true]);
    expect(Date.now() - t0).toBeLessThan(2_500);
  });

  it('caller abort -> Aborted', async () => {
    srv.setFaults([{ path: '/rse/f/data.bin', bytesPerSecond: 100_000 }]);
    const ac = new AbortController();
    const rd = await c.read('f/data.bin', { signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    expect((await transferError(drain(rd.stream))).code).toBe('Aborted');
    const pre = new AbortController();
    pre.abort();
    expect((await transferError(c.stat('f/data.bin', { signal: pre.signal }))).code).toBe('Aborted');
  });

  it('short body (wrong size) on upload -> SizeMismatch, nothing left', async () => {
    const e = await transferError(c.write('f/short.bin', Readable.from([Buffer.alloc(1000)]), { size: 2000 }));
    expect(e.code).toBe('SizeMismatch');
    expect(existsSync(join(srv.root, 'rse/f/short.bin'))).toBe(false);
  });

  it('wrong checksum of the bytes sent -> ChecksumMismatch, nothing left', async () => {
    const e = await transferError(c.write('f/bad.bin', 'payload', { adler32: '00000001' }));
    expect([e.code, e.retryable]).toEqual(['ChecksumMismatch', true]);
    expect(existsSync(join(srv.root, 'rse/f/bad.bin'))).toBe(false);
  });

  it('unreachable host -> Unreachable, retryable; unknown scheme -> UnsupportedScheme', async () => {
    const port = await closedPort();
    const cl = r.client(`http://127.0.0.1:${port}`);
    const e = await transferError(cl.stat('x'));
    expect([e.code, e.retryable]).toEqual(['Unreachable', true]);
    expect(() => createStorageClient({ kind: 'http', url: 'root://127.0.0.1:1094', prefix: '/' })).toThrow(
      expect.objectContaining({ code: 'UnsupportedScheme', retryable: false }),
    );
    expect(() => createStorageClient({ kind: 'gridftp' as 'http', url: 'gsiftp://h:2811', prefix: '/' })).toThrow(
      expect.objectContaining({ code: 'UnsupportedScheme' }),
    );
  });
});

describe('HTTP client: TPC', () => {
  let other: FixtureStorage;
  let oc: StorageClient;
  beforeAll(async () => {
    other = await r.fixture();
    oc = r.client(other.url, 'both', { stallTimeoutMs: 5_000 });
    await c.write('tpc/src.bin', randomBytes(300_000));
  });
  beforeEach(() => other.setFaults([]));
  beforeAll(() => oc.mkdir('in'));

  it('pull and push report progress from perf markers', async () => {
    const seen: number[] = [];
    const pull = await oc.tpcPull!('in/pulled.bin', await c.tpcSource('tpc/src.bin'), { onProgress: (n) => seen.push(n) });
    expect(pull.markers).toBeGreaterThanOrEqual(1);
    expect(pull.bytes).toBe(300_000);
    expect(seen.at(-1)).toBe(300_000);
    const push = await c.tpcPush!('tpc/src.bin', await oc.tpcDestination('in/pushed.bin'));
    expect(push.bytes).toBe(300_000);
    expect(await readFile(join(other.root, 'rse/in/pushed.bin'))).toEqual(await readFile(join(srv.root, 'rse/tpc/src.bin')));
  });

  it('201 followed by failure: -> typed error from the final line', async () => {
    other.setFaults([{ method: 'COPY', tpcFailure: 'Remote side failed with status code 503; error message: "busy"' }]);
    const e = await transferError(oc.tpcPull!('in/f.bin', await c.tpcSource('tpc/src.bin')));
    expect([e.code, e.phase, e.retryable]).toEqual(['ServerError', 'source', true]);
  });

  it('truncated perf-marker stream -> TpcIncomplete; reset -> ConnectionReset; stalled markers -> Stalled', async () => {
    other.setFaults([{ method: 'COPY', truncate: true, count: 1 }]);
    expect((await transferError(oc.tpcPull!('in/t.bin', await c.tpcSource('tpc/src.bin')))).code).toBe('TpcIncomplete');
    other.setFaults([{ method: 'COPY', reset: true, count: 1 }]);
    const reset = await transferError(oc.tpcPull!('in/t.bin', await c.tpcSource('tpc/src.bin')));
    expect([reset.code, reset.retryable]).toEqual(['ConnectionReset', true]);
    other.setFaults([{ method: 'COPY', stallMs: 5_000, count: 1 }]);
    const t0 = Date.now();
    const stalled = await transferError(oc.tpcPull!('in/t.bin', await c.tpcSource('tpc/src.bin'), { stallTimeoutMs: 500 }));
    expect([stalled.code, stalled.retryable]).toEqual(['Stalled', true]);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('a source that needs a token gets it as TransferHeaderAuthorization', async () => {
    const guarded = await r.fixture({ token: 'vo-token' });
    const gc = r.client(guarded.url, 'none', { token: 'vo-token' });
    await gc.write('x/secret.bin', 'classified');
    await oc.tpcPull!('in/secret.bin', await gc.tpcSource('x/secret.bin'));
    expect(await readFile(join(other.root, 'rse/in/secret.bin'), 'utf8')).toBe('classified');
  });

  it('an endpoint without TPC -> TpcUnsupported (not retryable)', async () => {
    const plain = await r.fixture({ tpc: false });
    const pc = r.client(plain.url, 'both');
    const e = await transferError(pc.tpcPull!('x.bin', await c.tpcSource('tpc/src.bin')));
    expect([e.code, e.retryable]).toEqual(['TpcUnsupported', false]);
  });
});
