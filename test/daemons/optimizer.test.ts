import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { createOptimizerDaemon, observeLinks, toObservation } from '../../daemons/optimizer.ts';
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
    expect(d.inputs).toMatchObject({ limit: 2, active: 2, queued: 200, successRate: 1, meanFileBytes: 1e6 });
    expect(d.inputs.bytesPerSecond / 2e6).toBeCloseTo(1, 2);
    const [link] = await t.sql`select limit_active from links where id = ${linkId}`;
    expect(link.limit_active).toBe(d.limit_active);
  });

  it('measures a window that straddles a limit change by its average concurrency, not by the transfers running at its end', async () => {
    await t.sql`delete from transfer_attempts`;
    await t.sql`delete from requests`;
    await t.sql`delete from link_decisions`;
    const { linkId, rseId } = await seedLink(t.sql, { vo: 'atlas', src: 'ep-a', dst: 'ep-b', dstRse: 'DST', limit: 8 });
    const running = await addRequests(t.sql, { vo: 'atlas', linkId, rseId, n: 8, state: 'ACTIVE', bytes: 1e6 });
    await addRequests(t.sql, { vo: 'atlas', linkId, rseId, n: 100, state: 'QUEUED', bytes: 1e6 });
    // A 10 s window: 2 transfers at a time (1 s each) in its first half, 8 at a time in its second
    // half, and 8 transfers that started just now. An attempt that began before the window counts
    // for its part inside it: 4 of the 10 s of this one.
    await t.sql`
      insert into transfer_attempts (request_id, vo, attempt, dest_rse_id, link_id, bytes, duration_ms, started_at, finished_at)
      select ${running[0]}::bigint, 'atlas', 1, ${rseId}::bigint, ${linkId}::bigint, 1e6, 1000,
             now() - make_interval(secs => s + 1), now() - make_interval(secs => s)
      from generate_series(0, 4) s, generate_series(1, 8) k
      union all
      select ${running[0]}::bigint, 'atlas', 1, ${rseId}::bigint, ${linkId}::bigint, 1e6, 1000,
             now() - make_interval(secs => s + 1), now() - make_interval(secs => s)
      from generate_series(5, 9) s, generate_series(1, 2) k
      union all
      select ${running[0]}::bigint, 'atlas', 1, ${rseId}::bigint, ${linkId}::bigint, 10e6, 10000, now() - interval '16 s', now() - interval '6 s'`;
    const [w] = await observeLinks(t.sql, 10_000);
    const o = toObservation(w, Date.now());
    // (40 + 10) transfer-seconds + 4 of the long one, over 10 s; 8 running now, 5.4 on average.
    expect(o.active).toBe(5);
    expect(o.queued).toBe(100 + 3);
    // 54 MB moved inside the window (4 of the long one's 10 MB): 5.4 MB/s.
    expect(o.bytesPerSecond / 5.4e6).toBeCloseTo(1, 2);
    expect(o.successRate).toBe(1);
  });

  it('backs off when transfers fail, and never leaves [min, max]', async () => {
    const [link] = await t.sql<{ id: number }[]>`select id from links limit 1`;
    await t.sql`update links set limit_active = 40, min_active = 5, max_active = 60 where id = ${link.id}`;
    await t.sql`delete from transfer_attempts`;
    await t.sql`delete from link_decisions`;
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

  it('waits after a limit change until the transfers started before it have ended', async () => {
    const [link] = await t.sql<{ id: number }[]>`select id from links limit 1`;
    const rseId = (await t.sql`select id from rses where name = 'DST'`)[0].id;
    const active = (await t.sql<{ id: number }[]>`select id from requests where state = 'ACTIVE'`).map((r) => r.id);
    // The limit changed 8 s ago and transfers on this link take 5 s: of a 10 s window, only the
    // last 3 s measure the new limit.
    await t.sql`delete from link_decisions`;
    await t.sql`delete from transfer_attempts`;
    await addAttempts(t.sql, { vo: 'atlas', linkId: link.id, rseId, requestIds: active, ok: 10, bytes: 1e6, durationMs: 5000 });
    await t.sql`insert into link_decisions (link_id, at, previous_limit, limit_active, reason, inputs) select id, now() - interval '8 s', limit_active + 1, limit_active, 'test', '{}' from links where id = ${link.id}`;
    const [w] = await observeLinks(t.sql, 10_000);
    expect(w.window_seconds).toBeGreaterThan(2.5);
    expect(w.window_seconds).toBeLessThan(3.5);
    // With a 20 s interval, 3 s is too little to judge the change by: the daemon waits.
    await createOptimizerDaemon({ sql: t.sql, log: silentLogger }, { intervalMs: 20_000 }).runOnce();
    const last = (await decisions(link.id)).at(-1)!;
    expect(last.reason).toMatch(/^waiting: transfers started before the last limit change/);
    expect(last.limit_active).toBe(last.previous_limit);
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
