/**
 * Policy hooks in rule placement, end to end through the API: lfn2pfn for the COPYING replicas,
 * rankDestinations, ruleDefaults and the rule.add permission with the target RSEs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';
import { hashPath } from '../../policies/default.ts';
import { packageDir } from './fixtures.ts';

let t: TestApp;
let pkgs: Awaited<ReturnType<typeof packageDir>>;

const DS = 'data18_13TeV.00358031.physics_Main.RAW';
const RAW = (i: number) => `${DS}._${String(i).padStart(4, '0')}`;
const file = (scope: string, name: string, i: number) => ({ scope, name, type: 'FILE' as const, bytes: 1000 + i, adler32: (0x30000000 + i).toString(16) });

async function dataset(token: string, scope: string, ds: string, names: string[]) {
  expectOk(await t.call('POST', '/v1/dids', { token, body: { dids: [{ scope, name: ds, type: 'DATASET' }, ...names.map((n, i) => file(scope, n, i))] } }));
  expectOk(await t.call('POST', `/v1/dids/${scope}/${ds}/children`, { token, body: { children: names.map((name) => ({ scope, name })) } }));
}
async function setAttribute(token: string, rse: string, key: string, value: string) {
  expectOk(await t.call('PUT', `/v1/rses/${rse}/attributes/${key}`, { token, body: { value } }));
}
async function copying(vo: string) {
  return t.sql<{ name: string; rse: string; path: string }[]>`
    select r.name, s.name as rse, r.path from replicas r join rses s on s.id = r.rse_id
    where r.vo = ${vo} and r.state = 'COPYING' order by r.name, s.name`;
}
const rowsOf = async (vo: string) =>
  (await t.sql<{ n: number }[]>`select (select count(*) from rules where vo = ${vo}) + (select count(*) from locks where vo = ${vo}) + (select count(*) from replicas where vo = ${vo}) + (select count(*) from requests where vo = ${vo}) as n`)[0].n;

beforeAll(async () => {
  t = await createTestApp();
  pkgs = await packageDir();
});
afterAll(async () => {
  await t.policies.close();
  await t.close();
  await pkgs.close();
});

describe('two VOs with different packages create rules side by side', () => {
  it('run-number places files at <scope>/<run>/<name> on disk first with its default activity; the default VO at hash paths', async () => {
    const atlas = await t.seedVo('atlas', { rses: ['SITE_A', 'SITE_B', 'SITE_C'] });
    const cms = await t.seedVo('cms');
    await setAttribute(atlas.admin, 'SITE_A', 'type', 'TAPE');
    await setAttribute(atlas.admin, 'SITE_B', 'type', 'DISK');
    expectOk(await t.call('PATCH', '/v1/vos/atlas', { body: { policy_package: 'examples/run-number.ts' } }));
    expectOk(await t.call('POST', '/v1/scopes', { token: atlas.admin, body: { name: 'data18_13TeV', account: 'admin' } }));
    await dataset(atlas.admin, 'data18_13TeV', DS, [1, 2, 3].map(RAW));
    await dataset(cms.admin, 'data', 'ds', ['f1', 'f2']);

    const [ra, rc] = await Promise.all([
      t.call('POST', '/v1/rules', { token: atlas.admin, body: { dids: [{ scope: 'data18_13TeV', name: DS }], copies: 1, rse_expression: '*' } }),
      t.call('POST', '/v1/rules', { token: cms.admin, body: { dids: [{ scope: 'data', name: 'ds' }], copies: 2, rse_expression: '*' } }),
    ]);
    expect([ra.status, rc.status]).toEqual([201, 201]);
    // ruleDefaults: no activity given -> the package's
    expect(ra.body.rules[0].activity).toBe('Data Consolidation');
    expect(rc.body.rules[0].activity).toBe('default');
    // rankDestinations (disk first) and lfn2pfn (run paths)
    expect(await copying('atlas')).toEqual([1, 2, 3].map((i) => ({ name: RAW(i), rse: 'SITE_B', path: `data18_13TeV/00358031/${RAW(i)}` })));
    expect(await copying('cms')).toEqual(
      ['f1', 'f2'].flatMap((n) => ['SITE_A', 'SITE_B'].map((rse) => ({ name: n, rse, path: hashPath({ scope: 'data', name: n }) }))),
    );
  });
});

describe('production-role: rules on tape only for production', () => {
  it('denies a user a rule whose expression includes tape (403, nothing written) and allows admin', async () => {
    const prod = await t.seedVo('prod', { rses: ['DISK_1', 'TAPE_1'] });
    await setAttribute(prod.admin, 'TAPE_1', 'type', 'TAPE');
    expectOk(await t.call('PATCH', '/v1/vos/prod', { body: { policy_package: 'examples/production-role.ts' } }));
    await dataset(prod.user, 'user.alice', 'ds', ['a1', 'a2']);
    const before = await rowsOf('prod');

    const denied = await t.call('POST', '/v1/rules', { token: prod.user, body: { dids: [{ scope: 'user.alice', name: 'ds' }], copies: 1, rse_expression: 'tier=1|TAPE_1' } });
    expect([denied.status, denied.body.error.code]).toEqual([403, 'PermissionDenied']);
    expect(denied.body.error.message).toMatch(/'tier=1\|TAPE_1' includes TAPE_1, where only production accounts may create rules/);
    expect(await rowsOf('prod')).toBe(before);

    expectOk(await t.call('POST', '/v1/rules', { token: prod.user, body: { dids: [{ scope: 'user.alice', name: 'ds' }], copies: 1, rse_expression: 'DISK_1' } }));
    const admin = await t.call('POST', '/v1/rules', { token: prod.admin, body: { dids: [{ scope: 'user.alice', name: 'ds' }], copies: 1, rse_expression: 'TAPE_1' } });
    expect(admin.status).toBe(201);
    expect((await copying('prod')).map((r) => r.rse).sort()).toEqual(['DISK_1', 'DISK_1', 'TAPE_1', 'TAPE_1']);
  });
});

describe('bad results in placement', () => {
  it('a malformed path or an unknown RSE from the package fails the rule with PolicyInvalidResult and writes nothing', async () => {
    const bad = await t.seedVo('bad', { rses: ['X1', 'X2'] });
    const path = await pkgs.ts(
      'bad-placement.ts',
      `lfn2pfn: (d: PolicyDid) => d.name.startsWith('evil') ? '../' + d.name : 'ok/' + d.name,
       rankDestinations: (c: Array<{ name: string }>, ctx: { rule: { activity: string } }) => ctx.rule.activity === 'liar' ? ['NOWHERE'] : undefined,`,
      { name: 'bad-placement' },
    );
    expectOk(await t.call('PATCH', '/v1/vos/bad', { body: { policy_package: path } }));
    await dataset(bad.admin, 'data', 'ds', ['good1', 'evil1']);
    const before = await rowsOf('bad');

    const r1 = await t.call('POST', '/v1/rules', { token: bad.admin, body: { dids: [{ scope: 'data', name: 'ds' }], copies: 1, rse_expression: '*' } });
    expect([r1.status, r1.body.error.code]).toEqual([500, 'PolicyInvalidResult']);
    expect(r1.body.error.message).toMatch(/policy 'bad-placement' lfn2pfn for 'data:evil1' on X\d returned path '\.\.\/evil1' with a '\.\.' segment/);
    const r2 = await t.call('POST', '/v1/rules', { token: bad.admin, body: { dids: [{ scope: 'data', name: 'ds' }], copies: 1, rse_expression: '*', activity: 'liar' } });
    expect([r2.status, r2.body.error.code]).toEqual([500, 'PolicyInvalidResult']);
    expect(r2.body.error.message).toMatch(/rankDestinations returned RSE 'NOWHERE', which was not among the candidates \(X1, X2\)/);
    expect(await rowsOf('bad')).toBe(before);
  });
});
