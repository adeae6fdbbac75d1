import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectOk, makeFiles, type TestApp } from '../helpers/app.ts';

let t: TestApp;
let v1: Awaited<ReturnType<TestApp['seedVo']>>;
let v2: Awaited<ReturnType<TestApp['seedVo']>>;

async function written() {
  const [row] = await t.sql<{ rules: number; locks: number; requests: number; replicas: number; usage: number }[]>`
    select (select count(*) from rules)::int as rules, (select count(*) from locks)::int as locks,
           (select count(*) from requests)::int as requests, (select count(*) from replicas)::int as replicas,
           (select coalesce(sum(bytes), 0) from account_usage)::bigint as usage`;
  return row;
}

async function dataset(token: string, scope: string, name: string, n: number) {
  const files = makeFiles(scope, n, name);
  expectOk(await t.call('POST', '/v1/dids', { token, body: { dids: [{ scope, name, type: 'DATASET' }, ...files] } }));
  expectOk(await t.call('POST', `/v1/dids/${scope}/${name}/children`, { token, body: { children: files.map((f) => ({ scope: f.scope, name: f.name })) } }));
  return files;
}

beforeAll(async () => {
  t = await createTestApp();
  v1 = await t.seedVo('one', { rses: ['A1', 'B1', 'C1'] }); // tier 0/1/1, country CH/FR/CH
  v2 = await t.seedVo('two', { rses: ['Z2'] });
  await dataset(v1.admin, 'data', 'ds', 10);
  await dataset(v2.admin, 'data', 'theirs', 2);
});
afterAll(async () => {
  await t?.close();
});

const base = { dids: [{ scope: 'data', name: 'ds' }], copies: 1, rse_expression: 'tier=1' };

describe('POST /v1/rules', () => {
  it('creates a rule per DID with locks and requests; GET shows counters and bytes', async () => {
    const r = await t.call('POST', '/v1/rules', { token: v1.admin, body: { ...base, copies: 2, grouping: 'DATASET', lifetime: 3600, priority: 4, activity: 'express', comment: 'test' } });
    expect(r.status).toBe(201);
    expect(r.body.ids).toHaveLength(1);
    const id = r.body.ids[0];
    const g = await t.call('GET', `/v1/rules/${id}`, { token: v1.admin });
    expect(g.status).toBe(200);
    expect(g.body).toMatchObject({ id, account: 'admin', scope: 'data', name: 'ds', copies: 2, state: 'REPLICATING', locks_replicating_cnt: 20, priority: 4, activity: 'express' });
    expect(g.body.progress.bytes_total).toBe(2 * (10 * 1000 + 45));
    const locks = await t.call('GET', `/v1/rules/${id}/locks?limit=15`, { token: v1.admin });
    expect(locks.body.items).toHaveLength(15);
    expect(new Set(locks.body.items.map((l: { rse: string }) => l.rse))).toEqual(new Set(['B1', 'C1']));
    const rest = await t.call('GET', `/v1/rules/${id}/locks?limit=15&cursor=${locks.body.next}`, { token: v1.admin });
    expect(rest.body.items).toHaveLength(5);
    expect(rest.body.next).toBeNull();
    expect((await t.sql`select count(*)::int as n from requests where vo = 'one' and priority = 4 and activity = 'express'`)[0].n).toBe(20);
    expectOk(await t.call('PUT', `/v1/rules/${id}`, { token: v1.admin, body: { locked: false } }));
    expect((await t.call('DELETE', `/v1/rules/${id}`, { token: v1.admin })).body).toEqual({ id, locks_released: 20 });
  });

  const bad: Array<[string, Record<string, unknown>, number, string]> = [
    ['copies 0', { copies: 0 }, 400, 'InvalidCopies'],
    ['copies not a number', { copies: '2' }, 400, 'InvalidCopies'],
    ['copies missing', { copies: undefined }, 400, 'InvalidCopies'],
    ['more copies than matching RSEs', { copies: 3 }, 400, 'InsufficientTargetRses'],
    ['expression syntax', { rse_expression: 'tier=1|' }, 400, 'InvalidRSEExpression'],
    ['expression unknown name', { rse_expression: 'NOPE' }, 400, 'UnknownRSEOrAttribute'],
    ["another VO's RSE", { rse_expression: 'Z2' }, 400, 'UnknownRSEOrAttribute'],
    ['expression matches nothing', { rse_expression: 'tier=7' }, 400, 'RSEExpressionEmpty'],
    ['unknown DID', { dids: [{ scope: 'data', name: 'missing' }] }, 404, 'DidNotFound'],
    ["another VO's DID", { dids: [{ scope: 'data', name: 'theirs' }] }, 404, 'DidNotFound'],
    ['unknown scope', { dids: [{ scope: 'nosuch', name: 'x' }] }, 404, 'ScopeNotFound'],
    ['no DIDs', { dids: [] }, 400, 'InvalidInput'],
    ['negative lifetime', { lifetime: -1 }, 400, 'InvalidLifetime'],
    ['unknown grouping', { grouping: 'FILE' }, 400, 'InvalidGrouping'],
    ['priority out of range', { priority: 6 }, 400, 'InvalidPriority'],
    ['bad weight name', { weight: 'a b' }, 400, 'InvalidWeight'],
    ['unknown field', { copy: 2 }, 400, 'UnknownField'],
    ['bad source expression', { source_replica_expression: '(A1' }, 400, 'InvalidRSEExpression'],
    ['duplicate DIDs', { dids: [base.dids[0], base.dids[0]] }, 400, 'DuplicateDid'],
  ];
  it.each(bad)('%s -> %i %s, nothing written', async (_label, patch, status, code) => {
    const before = await written();
    const r = await t.call('POST', '/v1/rules', { token: v1.admin, body: { ...base, ...patch } });
    expect([r.status, r.body.error?.code]).toEqual([status, code]);
    expect(r.body.error.message.length).toBeGreaterThan(10);
    expect(await written()).toEqual(before);
  });

  it('refuses root (no VO) and malformed JSON', async () => {
    expect((await t.call('POST', '/v1/rules', { body: base })).body.error.code).toBe('VoRequired');
    const r = await t.call('POST', '/v1/rules', { token: v1.admin, raw: '{"dids": [' });
    expect(r.status).toBe(400);
  });
});

describe('rules routes are VO- and owner-scoped', () => {
  it("another VO sees none of a VO's rules and can change none", async () => {
    const r = expectOk(await t.call('POST', '/v1/rules', { token: v1.user, body: { ...base, locked: true } }));
    const id = r.body.ids[0];
    const before = await written();
    for (const [method, path, body] of [
      ['GET', `/v1/rules/${id}`, undefined],
      ['GET', `/v1/rules/${id}/locks`, undefined],
      ['PUT', `/v1/rules/${id}`, { priority: 5 }],
      ['DELETE', `/v1/rules/${id}`, undefined],
    ] as const) {
      const res = await t.call(method, path, { token: v2.admin, body });
      expect([method, path, res.status, res.body.error?.code]).toEqual([method, path, 404, 'RuleNotFound']);
    }
    expect((await t.call('GET', '/v1/rules', { token: v2.admin })).body.items).toEqual([]);
    expect((await t.call('GET', `/v1/rules?account=alice`, { token: v2.admin })).body.items).toEqual([]);
    expect(await written()).toEqual(before);
    expect((await t.call('GET', `/v1/rules/${id}`, { token: t.rootToken })).body.error.code).toBe('VoRequired');

    // Inside the VO: a user may not touch another account's rule; the owner may, but not delete a locked one.
    const admins = expectOk(await t.call('POST', '/v1/rules', { token: v1.admin, body: base }));
    expect((await t.call('DELETE', `/v1/rules/${admins.body.ids[0]}`, { token: v1.user })).body.error.code).toBe('PermissionDenied');
    expect((await t.call('PUT', `/v1/rules/${admins.body.ids[0]}`, { token: v1.user, body: { priority: 1 } })).body.error.code).toBe('PermissionDenied');
    const locked = await t.call('DELETE', `/v1/rules/${id}`, { token: v1.user });
    expect([locked.status, locked.body.error.code]).toEqual([409, 'RuleLocked']);
    expect(await written()).not.toEqual(before); // the admin's rule exists
    const stillThere = await written();
    expect((await t.call('PUT', `/v1/rules/${id}`, { token: v1.user, body: { lifetime: -3 } })).body.error.code).toBe('InvalidLifetime');
    expect((await t.call('PUT', `/v1/rules/${id}`, { token: v1.user, body: { copies: 3 } })).body.error.code).toBe('UnknownField');
    expect(await written()).toEqual(stillThere);
    expectOk(await t.call('PUT', `/v1/rules/${id}`, { token: v1.user, body: { locked: false } }));
    expectOk(await t.call('DELETE', `/v1/rules/${id}`, { token: v1.user }));
    expectOk(await t.call('DELETE', `/v1/rules/${admins.body.ids[0]}`, { token: v1.admin }));
  });

  it('malformed and unknown ids are 404 RuleNotFound', async () => {
    for (const id of ['not-a-uuid', '00000000-0000-4000-8000-000000000000']) {
      const r = await t.call('GET', `/v1/rules/${id}`, { token: v1.admin });
      expect([r.status, r.body.error.code]).toEqual([404, 'RuleNotFound']);
    }
  });

  it('lists by account, DID and state with pagination', async () => {
    const a = expectOk(await t.call('POST', '/v1/rules', { token: v1.admin, body: { ...base, rse_expression: 'B1' } }));
    const b = expectOk(await t.call('POST', '/v1/rules', { token: v1.user, body: { ...base, rse_expression: 'C1' } }));
    const all = await t.call('GET', '/v1/rules?limit=1', { token: v1.admin });
    expect(all.body.items).toHaveLength(1);
    const second = await t.call('GET', `/v1/rules?limit=1&cursor=${all.body.next}`, { token: v1.admin });
    expect(second.body.items[0].id).not.toBe(all.body.items[0].id);
    expect((await t.call('GET', '/v1/rules?account=alice', { token: v1.admin })).body.items.map((r: { id: string }) => r.id)).toEqual(b.body.ids);
    expect((await t.call('GET', '/v1/rules?scope=data&name=ds&state=REPLICATING', { token: v1.admin })).body.items).toHaveLength(2);
    expect((await t.call('GET', '/v1/rules?state=OK', { token: v1.admin })).body.items).toHaveLength(0);
    expect((await t.call('GET', '/v1/rules?state=DONE', { token: v1.admin })).body.error.code).toBe('InvalidState');
    expect((await t.call('GET', '/v1/rules?cursor=zzz', { token: v1.admin })).body.error.code).toBe('InvalidCursor');
    for (const id of [...a.body.ids, ...b.body.ids]) expectOk(await t.call('DELETE', `/v1/rules/${id}`, { token: v1.admin }));
  });
});

describe('GET /v1/rses?expression=', () => {
  it("resolves over the caller's VO only, with explain steps", async () => {
    const r = await t.call('GET', `/v1/rses?expression=${encodeURIComponent('tier=1&country=CH|A1')}&explain=true`, { token: v1.admin });
    expect(r.status).toBe(200);
    expect(r.body.items.map((x: { name: string }) => x.name)).toEqual(['A1', 'C1']);
    expect(r.body.steps.map((s: { term: string; result: string[] }) => [s.term, s.result])).toEqual([
      ['tier=1', ['B1', 'C1']],
      ['country=CH', ['C1']],
      ['A1', ['A1', 'C1']],
    ]);
    const paged = await t.call('GET', `/v1/rses?expression=*&limit=2`, { token: v1.admin });
    expect(paged.body.items.map((x: { name: string }) => x.name)).toEqual(['A1', 'B1']);
    expect((await t.call('GET', `/v1/rses?expression=*&limit=2&cursor=${paged.body.next}`, { token: v1.admin })).body.items.map((x: { name: string }) => x.name)).toEqual(['C1']);
    expect((await t.call('GET', `/v1/rses?expression=*`, { token: v2.admin })).body.items.map((x: { name: string }) => x.name)).toEqual(['Z2']);
    expect((await t.call('GET', `/v1/rses?expression=Z2`, { token: v1.admin })).body.error.code).toBe('UnknownRSEOrAttribute');
    expect((await t.call('GET', `/v1/rses?expression=${encodeURIComponent('tier=1&')}`, { token: v1.admin })).body.error.code).toBe('InvalidRSEExpression');
    expect((await t.call('GET', `/v1/rses?expression=tier=5`, { token: v1.admin })).body.error.code).toBe('RSEExpressionEmpty');
  });
});

describe('quotas: /v1/accounts/{name}/limits and /usage', () => {
  it('admins set limits; rules over them are refused with the numbers; usage follows locks', async () => {
    const put = (token: string, account: string, rse: string, bytes: unknown) => t.call('PUT', `/v1/accounts/${account}/limits/${rse}`, { token, body: { bytes } });
    expect((await put(v1.user, 'alice', 'B1', 100)).body.error.code).toBe('PermissionDenied');
    expect((await put(v1.admin, 'alice', 'NOPE', 100)).body.error.code).toBe('RseNotFound');
    expect((await put(v1.admin, 'nobody', 'B1', 100)).body.error.code).toBe('AccountNotFound');
    expect((await put(v1.admin, 'alice', 'B1', -1)).body.error.code).toBe('InvalidSize');
    expect((await put(v2.admin, 'alice', 'B1', 100)).body.error.code).toBe('RseNotFound');
    expectOk(await put(v1.admin, 'alice', 'B1', 5000));
    expectOk(await put(v1.admin, 'alice', 'C1', 5000));
    const before = await written();
    const r = await t.call('POST', '/v1/rules', { token: v1.user, body: base });
    expect([r.status, r.body.error.code]).toEqual([409, 'QuotaExceeded']);
    expect(r.body.error.message).toMatch(/limit 5000 B, used 0 B/);
    expect(await written()).toEqual(before);
    expectOk(await put(v1.admin, 'alice', 'C1', null));
    const ok = expectOk(await t.call('POST', '/v1/rules', { token: v1.user, body: base }));
    const usage = await t.call('GET', '/v1/accounts/alice/usage', { token: v1.user });
    expect(usage.body.items).toEqual([
      { rse: 'B1', files: 0, bytes: 0, limit_bytes: 5000, remaining_bytes: 5000 },
      { rse: 'C1', files: 10, bytes: 10_045, limit_bytes: null, remaining_bytes: null },
    ]);
    expect((await t.call('GET', '/v1/accounts/admin/usage', { token: v1.user })).body.error.code).toBe('PermissionDenied');
    // VO two has its own 'alice', who has locked nothing: usage never crosses VOs.
    expect((await t.call('GET', '/v1/accounts/alice/usage', { token: v2.admin })).body.items).toEqual([]);
    expect((await t.call('GET', '/v1/accounts/nobody/usage', { token: v1.admin })).body.error.code).toBe('AccountNotFound');
    expectOk(await t.call('DELETE', `/v1/rules/${ok.body.ids[0]}`, { token: v1.user }));
  });
});
