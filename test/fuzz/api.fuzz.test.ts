import fc from 'fast-check';
import { SignJWT, generateKeyPair } from 'jose';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_ALG } from '../../core/auth.ts';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';
import { snapshot } from '../helpers/snapshot.ts';

/**
 * Bad-input fuzz (issue 10.4): thousands of malformed and hostile requests at every route the
 * OpenAPI document lists, from every kind of caller (no token, malformed, expired, forged,
 * wrong audience, unknown issuer, root, both VOs' admins and users). For each request:
 *
 * - the app answers (never throws) and never with a 5xx;
 * - a rejected request (4xx) leaves a digest of the whole database unchanged;
 * - nothing only VO "atlas" knows (a metadata value, a hashed replica path, a rule comment, an
 *   S3 secret) reaches any other caller, and the S3 secret reaches nobody.
 *
 * Failures are collected (not shrunk) so that one run lists every distinct problem, grouped by
 * route, status and code. Bounded for CI: FUZZ_RUNS requests (default 2000), seed FUZZ_SEED.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20240611);

const SECRET_META = 'atlas-private-meta-7f3a';
const SECRET_COMMENT = 'atlas-private-comment-91c2';
const SECRET_S3 = 'atlas-s3-secret-key-c0ffee';

let t: TestApp;
type Caller = { label: string; header?: string; vo?: 'atlas' | 'cms' | 'root' };
let callers: Caller[] = [];
let atlasPath = '';
let atlasRuleId = '';
let openapi: { paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } };

interface Operation {
  parameters?: Array<{ in: 'path' | 'query' | 'header'; name: string; required?: boolean; schema?: Schema }>;
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  additionalProperties?: Schema | boolean;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  format?: string;
  default?: unknown;
};

beforeAll(async () => {
  t = await createTestApp();
  const atlas = await t.seedVo('atlas', { rses: ['ATLAS_DISK', 'ATLAS_TAPE'], endpoint: 'shared' });
  const cms = await t.seedVo('cms', { rses: ['CMS_DISK'], endpoint: 'shared' });
  expectOk(await t.call('POST', '/v1/scopes', { token: atlas.admin, body: { name: 'atlasscope', account: 'admin' } }));
  expectOk(
    await t.call('POST', '/v1/dids', {
      token: atlas.admin,
      body: {
        dids: [
          { scope: 'atlasscope', name: 'f1', bytes: 10, adler32: '0000000a', meta: { secret: SECRET_META, run: 7 } },
          { scope: 'atlasscope', name: 'f2', bytes: 10, adler32: '0000000a' },
          { scope: 'atlasscope', name: 'ds', type: 'DATASET' },
        ],
      },
    }),
  );
  expectOk(await t.call('POST', '/v1/dids/atlasscope/ds/children', { token: atlas.admin, body: { children: [{ scope: 'atlasscope', name: 'f1' }] } }));
  expectOk(await t.call('POST', '/v1/replicas', { token: atlas.admin, body: { rse: 'ATLAS_DISK', replicas: [{ scope: 'atlasscope', name: 'f1' }] } }));
  atlasPath = (await t.call('GET', '/v1/dids/atlasscope/f1/replicas', { token: atlas.admin })).body.items[0].replicas[0].path;
  expectOk(await t.call('POST', '/v1/endpoints', { body: { name: 's3-shared', url: 'http://127.0.0.1:9', kind: 's3' } }));
  expectOk(
    await t.call('POST', '/v1/rses', {
      token: atlas.admin,
      body: { name: 'ATLAS_S3', endpoint: 's3-shared', prefix: '/atlas', protocol_settings: { bucket: 'atlas-bucket', access_key_id: 'AKIAATLAS', secret_access_key: SECRET_S3 } },
    }),
  );
  const rule = await t.call('POST', '/v1/rules', { token: atlas.admin, body: { dids: [{ scope: 'atlasscope', name: 'ds' }], copies: 1, rse_expression: 'ATLAS_TAPE', comment: SECRET_COMMENT } });
  atlasRuleId = rule.status === 201 ? rule.body.ids[0] : randomUUID();
  // cms gets data of its own, so that its reads have something to find.
  expectOk(await t.call('POST', '/v1/dids', { token: cms.admin, body: { dids: [{ scope: 'data', name: 'c1', bytes: 5, adler32: '00000005' }] } }));

  const bearer = (tok: string) => `Bearer ${tok}`;
  const mint = async (claims: Record<string, unknown>, opts: { exp?: number; aud?: string; iss?: string; key?: CryptoKey; sub?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: LOCAL_ALG, kid: t.issuer.jwks.keys[0]?.kid })
      .setIssuer(opts.iss ?? t.issuer.issuer)
      .setSubject(opts.sub ?? 'admin')
      .setAudience(opts.aud ?? 'sluice')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(opts.exp ?? Math.floor(Date.now() / 1000) + 600)
      .sign(opts.key ?? t.issuer.privateKey);
  const other = (await generateKeyPair(LOCAL_ALG)).privateKey;
  const valid = atlas.admin;
  const [h, p, s] = valid.split('.');
  callers = [
    { label: 'atlas-admin', header: bearer(atlas.admin), vo: 'atlas' },
    { label: 'atlas-user', header: bearer(atlas.user), vo: 'atlas' },
    { label: 'cms-admin', header: bearer(cms.admin), vo: 'cms' },
    { label: 'cms-user', header: bearer(cms.user), vo: 'cms' },
    { label: 'root', header: bearer(t.rootToken), vo: 'root' },
    { label: 'none' },
    { label: 'empty', header: '' },
    { label: 'basic', header: 'Basic YWRtaW46YWRtaW4=' },
    { label: 'garbage', header: 'Bearer not.a.jwt' },
    { label: 'bearer-only', header: 'Bearer ' },
    { label: 'huge', header: `Bearer ${'a'.repeat(20_000)}.b.c` },
    { label: 'alg-none', header: bearer(`${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`) },
    { label: 'forged-sig', header: bearer(`${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`) },
    { label: 'forged-payload', header: bearer(`${h}.${Buffer.from(JSON.stringify({ iss: t.issuer.issuer, sub: 'admin', vo: 'cms', aud: 'sluice', exp: 9e9 })).toString('base64url')}.${s}`) },
    { label: 'expired', header: bearer(await mint({ vo: 'atlas' }, { exp: Math.floor(Date.now() / 1000) - 3600 })) },
    { label: 'wrong-audience', header: bearer(await mint({ vo: 'atlas' }, { aud: 'not-sluice' })) },
    { label: 'unknown-issuer', header: bearer(await mint({ vo: 'atlas' }, { iss: 'https://evil.example' })) },
    { label: 'other-key', header: bearer(await mint({ vo: 'atlas' }, { key: other })) },
    { label: 'unknown-vo', header: bearer(await mint({ vo: 'nosuchvo' })) },
    { label: 'unknown-account', header: bearer(await mint({ vo: 'atlas' }, { sub: 'mallory' })) },
    { label: 'vo-not-string', header: bearer(await mint({ vo: ['atlas'] })) },
    { label: 'root-sub-with-vo', header: bearer(await mint({ vo: 'cms' }, { sub: 'root' })) },
  ];
  openapi = (await t.call('GET', '/openapi.json', { token: null })).body;
}, 120_000);
afterAll(() => t?.close());

// ---- hostile values ------------------------------------------------------------------------------

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const names = () => [
  'atlas', 'cms', 'ATLAS_DISK', 'ATLAS_TAPE', 'ATLAS_S3', 'CMS_DISK', 'atlasscope', 'data', 'user.alice', 'f1', 'f2', 'ds', 'c1',
  'admin', 'alice', 'shared', 's3-shared', atlasRuleId, randomUUID(), '1', '0', '-1',
];
const hostileStrings = [
  '', ' ', '*', '?', '%', '_', '\\', "'", '"', "'; drop table dids; --", "' or '1'='1", '1; select pg_sleep(5)', '$1', '${x}',
  '../', '../../etc/passwd', '..', '.', '%2e%2e', '%2e%2e%2f', '..%2f..%2f', '/', '//', 'a/b', 'a\u0000b', '\u0000', '\u202e', '\ud800',
  'ＡＴＬＡＳ', 'Ω≈ç√', '🙂'.repeat(50), '\r\nX-Injected: 1', '<script>alert(1)</script>', 'null', 'undefined', 'NaN', 'true', '[]', '{}',
  'tier=1&', '(', ')', '|||', 'A\\B\\C', 'key<', 'x'.repeat(300), 'y'.repeat(10_000),
];
const bigString = () => 'z'.repeat(100_000);

function resolve(s: Schema | undefined): Schema | undefined {
  let cur = s;
  for (let i = 0; cur?.$ref && i < 10; i++) cur = openapi.components?.schemas?.[cur.$ref.split('/').pop()!];
  return cur;
}

/** A value for a schema: mostly plausible (so requests reach deep code), sometimes hostile. */
function valueFor(schema: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(schema);
  const hostile = fc.oneof(
    fc.constantFrom<unknown>(...hostileStrings, null, 0, -1, 1e308, -0, 2 ** 63, 1.5, true, false, [], {}, [null], { __proto__: { a: 1 } }, { constructor: { prototype: {} } }),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.integer(),
    fc.double(),
  );
  if (!s || depth > 4) return hostile;
  const variants = s.anyOf ?? s.oneOf;
  if (variants?.length) return fc.oneof({ weight: 4, arbitrary: fc.oneof(...variants.map((v) => valueFor(v, depth + 1))) }, { weight: 1, arbitrary: hostile });
  if (s.allOf?.length) return valueFor(s.allOf[0], depth + 1);
  if (s.enum?.length) return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...s.enum) }, { weight: 1, arbitrary: hostile });
  const type = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  let plausible: fc.Arbitrary<unknown>;
  switch (type) {
    case 'string':
      plausible =
        s.format === 'uuid'
          ? fc.oneof(fc.uuid(), fc.constant(atlasRuleId))
          : fc.oneof(fc.constantFrom(...names()), fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/), fc.constantFrom('tier=1', 'ATLAS_DISK|CMS_DISK', '*', 'run=7', 'secret=x'));
      break;
    case 'integer':
    case 'number':
      plausible = fc.oneof(fc.integer({ min: s.minimum ?? -5, max: Math.min(s.maximum ?? 10_000, 10_000) }), fc.constantFrom(0, 1, 2, 3, 100));
      break;
    case 'boolean':
      plausible = fc.boolean();
      break;
    case 'array':
      plausible = fc.array(valueFor(s.items, depth + 1), { minLength: Math.min(s.minItems ?? 0, 3), maxLength: 3 });
      break;
    case 'object': {
      const props = Object.entries(s.properties ?? {});
      const extra = s.additionalProperties && typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
      plausible = fc
        .tuple(
          fc.record(Object.fromEntries(props.map(([k, v]) => [k, valueFor(v, depth + 1)])), { requiredKeys: (s.required ?? []).filter((k) => props.some(([p]) => p === k)) }),
          extra ? fc.dictionary(fc.constantFrom('run', 'tier', 'secret', 'country', '__proto__', 'a b', ''), valueFor(extra, depth + 1), { maxKeys: 3 }) : fc.constant({}),
          fc.option(fc.constantFrom('unknown_field', '__proto__', 'vo', 'id', 'account'), { nil: undefined }),
        )
        .map(([known, more, junk]) => ({ ...more, ...known, ...(junk ? { [junk]: 'x' } : {}) }));
      break;
    }
    default:
      plausible = fc.oneof(fc.constantFrom(...names()), fc.integer());
  }
  return fc.oneof({ weight: 5, arbitrary: plausible }, { weight: 1, arbitrary: hostile });
}

/** Raw bodies that no schema describes: broken JSON, deep nesting, huge values, wrong media. */
const rawBody = fc.oneof(
  fc.constantFrom(
    '',
    '{',
    '{"a":',
    'null',
    '[]',
    '"string"',
    '123',
    'true',
    '{"dids": "not an array"}',
    '{"__proto__": {"admin": true}}',
    '\u0000\u0000',
    '{"a":"\u0000"}',
    '\ufeff{}',
  ),
  fc.constant(null).map(() => deep(10_000)),
  fc.constant(null).map(() => deepObject(10_000)),
  fc.constant(null).map(() => JSON.stringify({ name: bigString(), scope: bigString(), dids: [{ scope: bigString(), name: 'x' }] })),
  fc.constant(null).map(() => JSON.stringify({ files: Array.from({ length: 1500 }, (_, i) => ({ scope: 'atlasscope', name: `f${i}` })) })),
  fc.constant(null).map(() => JSON.stringify({ dids: Array.from({ length: 10_001 }, (_, i) => ({ scope: 'data', name: `n${i}` })) })),
);

interface FuzzRequest {
  route: string;
  method: string;
  path: string;
  query: string;
  body?: string;
  contentType?: string;
  caller: number;
}

/** encodeURIComponent that survives lone surrogates (they become U+FFFD, as a URL parser would make them). */
const enc = (s: string) => encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));

function encodeParam(v: unknown, raw: boolean): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined';
  // Sometimes unencoded, so that '../' and '%2e%2e' reach the router as a client could send them.
  return raw ? s.replace(/[?#\s]/g, enc) : enc(s);
}

function requestArb(): fc.Arbitrary<FuzzRequest> {
  const ops = Object.entries(openapi.paths).flatMap(([path, methods]) =>
    Object.entries(methods)
      .filter(([m]) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
      .map(([m, op]) => ({ path, method: m.toUpperCase(), op })),
  );
  return fc.oneof(
    ...ops.map(({ path, method, op }) => {
      const params = op.parameters ?? [];
      const pathParams = params.filter((p) => p.in === 'path');
      const queryParams = params.filter((p) => p.in === 'query');
      const schema = op.requestBody?.content?.['application/json']?.schema;
      const pathArb = fc.tuple(
        ...pathParams.map((p) =>
          fc.tuple(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...names()) }, { weight: 2, arbitrary: valueFor(p.schema) }, { weight: 1, arbitrary: fc.constant(null).map(bigString) }), fc.boolean()),
        ),
      );
      const queryArb = fc.tuple(
        fc.array(fc.tuple(fc.constantFrom(...queryParams.map((q) => q.name), 'unknown', 'vo', '__proto__'), fc.oneof(valueFor(undefined), fc.constantFrom(...names(), 'tier=1', 'run>5', 'secret=' + 'x')), fc.boolean()), { maxLength: 4 }),
      );
      const bodyArb = fc.oneof(
        { weight: 6, arbitrary: schema ? valueFor(schema).map((v) => ({ body: JSON.stringify(v) ?? 'null', contentType: 'application/json' })) : fc.constant({ body: undefined, contentType: undefined }) },
        { weight: 2, arbitrary: rawBody.map((b) => ({ body: b, contentType: 'application/json' })) },
        { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x').map((ct) => ({ body: 'dids=1', contentType: ct })) },
        { weight: 1, arbitrary: fc.constant({ body: undefined, contentType: undefined }) },
      );
      return fc.record({ params: pathArb, query: queryArb, body: bodyArb, // Mostly real callers, so that requests get past authentication into the handlers.
        caller: fc.oneof({ weight: 7, arbitrary: fc.nat({ max: 4 }) }, { weight: 3, arbitrary: fc.nat({ max: callers.length - 1 }) }), methodSwap: fc.oneof({ weight: 19, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE') }) }).map(({ params, query, body, caller, methodSwap }) => {
        let i = 0;
        const url = path.replace(/\{[^}]+\}/g, () => {
          const [v, raw] = params[i++];
          return encodeParam(v, raw);
        });
        const q = query[0]
          .map(([k, v, repeat]) => {
            const e = `${enc(k)}=${enc(typeof v === 'string' ? v : JSON.stringify(v) ?? '')}`;
            return repeat ? `${e}&${e}` : e;
          })
          .join('&');
        const m = methodSwap ?? method;
        return { route: `${method} ${path}`, method: m, path: url, query: q, ...(m === 'GET' ? {} : body), caller };
      });
    }),
  );
}

// ---- the run -------------------------------------------------------------------------------------

describe('bad-input fuzz over every route', () => {
  it(`${RUNS} hostile requests: no 5xx, no throw, rejected requests change nothing, no cross-VO leak`, async () => {
    const requests = fc.sample(requestArb(), { numRuns: RUNS, seed: SEED });
    const failures = new Map<string, { count: number; example: string }>();
    const fail = (key: string, example: string) => {
      const f = failures.get(key);
      if (f) f.count++;
      else failures.set(key, { count: 1, example: example.slice(0, 600) });
    };
    const secretsFor = (c: Caller) => (c.vo === 'atlas' ? [SECRET_S3] : [SECRET_S3, SECRET_META, SECRET_COMMENT, atlasPath]);
    const routesHit = new Set<string>();
    const statuses: Record<string, number> = {};
    let digest = await snapshot(t.sql);
    const started = Date.now();
    for (const r of requests) {
      const caller = callers[r.caller];
      const headers: Record<string, string> = {};
      if (caller.header !== undefined) headers.authorization = caller.header;
      if (r.contentType) headers['content-type'] = r.contentType;
      const url = `${r.path}${r.query ? `?${r.query}` : ''}`;
      const describeReq = () => `${caller.label} ${r.method} ${url.slice(0, 300)} ${r.body ? `body ${r.body.slice(0, 200)}` : ''}`;
      let status: number;
      let text: string;
      try {
        const res = await t.app.request(url.startsWith('/') ? url : `/${url}`, { method: r.method, headers, body: r.body });
        status = res.status;
        text = await res.text();
      } catch (e) {
        fail(`${r.route}: app threw ${(e as Error).name}`, `${describeReq()} -> ${(e as Error).stack}`);
        continue;
      }
      routesHit.add(r.route);
      let code = '';
      try {
        code = JSON.parse(text)?.error?.code ?? '';
      } catch {
        // not JSON
      }
      statuses[`${status}${code ? ` ${code}` : ''}`] = (statuses[`${status}${code ? ` ${code}` : ''}`] ?? 0) + 1;
      if (process.env.FUZZ_DEBUG !== undefined && `${status} ${code}` === process.env.FUZZ_DEBUG) console.log(describeReq().slice(0, 300), '->', text.slice(0, 200));
      // Every refusal is the documented envelope with a stable, non-empty code.
      if (status >= 400 && !(typeof code === 'string' && /^[A-Z][A-Za-z0-9]+$/.test(code))) fail(`${r.route}: ${status} without an error code`, `${describeReq()} -> ${text.slice(0, 200)}`);
      if (status >= 500) fail(`${r.route}: ${status} ${code}`, `${describeReq()} -> ${text.slice(0, 300)}`);
      for (const secret of secretsFor(caller)) if (secret && text.includes(secret)) fail(`${r.route}: leaks ${secret === SECRET_S3 ? 'the S3 secret' : "atlas's private data"} to ${caller.label}`, describeReq());
      const now = await snapshot(t.sql);
      if (status >= 400 && now !== digest) {
        const changed = now.split(',').filter((p) => !digest.split(',').includes(p)).map((p) => p.split(':')[0]);
        fail(`${r.route}: ${status} ${code} changed ${changed.join(', ')}`, describeReq());
      }
      digest = now;
    }
    const seconds = (Date.now() - started) / 1000;
    console.log(`fuzz: ${requests.length} requests in ${seconds.toFixed(1)} s over ${routesHit.size} routes (seed ${SEED}); statuses ${JSON.stringify(statuses)}`);
    expect(routesHit.size, 'every route in /openapi.json was exercised').toBeGreaterThanOrEqual(Math.min(Object.keys(openapi.paths).length, RUNS / 20));
    expect(Object.fromEntries([...failures].map(([k, v]) => [k, `${v.count}x, e.g. ${v.example}`]))).toEqual({});
  }, 600_000);
});
