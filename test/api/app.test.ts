import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await t.seedVo('atlas');
});
afterAll(() => t.close());

describe('request bodies', () => {
  it('refuses a body over 32 MiB with 413 on every method that carries one, and reads stay unaffected', async () => {
    const admin = await t.token('atlas');
    const big = `{"dids":[${'{"scope":"user.admin","name":"x"},'.repeat(1_100_000)}]}`;
    expect(big.length).toBeGreaterThan(32 * 1024 * 1024);
    for (const [method, path] of [['POST', '/v1/dids'], ['DELETE', '/v1/dids/user.admin/ds/children']] as const) {
      const r = await t.call(method, path, { token: admin, raw: big });
      expect(`${method} ${r.status} ${r.body?.error?.code}`).toBe(`${method} 413 RequestTooLarge`);
    }
    const r = await t.call('GET', '/v1/scopes', { token: admin });
    expect(r.status).toBe(200);
  });
});
