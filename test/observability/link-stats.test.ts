import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { createLinkStats } from '../../daemons/link-stats.ts';
import { createTestApp, type TestApp } from '../helpers/app.ts';

let t: TestApp;
let linkId: number;
let reqId: number;
const minute = (d: Date) => new Date(Math.floor(d.getTime() / 60_000) * 60_000);

beforeAll(async () => {
  t = await createTestApp();
  await t.seedVo('atlas', { rses: ['SRC', 'DST'], endpoint: 'ep1' });
  await t.seedVo('cms', { rses: ['CMS_DST'], endpoint: 'ep1' });
  const [ep] = await t.sql<{ id: number }[]>`select id from storage_endpoints where name = 'ep1'`;
  [{ id: linkId }] = await t.sql<{ id: number }[]>`insert into links (src_endpoint_id, dst_endpoint_id) values (${ep.id}, ${ep.id}) returning id`;
  const [rse] = await t.sql<{ id: number }[]>`select id from rses where name = 'DST'`;
  await t.sql`insert into dids (vo, scope, name, type, account, bytes, adler32) values ('atlas', 'data', 'x', 'FILE', 'admin', 1, '00000001'), ('cms', 'data', 'x', 'FILE', 'admin', 1, '00000001')`;
  [{ id: reqId }] = await t.sql<{ id: number }[]>`insert into requests (vo, scope, name, dest_rse_id, bytes, adler32, state) values ('atlas', 'data', 'x', ${rse.id}, 1, '00000001', 'DONE') returning id`;
});
afterAll(() => t?.close());

async function attempt(vo: string, at: Date, bytes: number, durationMs: number, errorCode: string | null = null) {
  await t.sql`
    insert into transfer_attempts (request_id, vo, attempt, dest_rse_id, link_id, bytes, duration_ms, error_code, finished_at)
    select id, ${vo}, 1, dest_rse_id, ${linkId}, ${bytes}, ${durationMs}, ${errorCode}, ${at} from requests where id = ${reqId}`;
}

describe('link statistics', () => {
  it('rolls attempts up per minute and hour, idempotently, and serves them by step', async () => {
    const now = new Date();
    const tenAgo = minute(new Date(now.getTime() - 10 * 60_000));
    await attempt('atlas', new Date(tenAgo.getTime() + 1000), 6000, 1000);
    await attempt('atlas', new Date(tenAgo.getTime() + 2000), 6000, 3000);
    await attempt('atlas', new Date(tenAgo.getTime() + 3000), 10, 100, 'ChecksumMismatch');
    await attempt('atlas', new Date(tenAgo.getTime() + 4000), 0, 100, 'Timeout');
    await attempt('cms', new Date(tenAgo.getTime() + 5000), 600, 500);
    // two days ago: beyond the minute table's day, pruned from it
    await t.sql`insert into link_stats_minute (link_id, vo, minute, bytes) values (${linkId}, 'atlas', now() - interval '2 days', 1)`;

    const daemon = createLinkStats({ sql: t.sql, log: silentLogger });
    await daemon.runOnce();
    const rows = async () => t.sql`select vo, minute, bytes, files_done, files_failed, failed_by_class, duration_ms_sum from link_stats_minute order by vo, minute`;
    const first = await rows();
    expect(first.map((r) => ({ ...r }))).toEqual([
      { vo: 'atlas', minute: tenAgo, bytes: 12000, files_done: 2, files_failed: 2, failed_by_class: { ChecksumMismatch: 1, Timeout: 1 }, duration_ms_sum: 4000 },
      { vo: 'cms', minute: tenAgo, bytes: 600, files_done: 1, files_failed: 0, failed_by_class: {}, duration_ms_sum: 500 },
    ]);
    await daemon.runOnce();
    expect(await rows()).toEqual(first);
    const [hour] = await t.sql`select sum(bytes)::bigint as bytes, sum(files_failed)::int as failed from link_stats_hour where link_id = ${linkId}`;
    expect(hour).toEqual({ bytes: 12600, failed: 2 });

    const from = new Date(tenAgo.getTime() - 5 * 60_000).toISOString();
    const root = await t.call('GET', `/v1/links/${linkId}/stats?from=${from}&step=60`);
    expect(root.status).toBe(200);
    const p = root.body.points.find((x: { t: string }) => x.t === tenAgo.toISOString());
    expect(p).toMatchObject({ bytes: 12600, bytes_per_second: 210, files_done: 3, files_failed: 2, failed_by_class: { ChecksumMismatch: 1, Timeout: 1 }, mean_duration_ms: 1500 });
    expect(root.body.points.length).toBeGreaterThanOrEqual(15);
    expect(root.body.by_vo.map((r: { vo: string }) => r.vo).sort()).toEqual(['atlas', 'cms']);

    // a VO caller sees its own VO only
    const cms = await t.call('GET', `/v1/links/${linkId}/stats?from=${from}&step=60`, { token: await t.token('cms', 'admin') });
    expect(cms.body.points.find((x: { t: string }) => x.t === tenAgo.toISOString())).toMatchObject({ bytes: 600, files_failed: 0 });
    expect(JSON.stringify(cms.body)).not.toContain('atlas');

    // hourly steps read the hour table
    const hourly = await t.call('GET', `/v1/links/${linkId}/stats?from=${new Date(now.getTime() - 3 * 3600_000).toISOString()}&step=3600`);
    expect(hourly.body.points.reduce((s: number, x: { bytes: number }) => s + x.bytes, 0)).toBe(12600);
  });

  it('reads minutes the rollup has not reached live from the attempts', async () => {
    await attempt('atlas', new Date(), 5000, 200);
    const r = await t.call('GET', `/v1/links/${linkId}/stats?from=${new Date(Date.now() - 120_000).toISOString()}`);
    expect(r.body.points.at(-1)).toMatchObject({ bytes: 5000, files_done: 1 });
  });

  it('refuses ranges it cannot serve, and unknown links', async () => {
    expect((await t.call('GET', `/v1/links/${linkId}/stats?step=90`)).body.error.code).toBe('InvalidStep');
    expect((await t.call('GET', `/v1/links/${linkId}/stats?from=2020-01-01T00:00:00Z&step=60`)).body.error.code).toBe('TooManyPoints');
    expect((await t.call('GET', '/v1/links/999999/stats')).status).toBe(404);
  });
});
