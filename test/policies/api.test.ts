/**
 * Policy packages end to end through the API: two VOs with different packages side by side,
 * setting changes without a restart, and a broken package failing only its own VO's requests.
 */
import { utimes, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';
import { hashPath } from '../../policies/default.ts';
import { packageDir } from './fixtures.ts';
import { createApp } from '../../api/app.ts';
import { createVerifier } from '../../core/auth.ts';
import { silentLogger } from '../../core/log.ts';
import { createPolicyRegistry } from '../../policies/registry.ts';

let t: TestApp;
let pkgs: Awaited<ReturnType<typeof packageDir>>;
let atlas: Awaited<ReturnType<TestApp['seedVo']>>;
let cms: Awaited<ReturnType<TestApp['seedVo']>>;

const RUN = (i: number) => `data18_13TeV.00358031.physics_Main.RAW._${String(i).padStart(4, '0')}`;
const file = (scope: string, name: string, i = 0) => ({ scope, name, type: 'FILE' as const, bytes: 100 + i, adler32: (0x20000000 + i).toString(16) });

async function setPolicy(vo: string, policy_package: string) {
  return t.call('PATCH', `/v1/vos/${vo}`, { body: { policy_package } });
}
async function replicaPaths(vo: string, admin: string, scope: string, name: string): Promise<string[]> {
  const r = expectOk(await t.call('GET', `/v1/dids/${scope}/${name}/replicas`, { token: admin }));
  return r.body.items.flatMap((f: { replicas: Array<{ path: string }> }) => f.replicas.map((x) => x.path));
}
const replicaCount = async (vo: string) => (await t.sql<{ n: number }[]>`select count(*)::int as n from replicas where vo = ${vo}`)[0].n;

beforeAll(async () => {
  t = await createTestApp();
  pkgs = await packageDir();
  atlas = await t.seedVo('atlas');
  cms = await t.seedVo('cms');
  expectOk(await t.call('POST', '/v1/scopes', { token: atlas.admin, body: { name: 'data18_13TeV', account: 'admin' } }));
});
afterAll(async () => {
  await t.policies.close();
  await t.close();
  await pkgs.close();
});

describe('two VOs, two packages', () => {
  it('atlas runs the run-number package, cms the default, side by side', async () => {
    const set = await setPolicy('atlas', 'examples/run-number.ts');
    expect([set.status, set.body.policy_package]).toEqual([200, 'examples/run-number.ts']);

    // Naming: strict in atlas, default in cms.
    const bad = await t.call('POST', '/v1/dids', { token: atlas.admin, body: { dids: [file('data18_13TeV', 'file1')] } });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'InvalidDidName']);
    expect(bad.body.error.message).toMatch(/must read <scope>\.<8-digit run>/);
    expectOk(await t.call('POST', '/v1/dids', { token: cms.admin, body: { dids: [file('data', 'file1')] } }));
    // atlas: the scope may be left out; the package takes it from the name.
    const { scope: _s, ...noScope } = file('data18_13TeV', RUN(1), 1);
    expectOk(await t.call('POST', '/v1/dids', { token: atlas.admin, body: { dids: [file('data18_13TeV', RUN(0)), noScope] } }));

    // Paths: registration without a path asks each VO's lfn2pfn.
    const [ra, rc] = await Promise.all([
      t.call('POST', '/v1/replicas', { token: atlas.admin, body: { rse: 'SITE_A', replicas: [0, 1].map((i) => ({ scope: 'data18_13TeV', name: RUN(i) })) } }),
      t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'file1' }] } }),
    ]);
    expect([ra.status, rc.status]).toEqual([201, 201]);
    expect(await replicaPaths('atlas', atlas.admin, 'data18_13TeV', RUN(1))).toEqual([`data18_13TeV/00358031/${RUN(1)}`]);
    expect(await replicaPaths('cms', cms.admin, 'data', 'file1')).toEqual([hashPath({ scope: 'data', name: 'file1' })]);
  });

  it('refuses a package that does not load, before saving anything', async () => {
    const v2 = await pkgs.ts('v2.ts', '', { apiVersion: 2 });
    for (const [spec, message] of [
      [v2, /written for policy API version 2, but this Sluice supports version 1/],
      ['examples/nope.ts', /not found/],
      ['Not A Package!', /not a built-in/],
    ] as const) {
      const r = await setPolicy('cms', spec);
      expect([r.status, r.body.error.code]).toEqual([400, 'InvalidPolicyPackage']);
      expect(r.body.error.message).toMatch(message);
    }
    expect((await t.call('GET', '/v1/vos/cms')).body.policy_package).toBe('default');
    const created = await t.call('POST', '/v1/vos', { body: { name: 'alice', policy_package: v2 } });
    expect([created.status, created.body.error.code]).toEqual([400, 'InvalidPolicyPackage']);
    expect(await t.sql`select 1 from vos where name = 'alice'`).toHaveLength(0);
  });
});

describe('isolation between VOs', () => {
  it('a throwing hook fails only that VO\'s request, with PolicyHookFailed, and writes nothing', async () => {
    const thrower = await pkgs.ts('thrower.ts', `lfn2pfn(d: PolicyDid): string { throw new Error('site list not reachable'); },`, { name: 'cms-broken' });
    expectOk(await setPolicy('cms', thrower));
    expectOk(await t.call('POST', '/v1/dids', { token: cms.admin, body: { dids: [file('data', 'file2', 2)] } }));
    const before = await replicaCount('cms');
    const r = await t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'file2' }] } });
    expect([r.status, r.body.error.code]).toEqual([500, 'PolicyHookFailed']);
    expect(r.body.error.message).toMatch(/policy 'cms-broken' lfn2pfn \(item 0\) threw: site list not reachable/);
    expect(await replicaCount('cms')).toBe(before);
    // atlas does not notice
    expectOk(await t.call('POST', '/v1/replicas', { token: atlas.admin, body: { rse: 'SITE_B', replicas: [{ scope: 'data18_13TeV', name: RUN(0) }] } }));
  });

  it('an endless loop times out (PolicyTimeout) while the other VO keeps being served; the next call works', async () => {
    const looper = await pkgs.ts('looper.ts', `lfn2pfn(d: PolicyDid): string { if (d.name.includes('spin')) { for (;;) {} } return 'cms/' + d.name; },`, { name: 'cms-looper' });
    expectOk(await setPolicy('cms', looper));
    expectOk(await t.call('POST', '/v1/dids', { token: cms.admin, body: { dids: [file('data', 'spin1', 3), file('data', 'file3', 4)] } }));
    const t0 = performance.now();
    const spinning = t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'spin1' }] } });
    await new Promise((r) => setTimeout(r, 200));
    // While cms's worker spins, atlas registers DIDs and replicas at normal speed.
    const a0 = performance.now();
    expectOk(await t.call('POST', '/v1/dids', { token: atlas.admin, body: { dids: [file('data18_13TeV', RUN(2), 5)] } }));
    expectOk(await t.call('POST', '/v1/replicas', { token: atlas.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data18_13TeV', name: RUN(2) }] } }));
    const atlasMs = performance.now() - a0;
    const r = await spinning;
    const spunMs = performance.now() - t0;
    expect([r.status, r.body.error.code]).toEqual([503, 'PolicyTimeout']);
    expect(r.body.error.message).toMatch(/policy 'cms-looper' lfn2pfn did not answer within \d+ ms/);
    expect(atlasMs).toBeLessThan(1000);
    expect(spunMs).toBeLessThan(6000);
    expect(await t.sql`select 1 from replicas where vo = 'cms' and name = 'spin1'`).toHaveLength(0);
    // the worker was restarted: the next cms call works
    expectOk(await t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'file3' }] } }));
    expect(await replicaPaths('cms', cms.admin, 'data', 'file3')).toEqual(['cms/file3']);
  });
});

describe('reloading', () => {
  it('a changed setting or a changed package file takes effect without a restart; a broken new version keeps the old one', async () => {
    expectOk(await setPolicy('cms', 'identity'));
    expectOk(await t.call('POST', '/v1/dids', { token: cms.admin, body: { dids: [1, 2, 3].map((i) => file('data', `r${i}`, 10 + i)) } }));
    expectOk(await t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'r1' }] } }));
    expect(await replicaPaths('cms', cms.admin, 'data', 'r1')).toEqual(['data/r1']);

    const path = await pkgs.ts('live.ts', `lfn2pfn: (d: PolicyDid) => 'v1/' + d.name,`);
    expectOk(await setPolicy('cms', path));
    expectOk(await t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_B', replicas: [{ scope: 'data', name: 'r1' }] } }));
    // The file changes on disk: picked up on the next request (mtime), no PATCH, no restart.
    await writeFile(path, (await import('node:fs/promises').then((f) => f.readFile(path, 'utf8'))).replace("'v1/'", "'v2/'"));
    await utimes(path, new Date(), new Date(Date.now() + 5000));
    expectOk(await t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'r2' }] } }));
    expect(await replicaPaths('cms', cms.admin, 'data', 'r2')).toEqual(['v2/r2']);
    // A new version that is refused at load: logged, and cms keeps v2.
    await writeFile(path, (await import('node:fs/promises').then((f) => f.readFile(path, 'utf8'))).replace('apiVersion: 1', 'apiVersion: 7'));
    await utimes(path, new Date(), new Date(Date.now() + 10_000));
    expectOk(await t.call('POST', '/v1/replicas', { token: cms.admin, body: { rse: 'SITE_A', replicas: [{ scope: 'data', name: 'r3' }] } }));
    expect(await replicaPaths('cms', cms.admin, 'data', 'r3')).toEqual(['v2/r3']);
  });

  it('a VO whose package never loaded fails with PolicyLoadFailed rather than running the default', async () => {
    await t.seedVo('lhcb', { endpoint: atlas.endpoint });
    const admin = await t.token('lhcb', 'admin');
    // Set behind the API's back: the file is gone by the time the server restarts.
    await t.sql`update vos set policy_package = ${`${pkgs.dir}/deleted.ts`} where name = 'lhcb'`;
    // This running registry already had lhcb's package (default) and keeps it...
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [file('data', 'kept')] } }));
    // ...a restarted process has no previous package: requests fail, they do not fall back.
    const restarted = createApp({ sql: t.sql, log: silentLogger, verifier: createVerifier(t.sql, { audience: 'sluice', cacheMs: 0 }), policies: createPolicyRegistry(t.sql, { cacheMs: 0 }) });
    const post = (dids: unknown[]) =>
      restarted.request('/v1/dids', { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ dids }) });
    const r = await post([file('data', 'x')]);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect([r.status, body.error.code]).toEqual([503, 'PolicyLoadFailed']);
    expect(body.error.message).toMatch(/not found: no file .*deleted\.ts/);
    expect(await t.sql`select 1 from dids where vo = 'lhcb' and name = 'x'`).toHaveLength(0);
    // Fixing the setting brings the VO back at once (the PATCH goes to any process; this one re-reads it).
    expectOk(await setPolicy('lhcb', 'default'));
    expect((await post([file('data', 'x')])).status).toBe(201);
  });
});
