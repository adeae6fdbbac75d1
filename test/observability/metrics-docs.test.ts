import { compileErrors, validate } from '@readme/openapi-parser';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordTransfer } from '../../core/metrics.ts';
import { createTestApp, type TestApp } from '../helpers/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await t.seedVo('atlas');
});
afterAll(() => t?.close());

async function scrape(): Promise<{ status: number; type: string | null; text: string }> {
  const res = await t.app.request('/metrics');
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));

describe('/metrics', () => {
  it('serves Prometheus text without a token, with HTTP, daemon, transfer and database metrics', async () => {
    await t.call('GET', '/v1/rses'); // an HTTP request to count
    await t.call('GET', '/v1/rules/not-a-uuid');
    recordTransfer({ link: 7, vo: 'atlas', mode: 'tpc-pull', state: 'DONE', bytes: 1234, durationMs: 1500 });
    recordTransfer({ link: 7, vo: 'atlas', mode: 'stream', state: 'FAILED', bytes: 10, durationMs: 200, errorCode: 'ChecksumMismatch' });
    const m = await scrape();
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain/);
    expect(m.text).toMatch(/sluice_http_requests_total\{method="GET",route="\/v1\/rses",status="403"\} \d+/);
    // the route pattern, not the raw path: label values stay bounded
    expect(m.text).toContain('route="/v1/rules/:id"');
    expect(m.text).not.toContain('not-a-uuid');
    expect(m.text).toMatch(/sluice_transfer_bytes_total\{link="7",vo="atlas"\} 1234/);
    expect(m.text).toMatch(/sluice_transfer_failures_total\{link="7",vo="atlas",error_code="ChecksumMismatch"\} 1/);
    expect(m.text).toMatch(/sluice_transfer_duration_seconds_bucket\{le="2",link="7",vo="atlas",state="DONE"\} 1/);
    expect(m.text).toContain('sluice_db_up 1');
    expect(m.text).toMatch(/sluice_db_pool_max_connections \d+/);
    expect(m.text).toMatch(/sluice_endpoint_status\{endpoint="ep-atlas",status="ok"\} 1/);
    expect(m.text).toContain('# TYPE sluice_daemon_iteration_duration_seconds histogram');
    expect(m.text).toContain('sluice_process_cpu_seconds_total');
  });

  it('counts queue depths from the database at scrape time', async () => {
    const [rse] = await t.sql<{ id: number }[]>`select id from rses where name = 'SITE_A'`;
    await t.sql`insert into dids (vo, scope, name, type, account, bytes, adler32) values ('atlas', 'data', 'q1', 'FILE', 'admin', 5, '00000001')`;
    await t.sql`insert into requests (vo, scope, name, dest_rse_id, bytes, adler32) values ('atlas', 'data', 'q1', ${rse.id}, 5, '00000001')`;
    await new Promise((r) => setTimeout(r, 2100)); // past the scrape cache
    expect((await scrape()).text).toMatch(/sluice_requests\{vo="atlas",state="QUEUED"\} 1/);
  });

  it.skipIf(!PROMTOOL)('passes promtool check metrics', async () => {
    const { text } = await scrape();
    const r = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
  });
  if (!PROMTOOL) it.skip('promtool check metrics: promtool not installed (Debian package prometheus; .ci/install-test-deps.sh installs it)', () => {});
});

describe('/openapi.json and /docs', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const res = await t.app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toMatch(/^3\.1\./);
    const dir = await mkdtemp(join(tmpdir(), 'sluice-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      await writeFile(file, JSON.stringify(doc));
      const result = await validate(file);
      expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // the observability routes are in it, generated from their definitions
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/usage', '/v1/endpoints/{name}/ban', '/v1/endpoints/{name}/availability', '/v1/links/{id}/stats']));
  });

  it('serves interactive docs with their assets from the API itself (no CDN)', async () => {
    const page = await t.app.request('/docs');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('swagger-ui');
    expect(html).not.toMatch(/https?:\/\//);
    for (const src of html.match(/(?:src|href)="([^"]+)"/g)!.map((m) => m.split('"')[1])) {
      const asset = await t.app.request(src);
      expect(asset.status, src).toBe(200);
      expect((await asset.arrayBuffer()).byteLength, src).toBeGreaterThan(10);
    }
    expect((await t.app.request('/docs/assets/..%2Fpackage.json')).status).toBe(404);
  });
});
