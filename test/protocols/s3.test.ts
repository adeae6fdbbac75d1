import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import { startFixtureS3, type FixtureS3 } from '../../fixtures/s3-server.ts';
import type { FixtureStorage } from '../../fixtures/storage-server.ts';
import { copyFile, createStorageClient, type StorageConfig } from '../../protocols/index.ts';
import { S3StorageClient } from '../../protocols/s3/client.ts';
import { resources, transferError } from './helpers.ts';

const r = resources();
let s3: FixtureS3;
let c: S3StorageClient;
let http: FixtureStorage;

async function drain(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const x of s) parts.push(x as Buffer);
  return Buffer.concat(parts);
}

function s3Client(settings: StorageConfig['settings'] = {}, prefix = '/rse'): S3StorageClient {
  const cl = createStorageClient({
    kind: 's3',
    url: s3.url,
    prefix,
    settings: { bucket: 'data', region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, forcePathStyle: true, ...settings },
  }) as S3StorageClient;
  r.onCleanup(() => cl.close());
  return cl;
}

beforeAll(async () => {
  s3 = await startFixtureS3({ root: await r.tmp('sluice-s3-'), buckets: ['data'] });
  r.onCleanup(() => s3.close());
  c = s3Client();
  http = await r.fixture();
});
afterAll(() => r.cleanup());

describe('S3 client against s3rver', () => {
  it('put (known size), stat with adler32 metadata and md5, read, range, list, delete', async () => {
    const data = randomBytes(200_000);
    const w = await c.write('dir/a.bin', Readable.from([data]), { size: data.length, adler32: adler32Hex(data) });
    expect(w).toEqual({ size: data.length, adler32: adler32Hex(data) });
    const st = await c.stat('dir/a.bin');
    expect(st).toMatchObject({ size: data.length, adler32: adler32Hex(data), isDirectory: false });
    expect(st.md5).toMatch(/^[0-9a-f]{32}$/);
    expect((await drain((await c.read('dir/a.bin')).stream)).equals(data)).toBe(true);
    expect((await drain((await c.read('dir/a.bin', { offset: 5, length: 10 })).stream)).equals(data.subarray(5, 15))).toBe(true);
    await c.write('dir/sub/b.bin', 'b');
    const listing = await c.list('dir');
    expect(listing.map((e) => [e.path, e.isDirectory])).toEqual(
      expect.arrayContaining([['dir/sub', true], ['dir/a.bin', false]]),
    );
    expect(await c.stat('dir')).toMatchObject({ isDirectory: true });
    await c.delete('dir/a.bin');
    await c.delete('dir/a.bin');
    expect((await transferError(c.stat('dir/a.bin'))).code).toBe('NotFound');
    await c.mkdir('anything/at/all');
  });

  it('multipart upload of an unknown-length stream round-trips byte-identical', async () => {
    const parts = Array.from({ length: 13 }, () => randomBytes(1024 * 1024));
    const all = Buffer.concat(parts);
    const lim = s3Client({ multipartThresholdBytes: 5 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 });
    const w = await lim.write('big/unknown.bin', Readable.from(parts));
    expect(w).toEqual({ size: all.length, adler32: adler32Hex(all) });
    const back = await drain((await lim.read('big/unknown.bin')).stream);
    expect(back.length).toBe(all.length);
    expect(back.equals(all)).toBe(true);
  });

  it('aws-chunked caveat: the default mode never stores framing; when_supported corruption is caught by verification', async () => {
    const data = randomBytes(300_000);
    await writeFile(join(http.root, 'src.bin'), data);
    const src = r.client(http.url, 'none', {}, '/');
    const safe = await copyFile({ source: { client: src, path: 'src.bin' }, destination: { client: c, path: 'ck/safe.bin' }, size: data.length, adler32: adler32Hex(data) });
    expect(safe.mode).toBe('stream');
    expect((await drain((await c.read('ck/safe.bin')).stream)).equals(data)).toBe(true);

    const risky = s3Client({ checksumMode: 'when_supported' });
    let outcome: string;
    try {
      await copyFile({ source: { client: src, path: 'src.bin' }, destination: { client: risky, path: 'ck/risky.bin' }, size: data.length, adler32: adler32Hex(data) });
      outcome = 'ok';
    } catch (e) {
      outcome = (e as { code: string }).code;
    }
    if (outcome === 'ok') {
      // A server that handles aws-chunked properly: the bytes must then really be identical.
      expect((await drain((await c.read('ck/risky.bin')).stream)).equals(data)).toBe(true);
    } else {
      expect(['SizeMismatch', 'ChecksumMismatch']).toContain(outcome);
      expect((await transferError(c.stat('ck/risky.bin'))).code).toBe('NotFound');
    }
  });

  it('errors: missing bucket -> NotFound; bad credentials -> Unauthorized; unreachable -> Unreachable', async () => {
    const nb = s3Client({ bucket: 'no-such-bucket' });
    expect((await transferError(nb.write('x', 'y'))).code).toBe('NotFound');
    // s3rver checks the access key id but not the signature's secret.
    const bad = s3Client({ accessKeyId: 'nobody' });
    const e = await transferError(bad.write('x', 'y'));
    expect([e.code, e.retryable]).toEqual(['Unauthorized', false]);
    const off = createStorageClient({ kind: 's3', url: 'http://127.0.0.1:1', prefix: '/data', settings: { accessKeyId: 'a', secretAccessKey: 'b' } });
    r.onCleanup(() => off.close());
    const u = await transferError(off.stat('x'));
    expect([u.code, u.retryable]).toEqual(['Unreachable', true]);
  });

  it('bucket from the prefix, virtual-host URLs when not path-style', () => {
    const p = createStorageClient({ kind: 's3', url: 'https://s3.example.org', prefix: '/bkt/vo/rse', settings: { forcePathStyle: false, accessKeyId: 'a', secretAccessKey: 'b' } });
    r.onCleanup(() => p.close());
    expect(p.url('d/f 1')).toBe('https://bkt.s3.example.org/vo/rse/d/f%201');
    expect(c.url('d/f')).toBe(`${s3.url}/data/rse/d/f`);
  });
});

describe('S3 as the passive side of HTTP-TPC (presigned URLs)', () => {
  it('an HTTP-TPC endpoint pulls from S3 (presigned GET) and pushes to S3 (presigned PUT)', async () => {
    const data = randomBytes(250_000);
    await c.write('tpc/src.bin', data, { adler32: adler32Hex(data) });
    const h = r.client(http.url, 'both');
    const pulled = await copyFile({ source: { client: c, path: 'tpc/src.bin' }, destination: { client: h, path: 'from-s3/f.bin' }, size: data.length, adler32: adler32Hex(data) });
    expect(pulled.mode).toBe('tpc-pull');
    expect((await readFile(join(http.root, 'rse/from-s3/f.bin'))).equals(data)).toBe(true);

    const pushed = await copyFile({ source: { client: h, path: 'from-s3/f.bin' }, destination: { client: c, path: 'tpc/pushed.bin' }, size: data.length, adler32: adler32Hex(data) });
    expect(pushed.mode).toBe('tpc-push');
    // No adler32 metadata on a presigned PUT: copyFile verified by reading back.
    expect(pushed.adler32).toBe(adler32Hex(data));
    expect((await drain((await c.read('tpc/pushed.bin')).stream)).equals(data)).toBe(true);
  });
});
