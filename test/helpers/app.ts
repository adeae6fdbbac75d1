import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../../api/app.ts';
import { createVerifier, loadOrCreateLocalIssuer, mintToken, registerLocalIssuer, type LocalIssuer } from '../../core/auth.ts';
import { createLogger } from '../../core/log.ts';
import { createPolicyRegistry } from '../../policies/registry.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export interface CallResult<T = any> {
  status: number;
  body: T;
}

/**
 * The API over a fresh database, driven in-process with app.request(); tokens are minted by a
 * local issuer trusted in that database, exactly as in the embedded server.
 */
export async function createTestApp() {
  const db: TestDatabase = await createTestDatabase();
  const home = await mkdtemp(join(tmpdir(), 'sluice-test-home-'));
  const issuer: LocalIssuer = await loadOrCreateLocalIssuer(home);
  await registerLocalIssuer(db.sql, issuer, 'sluice');
  const policies = createPolicyRegistry(db.sql, { cacheMs: 0 });
  // TEST_LOG_LEVEL=debug shows the server's logs (e.g. the cause of an unexpected 500).
  const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false });
  const app = createApp({ sql: db.sql, log, verifier: createVerifier(db.sql, { audience: 'sluice', cacheMs: 0 }), policies });

  const token = (vo?: string, account = 'admin') => mintToken(issuer, { vo, account: vo ? account : undefined, lifetimeSeconds: 600, audience: 'sluice' });
  const rootToken = await token();

  async function call<T = any>(method: string, path: string, options: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<CallResult<T>> {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    const tok = options.token === undefined ? rootToken : options.token;
    if (tok) headers.authorization = `Bearer ${tok}`;
    let body: string | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    const res = await app.request(path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // keep text
    }
    return { status: res.status, body: parsed as T };
  }

  /** A VO with an admin, a user, a scope per account, an endpoint and `rses` RSEs (tier/country attributes). */
  async function seedVo(vo: string, options: { rses?: string[]; endpoint?: string } = {}) {
    const endpoint = options.endpoint ?? `ep-${vo}`;
    expectOk(await call('POST', '/v1/vos', { body: { name: vo } }));
    const existing = await call('GET', `/v1/endpoints/${endpoint}`);
    if (existing.status === 404) {
      expectOk(await call('POST', '/v1/endpoints', { body: { name: endpoint, url: `http://127.0.0.1:${10000 + Math.floor(Math.random() * 50000)}`, kind: 'http' } }));
    }
    const admin = await token(vo, 'admin');
    expectOk(await call('POST', '/v1/accounts', { token: admin, body: { name: 'alice', role: 'user' } }));
    const user = await token(vo, 'alice');
    expectOk(await call('POST', '/v1/scopes', { token: admin, body: { name: 'data', account: 'admin' } }));
    expectOk(await call('POST', '/v1/scopes', { token: admin, body: { name: 'user.alice', account: 'alice' } }));
    const rses = options.rses ?? ['SITE_A', 'SITE_B'];
    for (const [i, name] of rses.entries()) {
      expectOk(await call('POST', '/v1/rses', { token: admin, body: { name, endpoint, prefix: `/${vo}/${name.toLowerCase()}`, attributes: { tier: i === 0 ? 0 : 1, country: i % 2 ? 'FR' : 'CH' } } }));
    }
    return { vo, admin, user, endpoint, rses };
  }

  return {
    db,
    sql: db.sql,
    app,
    issuer,
    policies,
    token,
    rootToken,
    call,
    seedVo,
    async close() {
      await db.drop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

export type TestApp = Awaited<ReturnType<typeof createTestApp>>;

export function expectOk(r: CallResult): CallResult {
  if (r.status >= 300) throw new Error(`expected success, got ${r.status}: ${JSON.stringify(r.body)}`);
  return r;
}

/** Files with valid-looking metadata for bulk registration. */
export function makeFiles(scope: string, n: number, prefix = 'file') {
  return Array.from({ length: n }, (_, i) => ({
    scope,
    name: `${prefix}.${String(i).padStart(6, '0')}`,
    type: 'FILE' as const,
    bytes: 1000 + i,
    adler32: (0x10000000 + i).toString(16).slice(-8),
  }));
}
