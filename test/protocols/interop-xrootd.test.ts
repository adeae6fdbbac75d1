import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import { reportSkip } from '../../fixtures/servers/common.ts';
import { startXrootd, xrootdAvailable, type XrootdServer } from '../../fixtures/servers/xrootd.ts';
import { startFixtureS3 } from '../../fixtures/s3-server.ts';
import { copyFile, createStorageClient, type StorageClient } from '../../protocols/index.ts';
import { resources, transferError } from './helpers.ts';

const avail = xrootdAvailable();
reportSkip('XRootD interop (HTTP-TPC pull/push between two XRootD 5.5 servers)', avail);

describe.skipIf(!avail.ok)('interop: two XRootD instances, driven by Sluice', () => {
  const r = resources();
  let A: XrootdServer;
  let B: XrootdServer;
  let a: StorageClient;
  let b: StorageClient;
  const data = randomBytes(3_000_000);
  const size = data.length;
  const adler32 = adler32Hex(data);

  beforeAll(async () => {
    [A, B] = await Promise.all([startXrootd({ name: 'sluiceA' }), startXrootd({ name: 'sluiceB' })]);
    r.onCleanup(async () => {
      await Promise.all([A.stop(), B.stop()]);
      await Promise.all([rm(A.dir, { recursive: true, force: true }), rm(B.dir, { recursive: true, force: true })]);
    });
    a = r.client(A.url, 'both', { stallTimeoutMs: 20_000 });
    b = r.client(B.url, 'both', { stallTimeoutMs: 20_000 });
    await a.write('vo/src/file.bin', data, { size });
  }, 60_000);
  afterAll(() => r.cleanup());

  it('WebDAV basics: PUT creates parents, stat gives size and adler32 via Want-Digest, list, delete', async () => {
    expect((await readFile(join(A.exportDir, 'rse/vo/src/file.bin'))).equals(data)).toBe(true);
    expect(await a.stat('vo/src/file.bin')).toMatchObject({ size, adler32 });
    expect((await a.list('vo/src')).map((e) => [e.name, e.size])).toEqual([['file.bin', size]]);
    await a.write('tmp/x', 'x');
    await a.delete('tmp/x');
    await a.delete('tmp/x');
    expect(existsSync(join(A.exportDir, 'rse/tmp/x'))).toBe(false);
  });

  it.each(['tpc-pull', 'tpc-push'] as const)('%s between the two XRootD servers, verified by adler32', async (mode) => {
    const progress: number[] = [];
    const res = await copyFile({
      source: { client: a, path: 'vo/src/file.bin' },
      destination: { client: b, path: `vo/${mode}/new/dir/file.bin` },
      size,
      adler32,
      modes: [mode],
      onProgress: (n) => progress.push(n),
    });
    expect(res).toMatchObject({ mode, bytes: size, adler32 });
    expect(progress.length).toBeGreaterThan(0);
    expect((await readFile(join(B.exportDir, `rse/vo/${mode}/new/dir/file.bin`))).equals(data)).toBe(true);
  });

  it('failed pull of a missing source: NotFound from the source, and the 0-byte file XRootD leaves is removed', async () => {
    const e = await transferError(
      copyFile({ source: { client: a, path: 'vo/nope.bin' }, destination: { client: b, path: 'vo/fail/nope.bin' }, size: 1, modes: ['tpc-pull'] }),
    );
    expect([e.code, e.phase, e.retryable]).toEqual(['NotFound', 'source', false]);
    expect(existsSync(join(B.exportDir, 'rse/vo/fail/nope.bin'))).toBe(false);
  });

  it('push of a missing source is refused up front (400) and classified as NotFound', async () => {
    const e = await transferError(b.tpcPush!('vo/none.bin', await a.tpcDestination('vo/x.bin')));
    expect([e.code, e.phase]).toEqual(['NotFound', 'source']);
  });

  it('a TPC pull into a missing directory is ParentMissing when done raw; copyFile creates the parent', async () => {
    const e = await transferError(b.tpcPull!('vo/raw/missing/f.bin', await a.tpcSource('vo/src/file.bin')));
    expect([e.code, e.retryable]).toEqual(['ParentMissing', false]);
  });

  it('overwrite off gives Exists (412) and leaves the existing file', async () => {
    const e = await transferError(
      copyFile({ source: { client: a, path: 'vo/src/file.bin' }, destination: { client: b, path: 'vo/tpc-pull/new/dir/file.bin' }, size, adler32, overwrite: false, modes: ['tpc-pull'] }),
    );
    expect(e.code).toBe('Exists');
    expect(existsSync(join(B.exportDir, 'rse/vo/tpc-pull/new/dir/file.bin'))).toBe(true);
  });

  it('an unreachable remote ends the TPC with a typed retryable error, falling back to stream when allowed', async () => {
    const dead = r.client('http://127.0.0.1:1', 'both');
    await b.mkdir('vo/x');
    const e = await transferError(b.tpcPull!('vo/x/dead.bin', await dead.tpcSource('f')));
    expect([e.code, e.phase, e.retryable]).toEqual(['Unreachable', 'source', true]);
    expect(existsSync(join(B.exportDir, 'rse/vo/x/dead.bin'))).toBe(true); // XRootD's leftover, raw call
    const viaCopy = await transferError(copyFile({ source: { client: dead, path: 'f' }, destination: { client: b, path: 'vo/x/dead2.bin' }, size: 1 }));
    expect(viaCopy.retryable).toBe(true);
    expect(existsSync(join(B.exportDir, 'rse/vo/x/dead2.bin'))).toBe(false);
  });

  it('XRootD pulls from and pushes to S3 through presigned URLs', async () => {
    const s3 = await startFixtureS3({ root: await r.tmp('sluice-s3-'), buckets: ['data'] });
    r.onCleanup(() => s3.close());
    const c = createStorageClient({ kind: 's3', url: s3.url, prefix: '/data/rse', settings: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, region: s3.region } });
    r.onCleanup(() => c.close());
    await c.write('in/s3.bin', data, { size, adler32 });
    const pulled = await copyFile({ source: { client: c, path: 'in/s3.bin' }, destination: { client: b, path: 'vo/from-s3.bin' }, size, adler32 });
    expect(pulled.mode).toBe('tpc-pull');
    const pushed = await copyFile({ source: { client: a, path: 'vo/src/file.bin' }, destination: { client: c, path: 'out/pushed.bin' }, size, adler32 });
    expect(pushed.mode).toBe('tpc-push');
    expect(pushed.adler32).toBe(adler32);
  });

  it('the Sluice fixture and XRootD interoperate as TPC partners in both directions', async () => {
    const fx = await r.fixture();
    const f = r.client(fx.url, 'both');
    const toFixture = await copyFile({ source: { client: a, path: 'vo/src/file.bin' }, destination: { client: f, path: 'from-xrd.bin' }, size, adler32, modes: ['tpc-push'] });
    expect(toFixture.mode).toBe('tpc-push');
    const fromFixture = await copyFile({ source: { client: f, path: 'from-xrd.bin' }, destination: { client: b, path: 'vo/from-fixture.bin' }, size, adler32, modes: ['tpc-pull'] });
    expect(fromFixture.mode).toBe('tpc-pull');
    expect((await readFile(join(B.exportDir, 'rse/vo/from-fixture.bin'))).equals(data)).toBe(true);
  });
});
