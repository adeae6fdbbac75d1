import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldRseUsage, rseUsage } from '../../core/usage.ts';
import { createTestApp, expectOk, makeFiles, type TestApp } from '../helpers/app.ts';

let t: TestApp;
let atlas: { admin: string; user: string };
let cms: { admin: string };
let diskId: number;

beforeAll(async () => {
  t = await createTestApp();
  atlas = await t.seedVo('atlas', { rses: ['DISK', 'TAPE'], endpoint: 'shared' });
  cms = await t.seedVo('cms', { rses: ['CMS_DISK'], endpoint: 'shared' });
  [{ id: diskId }] = await t.sql<{ id: number }[]>`select id from rses where vo = 'atlas' and name = 'DISK'`;
});
afterAll(() => t?.close());

/** What a full scan says: the truth the triggers must match at every step. */
async function scan() {
  const rows = await t.sql<{ vo: string; rse_id: number; files: number; bytes: number }[]>`
    select r.vo, r.rse_id, count(*)::bigint as files, sum(d.bytes)::bigint as bytes
    from replicas r join dids d using (vo, scope, name) where r.state = 'AVAILABLE' group by 1, 2 order by 1, 2`;
  return rows.map((r) => ({ ...r }));
}
async function current() {
  const rows = await t.sql<{ vo: string; rse_id: number; files: number; bytes: number }[]>`
    select vo, rse_id, files, bytes from rse_usage_current where files <> 0 or bytes <> 0 order by 1, 2`;
  return rows.map((r) => ({ ...r }));
}

describe('replica usage per VO and RSE', () => {
  it('follows bulk registration, state changes and deletes exactly, folded or not', async () => {
    const files = makeFiles('data', 500);
    expectOk(await t.call('POST', '/v1/dids', { token: atlas.admin, body: { dids: files } }));
    expectOk(await t.call('POST', '/v1/replicas', { token: atlas.admin, body: { rse: 'DISK', replicas: files.map(({ scope, name }) => ({ scope, name })) } }));
    expectOk(await t.call('POST', '/v1/replicas', { token: atlas.admin, body: { rse: 'TAPE', replicas: files.slice(0, 10).map(({ scope, name }) => ({ scope, name })) } }));
    expect(await current()).toEqual(await scan());
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    expect((await rseUsage(t.sql, 'atlas', [diskId])).get(diskId)).toEqual({ files: 500, bytes });

    // declared bad: no longer AVAILABLE
    expectOk(await t.call('POST', '/v1/replicas/bad', { token: atlas.admin, body: { reason: 'lost', replicas: [{ scope: 'data', name: files[0].name, rse: 'DISK' }] } }));
    expect(await current()).toEqual(await scan());
    // updates that do not change AVAILABLE-ness add no delta rows
    const [{ n: before }] = await t.sql<{ n: number }[]>`select count(*)::int as n from rse_usage_delta`;
    await t.sql`update replicas set lock_cnt = lock_cnt + 1 where vo = 'atlas' and rse_id = ${diskId}`;
    await t.sql`update replicas set lock_cnt = lock_cnt - 1 where vo = 'atlas' and rse_id = ${diskId}`;
    expect((await t.sql<{ n: number }[]>`select count(*)::int as n from rse_usage_delta`)[0].n).toBe(before);
    // back to AVAILABLE, COPYING, deleted
    await t.sql`update replicas set state = 'AVAILABLE' where vo = 'atlas' and name = ${files[0].name}`;
    await t.sql`update replicas set state = 'COPYING' where vo = 'atlas' and name = any(${files.slice(1, 5).map((f) => f.name)})`;
    await t.sql`delete from replicas where vo = 'atlas' and rse_id = ${diskId} and name = any(${files.slice(5, 50).map((f) => f.name)})`;
    expect(await current()).toEqual(await scan());

    expect(await foldRseUsage(t.sql)).toBeGreaterThan(0);
    expect((await t.sql`select count(*)::int as n from rse_usage_delta`)[0].n).toBe(0);
    expect(await current()).toEqual(await scan());
    expect(await foldRseUsage(t.sql)).toBe(0);
    await t.sql`update replicas set state = 'BAD' where vo = 'atlas' and name = ${files[60].name}`;
    expect(await current()).toEqual(await scan());
  });

  it('GET /v1/usage: a VO sees its own RSEs and accounts; root sees all', async () => {
    const mine = await t.call('GET', '/v1/usage', { token: atlas.admin });
    expect(mine.status).toBe(200);
    expect(mine.body.rses.map((r: { rse: string }) => r.rse).sort()).toEqual(['DISK', 'TAPE']);
    expect(mine.body.rses.find((r: { rse: string }) => r.rse === 'DISK').files).toBe((await scan()).find((r) => r.rse_id === diskId)!.files);
    const theirs = await t.call('GET', '/v1/usage', { token: cms.admin });
    expect(JSON.stringify(theirs.body)).not.toMatch(/"atlas"|"DISK"|"TAPE"/);
    const root = await t.call('GET', '/v1/usage');
    expect(new Set(root.body.rses.map((r: { vo: string }) => r.vo))).toEqual(new Set(['atlas', 'cms']));
    const one = await t.call('GET', '/v1/usage?vo=cms');
    expect(one.body.rses.map((r: { rse: string }) => r.rse)).toEqual(['CMS_DISK']);
  });
});
