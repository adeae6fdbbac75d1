import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adler32Hex } from '../../core/checksum.ts';
import { apacheAvailable, startApache, type ApacheServer } from '../../fixtures/servers/apache.ts';
import { reportSkip } from '../../fixtures/servers/common.ts';
import { copyFile, type StorageClient } from '../../protocols/index.ts';
import { resources, transferError } from './helpers.ts';

const avail = apacheAvailable();
reportSkip('Apache mod_dav interop (plain WebDAV, RFC 4918 status codes)', avail);

describe.skipIf(!avail.ok)('interop: Apache mod_dav WebDAV', () => {
  const r = resources();
  let ap: ApacheServer;
  let c: StorageClient;

  beforeAll(async () => {
    ap = await startApache();
    r.onCleanup(async () => {
      await ap.stop();
      await rm(ap.dir, { recursive: true, force: true });
    });
    c = r.client(ap.url, 'none');
  }, 60_000);
  afterAll(() => r.cleanup());

  it('a raw PUT under a missing parent is 409; Sluice MKCOLs the parents first', async () => {
    const raw = await request(`${ap.url}/rse/a/b/raw.bin`, { method: 'PUT', body: 'x' });
    await raw.body.dump();
    expect(raw.statusCode).toBe(409);
    const data = randomBytes(500_000);
    expect(await c.write('a/b/c/file.bin', data)).toEqual({ size: data.length, adler32: adler32Hex(data) });
    expect((await readFile(join(ap.exportDir, 'rse/a/b/c/file.bin'))).equals(data)).toBe(true);
  });

  it('stat (no digest on Apache), directories via PROPFIND, list, mkdir over an existing one (405), delete', async () => {
    const st = await c.stat('a/b/c/file.bin');
    expect(st).toMatchObject({ size: 500_000, isDirectory: false });
    expect(st.adler32).toBeUndefined();
    expect(await c.stat('a/b')).toMatchObject({ isDirectory: true });
    await c.mkdir('a/b');
    expect((await c.list('a/b')).map((e) => [e.path, e.isDirectory])).toEqual([['a/b/c', true]]);
    await c.write('a/tmp.bin', 'tmp');
    await c.delete('a/tmp.bin');
    await c.delete('a/tmp.bin');
    expect(existsSync(join(ap.exportDir, 'rse/a/tmp.bin'))).toBe(false);
    expect((await transferError(c.stat('a/nope'))).code).toBe('NotFound');
  });

  it('copyFile fixture -> Apache by stream (streamed adler32) and by push (read-back adler32), and back by pull', async () => {
    const fx = await r.fixture();
    const f = r.client(fx.url, 'both');
    const data = randomBytes(1_500_000);
    await f.write('src.bin', data);
    const res = await copyFile({ source: { client: f, path: 'src.bin' }, destination: { client: c, path: 'in/deep/copy.bin' }, size: data.length, adler32: adler32Hex(data), modes: ['stream'] });
    expect(res).toMatchObject({ mode: 'stream', bytes: data.length, adler32: adler32Hex(data) });
    // The fixture can push into Apache; Apache offers no digest, so copyFile reads back to verify.
    const pushed = await copyFile({ source: { client: f, path: 'src.bin' }, destination: { client: c, path: 'in/pushed.bin' }, size: data.length, adler32: adler32Hex(data) });
    expect(pushed).toMatchObject({ mode: 'tpc-push', adler32: adler32Hex(data) });
    expect((await readFile(join(ap.exportDir, 'rse/in/deep/copy.bin'))).equals(data)).toBe(true);
    // And back by TPC pull into the fixture (Apache as the passive source); verified by the fixture's Want-Digest.
    const back = await copyFile({ source: { client: c, path: 'in/deep/copy.bin' }, destination: { client: f, path: 'back.bin' }, size: data.length, adler32: adler32Hex(data) });
    expect(back.mode).toBe('tpc-pull');
  });

  it('a TPC pull into Apache is impossible: with only TPC modes allowed the copy fails as TpcUnsupported', async () => {
    const e = await transferError(copyFile({ source: { client: c, path: 'a/b/c/file.bin' }, destination: { client: c, path: 'x.bin' }, modes: ['tpc-pull', 'tpc-push'] }));
    expect([e.code, e.retryable]).toEqual(['TpcUnsupported', false]);
  });
});
