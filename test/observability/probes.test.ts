import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.ts';
import { excludedEndpointIds, nextStatus } from '../../core/probes.ts';
import { createEndpointProber } from '../../daemons/endpoint-probes.ts';
import { startFixtureStorage, type FixtureStorage } from '../../fixtures/storage-server.ts';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';

let t: TestApp;
let storage: FixtureStorage;
let root: string;
let epId: number;

beforeAll(async () => {
  t = await createTestApp();
  root = await mkdtemp(join(tmpdir(), 'sluice-probe-'));
  storage = await startFixtureStorage({ root });
  expectOk(await t.call('POST', '/v1/endpoints', { body: { name: 'site1', url: storage.url, kind: 'http' } }));
  await t.seedVo('atlas', { rses: ['DISK'], endpoint: 'site1' });
  await mkdir(join(root, 'atlas', 'disk'), { recursive: true }); // the RSE's area exists at the site
  [{ id: epId }] = await t.sql<{ id: number }[]>`select id from storage_endpoints where name = 'site1'`;
});
afterAll(async () => {
  await storage?.close();
  await t?.close();
  await rm(root, { recursive: true, force: true });
});

const prober = () => createEndpointProber({ sql: t.sql, log: silentLogger }, { everySeconds: 0, excludeAfter: 2, readmitAfter: 2, timeoutMs: 5000 });
const status = async () => (await t.call('GET', '/v1/endpoints/site1/status')).body;

describe('endpoint probes', () => {
  it('writes, reads, checksums and deletes a probe file; the endpoint stays ok', async () => {
    expect(await prober().runOnce()).toBeGreaterThanOrEqual(1);
    const s = await status();
    expect(s.status, JSON.stringify(s)).toBe('ok');
    expect(s.last_probes[0]).toMatchObject({ rse: 'DISK', ok: true });
    // nothing left behind on the storage
    const dir = join(root, 'atlas', 'disk', '.sluice-probes');
    expect(await readdir(dir).catch(() => [])).toEqual([]);
  });

  it('is excluded after consecutive failed rounds (with the reason), and readmitted after good ones', async () => {
    storage.setFaults([{ method: 'PUT', status: 507 }]);
    await prober().runOnce();
    expect((await status()).status).toBe('degraded');
    expect(await excludedEndpointIds(t.sql)).toEqual([]);
    await prober().runOnce();
    const s = await status();
    expect(s.status).toBe('excluded');
    expect(s.reason).toMatch(/2 consecutive probe rounds failed; last: write on DISK failed/);
    expect(await excludedEndpointIds(t.sql)).toEqual([epId]);
    expect(await t.sql`select id from usable_endpoints where id = ${epId}`).toHaveLength(0);

    storage.setFaults([]);
    await prober().runOnce();
    expect((await status()).status).toBe('excluded'); // one good round is not enough
    await prober().runOnce();
    expect(await status()).toMatchObject({ status: 'ok', reason: 'readmitted after 2 good probe rounds' });
    expect(await excludedEndpointIds(t.sql)).toEqual([]);
  });

  it('only one prober probes an endpoint at a time', async () => {
    storage.setFaults([{ method: 'PUT', bytesPerSecond: 2048 }]); // a probe that takes half a second
    try {
      const first = prober().runOnce();
      await new Promise((r) => setTimeout(r, 100));
      const second = await prober().runOnce();
      expect([await first, second]).toEqual([1, 0]);
    } finally {
      storage.setFaults([]);
    }
  });

  it('root bans and unbans by hand; probes do not lift a ban; a VO admin may not ban', async () => {
    const atlasAdmin = await t.token('atlas', 'admin');
    expect((await t.call('PUT', '/v1/endpoints/site1/ban', { token: atlasAdmin, body: { reason: 'x' } })).status).toBe(403);
    const r = await t.call('PUT', '/v1/endpoints/site1/ban', { body: { reason: 'disk server replacement, ticket 123' } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'banned', reason: 'disk server replacement, ticket 123', banned_by: 'root' });
    await prober().runOnce();
    expect((await status()).status).toBe('banned');
    expect(await excludedEndpointIds(t.sql)).toEqual([epId]);
    expect((await t.call('DELETE', '/v1/endpoints/site1/ban')).body.status).toBe('ok');
    expect((await t.call('DELETE', '/v1/endpoints/site1/ban')).status).toBe(409);
    expect((await t.call('PUT', '/v1/endpoints/nope/ban', { body: { reason: 'x' } })).status).toBe(404);
  });

  it('reports daily availability and reliability (R = A without a downtime calendar)', async () => {
    // a synthetic timeline: yesterday half up, half excluded
    const y = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()) - 86400_000);
    await t.sql`delete from endpoint_status_log where endpoint_id = ${epId}`;
    await t.sql`insert into endpoint_status_log (endpoint_id, status, at) values (${epId}, 'ok', ${y}), (${epId}, 'excluded', ${new Date(y.getTime() + 12 * 3600_000)}), (${epId}, 'ok', ${new Date(y.getTime() + 86400_000)})`;
    const r = await t.call('GET', '/v1/endpoints/site1/availability?days=3');
    expect(r.status).toBe(200);
    const [before, yesterday, today] = r.body.days;
    expect(r.body.days, JSON.stringify(r.body)).toHaveLength(3);
    expect(before.availability, JSON.stringify(r.body)).toBeNull();
    expect(yesterday).toMatchObject({ day: y.toISOString().slice(0, 10), availability: 0.5, reliability: 0.5, observed_seconds: 86400, up_seconds: 43200 });
    expect(today.availability).toBe(1);
    expect(today.probes).toBeGreaterThan(0);
  });

  it('nextStatus: a partial failure degrades without excluding', () => {
    const base = { status: 'ok' as const, status_reason: null, probe_failures: 0, probe_successes: 5 };
    const r = nextStatus(base, [
      { rseId: 1, rse: 'A', ok: true, durationMs: 1 },
      { rseId: 2, rse: 'B', ok: false, phase: 'read', errorCode: 'Unauthorized', message: '401', durationMs: 1 },
    ], { excludeAfter: 1, readmitAfter: 1 });
    expect(r.status).toBe('degraded');
    expect(r.status_reason).toMatch(/1 of 2 RSEs fail probes: read on B failed \(Unauthorized\)/);
  });
});
