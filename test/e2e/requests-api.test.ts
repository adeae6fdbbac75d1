import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';

let t: TestApp;
let admin: string;
let ruleId: string;

beforeAll(async () => {
  t = await createTestApp();
  ({ admin } = await t.seedVo('atlas', { rses: ['DISK', 'TAPE'] }));
  expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [
    { scope: 'data', name: 'f1', bytes: 10, adler32: '0000000a' },
    { scope: 'data', name: 'f2', bytes: 10, adler32: '0000000a' },
    { scope: 'data', name: 'f3', bytes: 10, adler32: '0000000a' },
  ] } }));
  const rule = expectOk(await t.call('POST', '/v1/rules', { token: admin, body: { dids: [{ scope: 'data', name: 'f1' }, { scope: 'data', name: 'f2' }], copies: 1, rse_expression: 'TAPE', activity: 'reprocessing' } }));
  ruleId = rule.body.ids[0];
  expectOk(await t.call('POST', '/v1/rules', { token: admin, body: { dids: [{ scope: 'data', name: 'f3' }], copies: 1, rse_expression: 'DISK' } }));
});
afterAll(() => t.close());

it('lists requests newest first with filters and pagination; root filters by VO', async () => {
  const all = expectOk(await t.call('GET', '/v1/requests', { token: admin })).body;
  expect(all.items.map((r: { name: string }) => r.name)).toEqual(['f3', 'f2', 'f1']);
  expect(all.items[0]).toMatchObject({ state: 'QUEUED', dest_rse: 'DISK', source_rse: null, bytes: 10, bytes_done: 0, attempts: 0 });
  const byRule = expectOk(await t.call('GET', `/v1/requests?rule=${ruleId}`, { token: admin })).body;
  expect(byRule.items.map((r: { name: string }) => r.name)).toEqual(['f1']);
  const byActivity = expectOk(await t.call('GET', '/v1/requests?activity=reprocessing&state=QUEUED', { token: admin })).body;
  expect(byActivity.items.map((r: { name: string }) => r.name).sort()).toEqual(['f1', 'f2']);
  expect(expectOk(await t.call('GET', '/v1/requests?state=DONE', { token: admin })).body.items).toEqual([]);
  const p1 = expectOk(await t.call('GET', '/v1/requests?limit=2', { token: admin })).body;
  expect(p1.items).toHaveLength(2);
  const p2 = expectOk(await t.call('GET', `/v1/requests?limit=2&cursor=${p1.next}`, { token: admin })).body;
  expect(p2.items.map((r: { name: string }) => r.name)).toEqual(['f1']);
  expect(p2.next).toBeNull();
  expect(expectOk(await t.call('GET', '/v1/requests?vo=atlas')).body.items).toHaveLength(3);
  expect(expectOk(await t.call('GET', '/v1/requests?vo=other')).body.items).toHaveLength(0);
  expect((await t.call('GET', '/v1/requests?vo=other', { token: admin })).status).toBe(403);
  expect((await t.call('GET', '/v1/requests?bogus=1', { token: admin })).body.error.code).toBe('UnknownField');
  expect((await t.call('GET', '/v1/requests?state=NOPE', { token: admin })).status).toBe(400);
});

it('shows one request with its attempts', async () => {
  const [q] = await t.sql<{ id: number; dest_rse_id: number }[]>`select id, dest_rse_id from requests where name = 'f1'`;
  await t.sql`update requests set attempts = 1, error = 'x' where id = ${q.id}`;
  await t.sql`insert into transfer_attempts (request_id, vo, attempt, dest_rse_id, mode, bytes, duration_ms, error_code, error_phase, retryable, message)
              values (${q.id}, 'atlas', 1, ${q.dest_rse_id}, 'tpc-pull', 3, 12, 'ServerError', 'source', true, 'HTTP 503')`;
  const r = expectOk(await t.call('GET', `/v1/requests/${q.id}`, { token: admin })).body;
  expect(r).toMatchObject({ id: q.id, name: 'f1', attempts: 1 });
  expect(r.attempts_list).toEqual([expect.objectContaining({ attempt: 1, dest_rse: 'TAPE', mode: 'tpc-pull', error_code: 'ServerError', error_phase: 'source', retryable: true, message: 'HTTP 503' })]);
  expect((await t.call('GET', '/v1/requests/999999', { token: admin })).body.error.code).toBe('RequestNotFound');
  expect((await t.call('GET', '/v1/requests/abc', { token: admin })).status).toBe(400);
});
