import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.ts';
import { addAttempts, addRequests, seedLink } from '../helpers/links.ts';

let t: TestApp;
let atlas: string;
let cms: string;
let linkId: number;

beforeAll(async () => {
  t = await createTestApp();
  ({ admin: atlas } = await t.seedVo('atlas', { rses: ['A_SRC', 'A_DST'], endpoint: 'ep-a' }));
  expect((await t.call('POST', '/v1/endpoints', { body: { name: 'ep-b', url: 'http://127.0.0.1:2', kind: 'http' } })).status).toBe(201);
  ({ admin: cms } = await t.seedVo('cms', { rses: ['C_DST'], endpoint: 'ep-b' }));
  const a = await seedLink(t.sql, { vo: 'atlas', src: 'ep-a', dst: 'ep-b', dstRse: 'A_DST', limit: 20 });
  linkId = a.linkId;
  const c = await seedLink(t.sql, { vo: 'cms', src: 'ep-a', dst: 'ep-b', dstRse: 'C_DST', limit: 20 });
  const aActive = await addRequests(t.sql, { vo: 'atlas', linkId, rseId: a.rseId, n: 6, state: 'ACTIVE' });
  await addRequests(t.sql, { vo: 'atlas', linkId, rseId: a.rseId, n: 30, state: 'QUEUED' });
  await addRequests(t.sql, { vo: 'cms', linkId, rseId: c.rseId, n: 4, state: 'ACTIVE' });
  await addRequests(t.sql, { vo: 'cms', linkId, rseId: c.rseId, n: 5, state: 'QUEUED' });
  await addAttempts(t.sql, { vo: 'atlas', linkId, rseId: a.rseId, requestIds: aActive, ok: 6, failed: 2, bytes: 10_000_000 });
});
afterAll(() => t.close());

describe('links API', () => {
  it('shows root every VO on a link with load, throughput and success', async () => {
    const r = await t.call('GET', '/v1/links');
    expect(r.status).toBe(200);
    expect(r.body.items).toHaveLength(1);
    expect(r.body.items[0]).toMatchObject({
      id: linkId, source: 'ep-a', destination: 'ep-b', limit: 20, active: 10, queued: 35, success_rate: 0.75,
      vos: [{ vo: 'atlas', active: 6, queued: 30, share: 1 }, { vo: 'cms', active: 4, queued: 5, share: 1 }],
    });
    expect(r.body.items[0].bytes_per_second).toBeCloseTo(1_000_000, -3);
  });

  it("shows a VO only its own figures", async () => {
    const a = await t.call('GET', '/v1/links', { token: atlas });
    expect(a.body.items[0]).toMatchObject({ active: 6, queued: 30, vos: [{ vo: 'atlas', active: 6, queued: 30 }] });
    const c = await t.call('GET', `/v1/links/${linkId}`, { token: cms });
    expect(c.body).toMatchObject({ active: 4, queued: 5, vos: [{ vo: 'cms' }], bytes_per_second: 0, success_rate: null });
    expect(JSON.stringify(c.body)).not.toContain('atlas');
  });

  it('lets root pin, bound and share a link; refuses everyone else and bad values', async () => {
    expect((await t.call('PUT', `/v1/links/${linkId}`, { token: atlas, body: { pinned: true } })).status).toBe(403);
    const pinned = await t.call('PUT', `/v1/links/${linkId}`, { body: { pinned: true, limit: 12, vo_shares: { atlas: 5 } } });
    expect(pinned.status).toBe(200);
    expect(pinned.body).toMatchObject({ pinned: true, limit: 12 });
    expect(pinned.body.vos.find((v: { vo: string }) => v.vo === 'atlas').share).toBe(5);
    const bad = async (body: unknown, code: string, status = 400) => {
      const before = await t.sql`select * from links order by id`;
      const r = await t.call('PUT', `/v1/links/${linkId}`, { body });
      expect(r.body.error?.code).toBe(code);
      expect(r.status).toBe(status);
      expect(await t.sql`select * from links order by id`).toEqual(before);
    };
    await bad({ min: 50, max: 10 }, 'InvalidLimits');
    await bad({ limit: 500 }, 'InvalidLimits');
    await bad({ limit: 5, pinned: false }, 'InvalidLimits');
    await bad({ vo_shares: { nosuchvo: 1 } }, 'VoNotFound', 404);
    await bad({ max: 0 }, 'InvalidInput');
    await bad({ colour: 'red' }, 'UnknownField');
    expect((await t.call('GET', '/v1/links/999999')).status).toBe(404);
    expect((await t.call('GET', '/v1/links/abc')).status).toBe(400);
    const unpinned = await t.call('PUT', `/v1/links/${linkId}`, { body: { pinned: false, vo_shares: { atlas: null } } });
    expect(unpinned.body.vos.find((v: { vo: string }) => v.vo === 'atlas').share).toBe(1);
  });

  it('lists decisions newest first', async () => {
    await t.sql`insert into link_decisions (link_id, at, previous_limit, limit_active, reason, inputs) values
      (${linkId}, now() - interval '30 seconds', 10, 20, 'first', '{"active": 10}'), (${linkId}, now(), 20, 40, 'second', '{"active": 20}')`;
    const r = await t.call('GET', `/v1/links/${linkId}/decisions?limit=1`, { token: cms });
    expect(r.body.items).toEqual([expect.objectContaining({ reason: 'second', limit: 40, previous_limit: 20, inputs: { active: 20 } })]);
  });
});
