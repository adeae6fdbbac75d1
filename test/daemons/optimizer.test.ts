import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { createOptimizerDaemon } from '../../daemons/optimizer.ts';
import { createTestApp, type TestApp } from '../helpers/app.ts';
import { addAttempts, addRequests, seedLink } from '../helpers/links.ts';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await t.seedVo('atlas', { rses: ['SRC', 'DST'], endpoint: 'ep-a' });
  expect((await t.call('POST', '/v1/endpoints', { body: { name: 'ep-b', url: 'http://127.0.0.1:2', kind: 'http' } })).status).toBe(201);
});
afterAll(() => t.close());

const decisions = (linkId: number) =>
  t.sql<{ previous_limit: number; limit_active: number; reason: string; inputs: Record<string, number> }[]>`
    select previous_limit, limit_active, reason, inputs from link_decisions where link_id = ${linkId} order by id`;

describe('optimizer daemon', () => {
  it('raises the limit of a busy, healthy link and records why, with its inputs', async () => {
    const { linkId, rseId } = await seedLink(t.sql, { vo: 'atlas', src: 'ep-a', dst: 'ep-b', dstRse: 'DST', limit: 2 });
    const active = await addRequests(t.sql, { vo: 'atlas', linkId, rseId, n: 2, state: 'ACTIVE', bytes: 1e6 });
    await addRequests(t.sql, { vo: 'atlas', linkId, rseId, n: 200, state: 'QUEUED', bytes: 1e6 });
    await addAttempts(t.sql, { vo: 'atlas', linkId, rseId, requestIds: active, ok: 20, bytes: 1e6 });
    const daemon = createOptimizerDaemon({ sql: t.sql, log: silentLogger }, { intervalMs: 10_000 });
    await daemon.runOnce();
    const [d] = await decisions(linkId);
    expect(d.previous_limit).toBe(2);
    expect(d.limit_active).toBeGreaterThan(2);
    expect(d.reason.length).toBeGreaterThan(10);
    expect(d.inputs).toMatchObject({ limit: 2, active: 2, queued: 200, successRate: 1, bytesPerSecond: 2e6, meanFileBytes: 1e6 });
    const [link] = await t.sql`select limit_active from links where id = ${linkId}`;
    expect(link.limit_active).toBe(d.limit_active);
  });

  it('backs off when transfers fail, and never leaves [min, max]', async () => {
    const [link] = await t.sql<{ id: number }[]>`select id from links limit 1`;
    await t.sql`update links set limit_active = 40, min_active = 5, max_active = 60 where id = ${link.id}`;
    await t.sql`delete from transfer_attempts`;
    const rseId = (await t.sql`select id from rses where name = 'DST'`)[0].id;
    const active = (await t.sql<{ id: number }[]>`select id from requests where state = 'ACTIVE'`).map((r) => r.id);
    await addAttempts(t.sql, { vo: 'atlas', linkId: link.id, rseId, requestIds: active, ok: 10, failed: 30, bytes: 1e6 });
    const daemon = createOptimizerDaemon({ sql: t.sql, log: silentLogger }, { intervalMs: 10_000 });
    await daemon.runOnce();
    const last = (await decisions(link.id)).at(-1)!;
    expect(last.previous_limit).toBe(40);
    expect(last.limit_active).toBeLessThan(40);
    expect(last.limit_active).toBeGreaterThanOrEqual(5);
    expect(last.inputs.successRate).toBeCloseTo(0.25);
  });

  it('leaves a pinned link alone and says so', async () => {
    const [link] = await t.sql<{ id: number }[]>`select id from links limit 1`;
    await t.sql`update links set pinned = true, limit_active = 7 where id = ${link.id}`;
    await createOptimizerDaemon({ sql: t.sql, log: silentLogger }).runOnce();
    const last = (await decisions(link.id)).at(-1)!;
    expect(last).toMatchObject({ previous_limit: 7, limit_active: 7, reason: 'pinned by an admin at 7' });
    expect((await t.sql`select limit_active from links where id = ${link.id}`)[0].limit_active).toBe(7);
    await t.sql`update links set pinned = false where id = ${link.id}`;
  });

  it('decides once per round even with several optimizer processes', async () => {
    const [link] = await t.sql<{ id: number }[]>`select id from links limit 1`;
    const before = (await decisions(link.id)).length;
    const daemons = [1, 2, 3].map(() => createOptimizerDaemon({ sql: t.sql, log: silentLogger }));
    await Promise.all(daemons.map((d) => d.runOnce()));
    // Rounds that ran one after another each decide; rounds at the same time skip. Never more
    // decisions than rounds, and every decision row is whole.
    const after = await decisions(link.id);
    expect(after.length - before).toBeGreaterThanOrEqual(1);
    expect(after.length - before).toBeLessThanOrEqual(3);
  });

  it('runs as a loop until stopped, and prunes old decisions', async () => {
    const [link] = await t.sql<{ id: number }[]>`select id from links limit 1`;
    await t.sql`insert into link_decisions (link_id, at, previous_limit, limit_active, reason, inputs) values (${link.id}, now() - interval '3 days', 1, 1, 'old', '{}')`;
    const before = (await decisions(link.id)).length;
    const ac = new AbortController();
    const daemon = createOptimizerDaemon({ sql: t.sql, log: silentLogger }, { intervalMs: 100 });
    const running = daemon.run(ac.signal);
    await new Promise((r) => setTimeout(r, 450));
    ac.abort();
    await running;
    const after = await decisions(link.id);
    expect(after.some((d) => d.reason === 'old')).toBe(false);
    expect(after.length).toBeGreaterThan(before); // at least two rounds ran, minus the pruned row
  });
});
