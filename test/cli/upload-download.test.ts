import { serve, type ServerType } from '@hono/node-server';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../bin/client.ts';
import { loadConfig } from '../../core/config.ts';
import { adler32Hex } from '../../core/checksum.ts';
import { downloadDids } from '../../core/download.ts';
import { uploadFiles } from '../../core/upload.ts';
import { startFixtureS3, type FixtureS3 } from '../../fixtures/s3-server.ts';
import { startFixtureStorage, type FixtureStorage } from '../../fixtures/storage-server.ts';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';

/**
 * `sluice upload` / `sluice download` against a real listening API, two fixture WebDAV endpoints
 * and the S3 fixture. The CLI itself runs as a child process for the main flow; the failure
 * cases drive core/upload.ts and core/download.ts directly (same code, faster).
 */
const run = promisify(execFile);
const repo = new URL('../..', import.meta.url).pathname;

let t: TestApp;
let server: ServerType;
let apiUrl: string;
let admin: string;
let alice: string;
let a: FixtureStorage;
let b: FixtureStorage;
let s3: FixtureS3;
let work: string;

async function listFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

const api = (token: string) => createClient({ url: apiUrl, token }, loadConfig({ SLUICE_HOME: work }));

async function sluice(token: string, ...args: string[]) {
  return run('node', ['bin/sluice.mjs', '--json', ...args], { cwd: repo, env: { ...process.env, SLUICE_URL: apiUrl, SLUICE_TOKEN: token }, timeout: 60_000 });
}

beforeAll(async () => {
  t = await createTestApp();
  work = await mkdtemp(join(tmpdir(), 'sluice-updown-'));
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: t.app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const addr = server.address();
  apiUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  // The RSE roots exist, as on provisioned storage (the client creates directories below them).
  await mkdir(join(work, 'store-a', 'atlas', 'a'), { recursive: true });
  await mkdir(join(work, 'store-b', 'atlas', 'b'), { recursive: true });
  a = await startFixtureStorage({ port: 0, root: join(work, 'store-a') });
  b = await startFixtureStorage({ port: 0, root: join(work, 'store-b') });
  s3 = await startFixtureS3({ root: join(work, 's3'), buckets: ['data'] });

  expectOk(await t.call('POST', '/v1/vos', { body: { name: 'atlas' } }));
  for (const [name, url, kind] of [['store-a', a.url, 'http'], ['store-b', b.url, 'http'], ['s3', s3.url, 's3']]) {
    expectOk(await t.call('POST', '/v1/endpoints', { body: { name, url, kind } }));
  }
  admin = await t.token('atlas', 'admin');
  expectOk(await t.call('POST', '/v1/accounts', { token: admin, body: { name: 'alice', role: 'user' } }));
  alice = await t.token('atlas', 'alice');
  expectOk(await t.call('POST', '/v1/scopes', { token: admin, body: { name: 'data', account: 'admin' } }));
  expectOk(await t.call('POST', '/v1/rses', { token: admin, body: { name: 'DISK_A', endpoint: 'store-a', prefix: '/atlas/a' } }));
  expectOk(await t.call('POST', '/v1/rses', { token: admin, body: { name: 'DISK_B', endpoint: 'store-b', prefix: '/atlas/b' } }));
  expectOk(
    await t.call('POST', '/v1/rses', {
      token: admin,
      body: { name: 'S3_DISK', endpoint: 's3', prefix: '/atlas', protocol_settings: { bucket: 'data', access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey, region: s3.region } },
    }),
  );
  // Another VO on the same endpoints: must see none of it.
  expectOk(await t.call('POST', '/v1/vos', { body: { name: 'cms' } }));
});

afterAll(async () => {
  await new Promise<void>((r) => server?.close(() => r()));
  await Promise.all([a?.close(), b?.close(), s3?.close()]);
  await t?.close();
  await rm(work, { recursive: true, force: true });
});

async function makeFiles(dir: string, names: string[], size = 300_000): Promise<string[]> {
  const paths = [];
  for (const n of names) {
    const p = join(dir, n);
    await writeFile(p, randomBytes(size));
    paths.push(p);
  }
  return paths;
}

describe('sluice upload / download', () => {
  it('uploads three files into a new dataset, downloads them elsewhere byte-identical', async () => {
    const src = await mkdtemp(join(work, 'src-'));
    const files = await makeFiles(src, ['run1.raw', 'run2.raw', 'run3.raw']);
    const up = await sluice(admin, 'upload', ...files, '--rse', 'DISK_A', '--scope', 'data', '--dataset', 'data:run.ds');
    const report = JSON.parse(up.stdout);
    expect(report.files.map((f: { status: string }) => f.status)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(report.attached).toBe(3);

    // The catalogue has the checksums of the local bytes, and a replica at the policy's path.
    for (const f of files) {
      const name = f.split('/').pop()!;
      const did = (await t.call('GET', `/v1/dids/data/${name}`, { token: admin })).body;
      expect(did).toMatchObject({ type: 'FILE', bytes: 300_000, adler32: adler32Hex(await readFile(f)) });
    }
    const reps = (await t.call('GET', '/v1/dids/data/run.ds/replicas', { token: admin })).body.items;
    expect(reps).toHaveLength(3);
    for (const r of reps) {
      expect(r.replicas).toEqual([expect.objectContaining({ rse: 'DISK_A', state: 'AVAILABLE', path: expect.stringMatching(/^data\/[0-9a-f]{2}\/[0-9a-f]{2}\/run\d\.raw$/) })]);
      expect(await readFile(join(work, 'store-a', 'atlas', 'a', r.replicas[0].path))).toEqual(await readFile(join(src, r.name)));
    }

    // A second copy on DISK_B: the DIDs exist with matching checksums, so only replicas are added.
    const second = await uploadFiles(api(admin), { rse: 'DISK_B', scope: 'data', files, dataset: { scope: 'data', name: 'run.ds' } });
    expect(second.files.map((f) => f.status)).toEqual(['replica-added', 'replica-added', 'replica-added']);
    expect(second.attached).toBe(0);
    // Uploading again changes nothing.
    const third = await uploadFiles(api(admin), { rse: 'DISK_B', scope: 'data', files });
    expect(third.files.map((f) => f.status)).toEqual(['skipped', 'skipped', 'skipped']);

    const dst = await mkdtemp(join(work, 'dst-'));
    const down = JSON.parse((await sluice(admin, 'download', 'data:run.ds', '--dir', dst)).stdout);
    expect(down.map((d: { status: string }) => d.status)).toEqual(['downloaded', 'downloaded', 'downloaded']);
    for (const f of files) expect(await readFile(join(dst, 'data', f.split('/').pop()!))).toEqual(await readFile(f));
    // Only verified files under their final names: no temporary files left.
    expect((await listFilesUnder(dst)).sort()).toEqual(files.map((f) => join(dst, 'data', f.split('/').pop()!)).sort());
    // Two CLI child processes (tsx start-up each): slow on a loaded 2-core machine.
  }, 120_000);

  it('refuses to upload different bytes under an existing name', async () => {
    const src = await mkdtemp(join(work, 'src-'));
    const [f] = await makeFiles(src, ['run1.raw'], 1000);
    const before = (await t.call('GET', '/v1/dids/data/run1.raw', { token: admin })).body;
    const r = await uploadFiles(api(admin), { rse: 'S3_DISK', scope: 'data', files: [f] });
    expect(r.files[0]).toMatchObject({ status: 'failed', error: expect.stringContaining('already exists') });
    expect((await t.call('GET', '/v1/dids/data/run1.raw', { token: admin })).body).toEqual(before);
    expect((await t.call('GET', '/v1/dids/data/run1.raw/replicas', { token: admin })).body.items[0].replicas.map((x: { rse: string }) => x.rse)).toEqual(['DISK_A', 'DISK_B']);
  });

  it('a corrupted replica fails verification and the download falls over to the other one', async () => {
    // DISK_A comes first (no distances: RSE name order); its GETs flip a byte.
    a.setFaults([{ path: '/atlas/a/', method: 'GET', corrupt: true }]);
    try {
      const dst = await mkdtemp(join(work, 'dst-'));
      const results = await downloadDids(api(alice), { dids: [{ scope: 'data', name: 'run.ds' }], dir: dst, flat: true });
      expect(results).toHaveLength(3);
      for (const r of results) {
        expect(r).toMatchObject({ status: 'downloaded', rse: 'DISK_B', attempts: [{ rse: 'DISK_A', error: expect.stringMatching(/adler32/) }] });
        const did = (await t.call('GET', `/v1/dids/data/${r.name}`, { token: admin })).body;
        expect(adler32Hex(await readFile(join(dst, r.name)))).toBe(did.adler32);
      }
      expect((await readdir(dst)).sort()).toEqual(['run1.raw', 'run2.raw', 'run3.raw']);
    } finally {
      a.setFaults([]);
    }
  });

  it('--from prefers the closest replica', async () => {
    expectOk(await t.call('PUT', '/v1/rses/DISK_B/distances/S3_DISK', { token: admin, body: { distance: 1 } }));
    expectOk(await t.call('PUT', '/v1/rses/DISK_A/distances/S3_DISK', { token: admin, body: { distance: 5 } }));
    const plan = (await t.call('GET', '/v1/dids/data/run.ds/download-plan?from=S3_DISK', { token: alice })).body;
    expect(plan.items[0].sources.map((s: { rse: string; distance: number }) => [s.rse, s.distance])).toEqual([['DISK_B', 1], ['DISK_A', 5]]);
  });

  it('an interrupted upload leaves nothing registered and nothing on storage', async () => {
    const src = await mkdtemp(join(work, 'src-'));
    const [f] = await makeFiles(src, ['cut.raw'], 2_000_000);
    a.setFaults([{ path: '/atlas/a/', method: 'PUT', reset: true }]);
    try {
      const r = await uploadFiles(api(admin), { rse: 'DISK_A', scope: 'data', files: [f], dataset: { scope: 'data', name: 'cut.ds' } });
      expect(r.files[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/^upload:/) });
      expect(r.files[0].leftover).toBeUndefined();
    } finally {
      a.setFaults([]);
    }
    expect((await t.call('GET', '/v1/dids/data/cut.raw', { token: admin })).status).toBe(404);
    expect((await t.call('GET', '/v1/dids/data/cut.ds', { token: admin })).status).toBe(404);
    expect((await listFilesUnder(join(work, 'store-a'))).filter((p) => p.includes('cut.raw'))).toEqual([]);
  });

  it('a refused registration removes the uploaded bytes again', async () => {
    const src = await mkdtemp(join(work, 'src-'));
    // The default policy refuses DID names with spaces, but only at registration, after the upload.
    const [f] = await makeFiles(src, ['bad name.raw'], 1000);
    const r = await uploadFiles(api(admin), { rse: 'DISK_A', scope: 'data', files: [f] });
    expect(r.files[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/^registration:/) });
    expect(r.files[0].leftover).toBeUndefined();
    expect((await listFilesUnder(join(work, 'store-a'))).filter((p) => p.includes('bad name'))).toEqual([]);
  });

  it('S3: presigned upload and download, verified, without handing out the keys', async () => {
    const src = await mkdtemp(join(work, 'src-'));
    const files = await makeFiles(src, ['s3.one', 's3.two'], 100_000);
    const plan = await t.call('POST', '/v1/rses/S3_DISK/upload-plan', { token: admin, body: { files: [{ scope: 'data', name: 's3.one' }] } });
    expect(plan.status).toBe(200);
    expect(plan.body.files[0].put.url).toMatch(/X-Amz-Signature=/);
    // (s3rver's key id and secret are both 'S3RVER': the id may appear URL-encoded in X-Amz-Credential.)
    expect(JSON.stringify(plan.body)).not.toMatch(/secret|"S3RVER"|access_key/i);

    const r = await uploadFiles(api(admin), { rse: 'S3_DISK', scope: 'data', files, dataset: { scope: 'data', name: 's3.ds' } });
    expect(r.files.map((x) => x.status)).toEqual(['uploaded', 'uploaded']);
    const dst = await mkdtemp(join(work, 'dst-'));
    const down = await downloadDids(api(alice), { dids: [{ scope: 'data', name: 's3.ds' }], dir: dst });
    expect(down.map((d) => [d.status, d.rse])).toEqual([['downloaded', 'S3_DISK'], ['downloaded', 'S3_DISK']]);
    for (const f of files) expect(await readFile(join(dst, 'data', f.split('/').pop()!))).toEqual(await readFile(f));
    // A second download finds the verified files in place and moves nothing.
    const again = await downloadDids(api(alice), { dids: [{ scope: 'data', name: 's3.ds' }], dir: dst });
    expect(again.map((d) => d.status)).toEqual(['present', 'present']);
  });

  it('plans: only for the VO, only for writers, only on writable RSEs', async () => {
    const files = [{ scope: 'data', name: 'x.raw' }];
    // alice may read but not write in admin's scope.
    expect((await t.call('POST', '/v1/rses/DISK_A/upload-plan', { token: alice, body: { files } })).status).toBe(403);
    const cms = await t.token('cms', 'admin');
    expect((await t.call('POST', '/v1/rses/DISK_A/upload-plan', { token: cms, body: { files } })).status).toBe(404);
    expect((await t.call('GET', '/v1/dids/data/run.ds/download-plan', { token: cms })).status).toBe(404);
    expectOk(await t.call('PATCH', '/v1/rses/DISK_B', { token: admin, body: { availability: { write: false } } }));
    try {
      const r = await t.call('POST', '/v1/rses/DISK_B/upload-plan', { token: admin, body: { files } });
      expect([r.status, r.body.error.code]).toEqual([409, 'RseNotWritable']);
    } finally {
      expectOk(await t.call('PATCH', '/v1/rses/DISK_B', { token: admin, body: { availability: { write: true } } }));
    }
    // A file with a registered replica gets no PUT URL: a plan cannot overwrite catalogued data.
    const p = await t.call('POST', '/v1/rses/DISK_A/upload-plan', { token: admin, body: { files: [{ scope: 'data', name: 'run1.raw' }] } });
    expect(p.body.files[0]).toMatchObject({ replica: 'AVAILABLE', put: null, delete: null });
    expect((await stat(join(work, 'store-a'))).isDirectory()).toBe(true);
  });
});
