import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectOk, makeFiles, type TestApp } from '../helpers/app.ts';

let t: TestApp;
let admin: string;
let user: string;

beforeAll(async () => {
  t = await createTestApp();
  ({ admin, user } = await t.seedVo('atlas', { rses: ['CERN_DISK', 'IN2P3_DISK', 'ND_TAPE'] }));
});
afterAll(() => t.close());

/** Row counts of every catalogue table: a rejected request must leave them all unchanged. */
async function counts() {
  const [row] = await t.sql`
    select (select count(*) from dids)::int as dids, (select count(*) from did_contents)::int as contents,
           (select count(*) from replicas)::int as replicas, (select count(*) from rses)::int as rses,
           (select count(*) from rse_attributes)::int as attrs, (select count(*) from accounts)::int as accounts,
           (select count(*) from scopes)::int as scopes, (select count(*) from vos)::int as vos,
           (select count(*) from storage_endpoints)::int as endpoints, (select count(*) from distances)::int as distances,
           (select count(*) from bad_replicas)::int as bad`;
  return row;
}

async function rejected(method: string, path: string, body: unknown, status: number, code: string, token = admin) {
  const before = await counts();
  const r = await t.call(method, path, { token, body });
  expect(r.body?.error?.code, JSON.stringify(r.body)).toBe(code);
  expect(r.status).toBe(status);
  expect(typeof r.body.error.message).toBe('string');
  expect(await counts()).toEqual(before);
  return r;
}

describe('health and docs', () => {
  it('answers /health without a token and serves an OpenAPI document of the routes', async () => {
    const h = await t.call('GET', '/health', { token: null });
    expect(h).toEqual({ status: 200, body: { status: 'ok', version: expect.any(String) } });
    const doc = await t.call('GET', '/openapi.json', { token: null });
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/dids', '/v1/dids/{scope}/{name}/children', '/v1/rses/{name}', '/v1/replicas']));
  });

  it('answers unknown routes with a JSON 404', async () => {
    const r = await t.call('GET', '/v1/nothing-here', { token: admin });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('RouteNotFound');
  });
});

describe('DIDs', () => {
  it('registers files, a dataset and a container, attaches, lists recursively and closes', async () => {
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: makeFiles('data', 5, 'raw') } }));
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [{ scope: 'data', name: 'ds1', type: 'DATASET' }, { scope: 'data', name: 'ds2', type: 'DATASET' }, { scope: 'data', name: 'cont', type: 'CONTAINER' }] } }));
    const files = makeFiles('data', 5, 'raw').map(({ scope, name }) => ({ scope, name }));
    expect((await t.call('POST', '/v1/dids/data/ds1/children', { token: admin, body: { children: files.slice(0, 3) } })).body).toEqual({ attached: 3 });
    expectOk(await t.call('POST', '/v1/dids/data/ds2/children', { token: admin, body: { children: files.slice(2) } }));
    expectOk(await t.call('POST', '/v1/dids/data/cont/children', { token: admin, body: { children: [{ scope: 'data', name: 'ds1' }, { scope: 'data', name: 'ds2' }] } }));

    const all = await t.call('GET', '/v1/dids/data/cont/files', { token: admin });
    expect(all.body.items.map((f: { name: string }) => f.name)).toEqual(files.map((f) => f.name)); // raw.2 is in both datasets, listed once
    const cont = await t.call('GET', '/v1/dids/data/cont', { token: admin });
    expect(cont.body).toMatchObject({ type: 'CONTAINER', length: 5, bytes: 1000 + 1001 + 1002 + 1003 + 1004, open: true });

    // Pagination walks the whole set exactly once.
    const first = await t.call('GET', '/v1/dids/data/cont/files?limit=2', { token: admin });
    expect(first.body.items).toHaveLength(2);
    const second = await t.call('GET', `/v1/dids/data/cont/files?limit=10&cursor=${first.body.next}`, { token: admin });
    expect([...first.body.items, ...second.body.items].map((f: { name: string }) => f.name)).toEqual(files.map((f) => f.name));
    expect(second.body.next).toBeNull();

    const closed = await t.call('PATCH', '/v1/dids/data/ds1', { token: admin, body: { open: false } });
    expect(closed.body).toMatchObject({ open: false, closed_at: expect.any(String) });
    await rejected('POST', '/v1/dids/data/ds1/children', { children: [files[4]] }, 409, 'DidClosed');
    expect((await t.call('DELETE', '/v1/dids/data/ds2/children', { token: admin, body: { children: [files[4]] } })).body).toEqual({ detached: 1 });
  });

  it('searches metadata with =, > and < filters combined', async () => {
    const dids = [1, 2, 3, 4].map((i) => ({ scope: 'data', name: `evt.${i}`, bytes: 10, adler32: '0000000a', meta: { run: 1000 * i, stream: i % 2 ? 'physics' : 'express', good: i !== 3 } }));
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids } }));
    const names = async (q: string) => (await t.call('GET', `/v1/dids?scope=data&${q}`, { token: admin })).body.items.map((d: { name: string }) => d.name);
    expect(await names('filter=stream=physics')).toEqual(['evt.1', 'evt.3']);
    expect(await names('filter=run>1500&filter=run<4000')).toEqual(['evt.2', 'evt.3']);
    expect(await names('filter=run>1500&filter=stream=physics')).toEqual(['evt.3']);
    expect(await names('filter=good=false')).toEqual(['evt.3']);
    expect(await names('filter=run=2000')).toEqual(['evt.2']);
    expect(await names('name=evt.*&filter=stream!=physics')).toEqual(['evt.2', 'evt.4']);
    expect(await names('name=evt.?&type=FILE&filter=run>=3000')).toEqual(['evt.3', 'evt.4']);
    // Patterns are literal except * and ?: '%' and '_' do not act as SQL wildcards.
    expect(await names('name=evt%25')).toEqual([]);
    await rejected('GET', '/v1/dids?scope=data&filter=run>abc', undefined, 400, 'InvalidFilter');
    await rejected('GET', '/v1/dids?scope=data&filter=%22%20||%20true', undefined, 400, 'InvalidFilter');
  });

  it('merges metadata and removes keys set to null', async () => {
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [{ scope: 'data', name: 'm1', bytes: 1, adler32: '00000001', meta: { a: 1, b: 'x' } }] } }));
    const r = await t.call('PATCH', '/v1/dids/data/m1', { token: admin, body: { meta: { b: null, c: true } } });
    expect(r.body.meta).toEqual({ a: 1, c: true });
  });

  it('rejects bad input with a specific code and writes nothing', async () => {
    const ok = { scope: 'data', name: 'x1', bytes: 1, adler32: '00000001' };
    await rejected('POST', '/v1/dids', { dids: [ok, { ...ok, name: 'x2', adler32: 'xyz' }] }, 400, 'InvalidChecksum');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, adler32: '123456789' }] }, 400, 'InvalidChecksum');
    await rejected('POST', '/v1/dids', { dids: [ok, { ...ok, name: 'x2', bytes: -5 }] }, 400, 'InvalidSize');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, bytes: 1.5 }] }, 400, 'InvalidSize');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, colour: 'red' }] }, 400, 'UnknownField');
    await rejected('POST', '/v1/dids', { dids: [ok], extra: 1 }, 400, 'UnknownField');
    await rejected('POST', '/v1/dids', { dids: [ok, { ...ok, name: 'bad name/with slash' }] }, 400, 'InvalidDidName');
    await rejected('POST', '/v1/dids', { dids: [ok, { ...ok, name: '../etc/passwd' }] }, 400, 'InvalidDidName');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, scope: 'bad scope' }] }, 400, 'InvalidName');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, scope: 'nosuchscope' }] }, 404, 'ScopeNotFound');
    await rejected('POST', '/v1/dids', { dids: [ok, ok] }, 409, 'DuplicateDid');
    await rejected('POST', '/v1/dids', { dids: [{ scope: 'data', name: 'nochk', bytes: 5 }] }, 400, 'MissingChecksum');
    await rejected('POST', '/v1/dids', { dids: [{ scope: 'data', name: 'dsb', type: 'DATASET', bytes: 5 }] }, 400, 'InvalidInput');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, type: 'FOLDER' }] }, 400, 'InvalidType');
    await rejected('POST', '/v1/dids', { dids: [] }, 400, 'InvalidInput');
    await rejected('POST', '/v1/dids', { dids: makeFiles('data', 10_001, 'big') }, 400, 'InvalidInput');
    await rejected('POST', '/v1/dids', { dids: [{ ...ok, meta: { nested: { deep: 1 } } }] }, 400, 'InvalidInput');
    // An existing DID in a bulk request fails the whole request, naming it.
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [ok] } }));
    const dup = await rejected('POST', '/v1/dids', { dids: [{ ...ok, name: 'x9' }, ok] }, 409, 'DuplicateDid');
    expect(dup.body.error.message).toContain('data:x1');
  });

  it('rejects malformed bodies', async () => {
    const before = await counts();
    const malformed = await t.call('POST', '/v1/dids', { token: admin, raw: '{"dids": [' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('MalformedJson');
    const notObject = await t.call('POST', '/v1/dids', { token: admin, raw: '[1,2,3]' });
    expect(notObject.status).toBe(400);
    const wrongType = await t.call('POST', '/v1/dids', { token: admin, raw: 'dids=1', headers: { 'content-type': 'text/plain' } });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.error.code).toBe('UnsupportedMediaType');
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const deepRes = await t.call('POST', '/v1/dids', { token: admin, raw: deep });
    expect(deepRes.status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  it('refuses bad attachments: wrong types, cycles, unknown children, duplicates', async () => {
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [
      { scope: 'data', name: 'c1', type: 'CONTAINER' }, { scope: 'data', name: 'c2', type: 'CONTAINER' }, { scope: 'data', name: 'c3', type: 'CONTAINER' },
      { scope: 'data', name: 'd1', type: 'DATASET' }, { scope: 'data', name: 'f1', bytes: 1, adler32: '00000001' },
    ] } }));
    expectOk(await t.call('POST', '/v1/dids/data/c1/children', { token: admin, body: { children: [{ scope: 'data', name: 'c2' }] } }));
    expectOk(await t.call('POST', '/v1/dids/data/c2/children', { token: admin, body: { children: [{ scope: 'data', name: 'c3' }] } }));
    await rejected('POST', '/v1/dids/data/c3/children', { children: [{ scope: 'data', name: 'c1' }] }, 409, 'CycleDetected');
    await rejected('POST', '/v1/dids/data/c1/children', { children: [{ scope: 'data', name: 'c1' }] }, 409, 'CycleDetected');
    await rejected('POST', '/v1/dids/data/c1/children', { children: [{ scope: 'data', name: 'f1' }] }, 400, 'InvalidAttachment');
    await rejected('POST', '/v1/dids/data/d1/children', { children: [{ scope: 'data', name: 'c3' }] }, 400, 'InvalidAttachment');
    await rejected('POST', '/v1/dids/data/f1/children', { children: [{ scope: 'data', name: 'd1' }] }, 400, 'InvalidAttachment');
    await rejected('POST', '/v1/dids/data/d1/children', { children: [{ scope: 'data', name: 'f1' }, { scope: 'data', name: 'ghost' }] }, 404, 'DidNotFound');
    await rejected('POST', '/v1/dids/data/c1/children', { children: [{ scope: 'data', name: 'c2' }] }, 409, 'DuplicateContent');
    await rejected('POST', '/v1/dids/data/nope/children', { children: [{ scope: 'data', name: 'f1' }] }, 404, 'DidNotFound');
    await rejected('DELETE', '/v1/dids/data/c1/children', { children: [{ scope: 'data', name: 'c3' }] }, 404, 'ContentNotFound');
  });

  it('lets users write only in scopes they own; admins may reopen', async () => {
    await rejected('POST', '/v1/dids', { dids: [{ scope: 'data', name: 'u1', bytes: 1, adler32: '00000001' }] }, 403, 'PermissionDenied', user);
    expectOk(await t.call('POST', '/v1/dids', { token: user, body: { dids: [{ scope: 'user.alice', name: 'mine', type: 'DATASET' }] } }));
    expectOk(await t.call('PATCH', '/v1/dids/user.alice/mine', { token: user, body: { open: false } }));
    await rejected('PATCH', '/v1/dids/user.alice/mine', { open: true }, 409, 'DidClosed', user);
    expect((await t.call('PATCH', '/v1/dids/user.alice/mine', { token: admin, body: { open: true } })).body.open).toBe(true);
  });
});

describe('replicas', () => {
  it('registers replicas with policy paths and lists them with URLs', async () => {
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: makeFiles('data', 3, 'rep') } }));
    expectOk(await t.call('POST', '/v1/dids', { token: admin, body: { dids: [{ scope: 'data', name: 'repds', type: 'DATASET' }] } }));
    const refs = makeFiles('data', 3, 'rep').map(({ scope, name }) => ({ scope, name }));
    expectOk(await t.call('POST', '/v1/dids/data/repds/children', { token: admin, body: { children: refs } }));
    const r = await t.call('POST', '/v1/replicas', { token: admin, body: { rse: 'CERN_DISK', replicas: refs.map((f) => ({ ...f, adler32: undefined })) } });
    expect(r).toEqual({ status: 201, body: { created: 3 } });
    expectOk(await t.call('POST', '/v1/replicas', { token: admin, body: { rse: 'IN2P3_DISK', replicas: [refs[0]] } }));
    const list = await t.call('GET', '/v1/dids/data/repds/replicas', { token: admin });
    expect(list.body.items).toHaveLength(3);
    const first = list.body.items[0];
    expect(first.replicas.map((x: { rse: string }) => x.rse)).toEqual(['CERN_DISK', 'IN2P3_DISK']);
    // Rucio's hash layout: scope/xx/yy/name under the RSE prefix.
    expect(first.replicas[0].path).toMatch(/^data\/[0-9a-f]{2}\/[0-9a-f]{2}\/rep\.000000$/);
    expect(first.replicas[0].url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/atlas\/cern_disk\/data\/[0-9a-f]{2}\/[0-9a-f]{2}\/rep\.000000$/);
  });

  it('declares replicas bad with a reason', async () => {
    const r = await t.call('POST', '/v1/replicas/bad', { token: admin, body: { reason: 'checksum mismatch seen by site', replicas: [{ scope: 'data', name: 'rep.000001', rse: 'CERN_DISK' }] } });
    expect(r.body).toEqual({ declared: 1 });
    const list = await t.call('GET', '/v1/dids/data/rep.000001/replicas?state=BAD', { token: admin });
    expect(list.body.items[0].replicas).toEqual([expect.objectContaining({ rse: 'CERN_DISK', state: 'BAD' })]);
    await rejected('POST', '/v1/replicas/bad', { reason: 'x', replicas: [{ scope: 'data', name: 'rep.000001', rse: 'ND_TAPE' }] }, 404, 'ReplicaNotFound');
  });

  it('rejects bad replica registrations and writes nothing', async () => {
    const f = { scope: 'data', name: 'rep.000002' };
    await rejected('POST', '/v1/replicas', { rse: 'NOWHERE', replicas: [f] }, 404, 'RseNotFound');
    await rejected('POST', '/v1/replicas', { rse: 'ND_TAPE', replicas: [f, { scope: 'data', name: 'ghost' }] }, 404, 'DidNotFound');
    await rejected('POST', '/v1/replicas', { rse: 'CERN_DISK', replicas: [f] }, 409, 'DuplicateReplica');
    await rejected('POST', '/v1/replicas', { rse: 'ND_TAPE', replicas: [{ ...f, bytes: 1 }] }, 409, 'SizeMismatch');
    await rejected('POST', '/v1/replicas', { rse: 'ND_TAPE', replicas: [{ ...f, adler32: 'ffffffff' }] }, 409, 'ChecksumMismatch');
    await rejected('POST', '/v1/replicas', { rse: 'ND_TAPE', replicas: [{ ...f, path: '../../etc/passwd' }] }, 400, 'InvalidPath');
    await rejected('POST', '/v1/replicas', { rse: 'ND_TAPE', replicas: [{ scope: 'data', name: 'repds' }] }, 400, 'NotAFile');
    await rejected('POST', '/v1/replicas', { rse: 'nd_tape', replicas: [f] }, 400, 'InvalidName');
    await rejected('POST', '/v1/replicas', { rse: 'ND_TAPE', replicas: [f, f] }, 409, 'DuplicateReplica');
  });
});

describe('RSEs and endpoints', () => {
  it('manages attributes, availability, distances and protects the name attribute', async () => {
    const rse = await t.call('GET', '/v1/rses/CERN_DISK', { token: admin });
    expect(rse.body.attributes).toEqual({ CERN_DISK: 'true', tier: '0', country: 'CH' });
    expect((await t.call('PUT', '/v1/rses/CERN_DISK/attributes/type', { token: admin, body: { value: 'DISK' } })).body.attributes.type).toBe('DISK');
    expect((await t.call('DELETE', '/v1/rses/CERN_DISK/attributes/type', { token: admin })).body.attributes.type).toBeUndefined();
    await rejected('DELETE', '/v1/rses/CERN_DISK/attributes/CERN_DISK', undefined, 400, 'ProtectedAttribute');
    const patched = await t.call('PATCH', '/v1/rses/ND_TAPE', { token: admin, body: { availability: { write: false }, quota_bytes: 1000 } });
    expect(patched.body).toMatchObject({ availability: { read: true, write: false, delete: true }, quota_bytes: 1000 });
    expect((await t.call('PUT', '/v1/rses/CERN_DISK/distances/IN2P3_DISK', { token: admin, body: { distance: 2 } })).status).toBe(200);
    expect((await t.call('GET', '/v1/rses/IN2P3_DISK/distances', { token: admin })).body.items).toEqual([{ source: 'CERN_DISK', destination: 'IN2P3_DISK', distance: 2 }]);
    await rejected('POST', '/v1/rses', { name: 'BAD', endpoint: 'ep-atlas', prefix: '/a/../b' }, 400, 'InvalidPrefix');
    await rejected('POST', '/v1/rses', { name: 'CERN_DISK', endpoint: 'ep-atlas' }, 409, 'DuplicateRse');
    await rejected('POST', '/v1/rses', { name: 'NEW', endpoint: 'no-such-endpoint' }, 404, 'EndpointNotFound');
    await rejected('POST', '/v1/rses', { name: 'NEW', endpoint: 'ep-atlas', protocol_settings: { bucket: 'Not_A_Bucket' } }, 400, 'InvalidInput');
    await rejected('PUT', '/v1/rses/CERN_DISK/distances/NOWHERE', { distance: 1 }, 404, 'RseNotFound');
    await rejected('DELETE', '/v1/rses/CERN_DISK', undefined, 409, 'RseNotEmpty');
    await rejected('POST', '/v1/rses', { name: 'NEW', endpoint: 'ep-atlas' }, 403, 'PermissionDenied', user);
    // Same VO may split an endpoint as it likes; another VO may not reach into atlas's areas.
    expect((await t.call('POST', '/v1/rses', { token: admin, body: { name: 'SCRATCH', endpoint: 'ep-atlas', prefix: '/atlas/cern_disk/scratch' } })).status).toBe(201);
    const { admin: lhcb } = await t.seedVo('lhcb', { rses: ['LHCB_DISK'], endpoint: 'ep-atlas' });
    await rejected('POST', '/v1/rses', { name: 'X', endpoint: 'ep-atlas', prefix: '/atlas/cern_disk/x' }, 409, 'PrefixConflict', lhcb);
    await rejected('POST', '/v1/rses', { name: 'X', endpoint: 'ep-atlas', prefix: '/' }, 409, 'PrefixConflict', lhcb);
    await rejected('POST', '/v1/rses', { name: 'X', endpoint: 'ep-atlas', prefix: 'atlas' }, 409, 'PrefixConflict', lhcb);
  });

  it('keeps secrets out of answers', async () => {
    const r = await t.call('POST', '/v1/rses', { token: admin, body: { name: 'S3_SITE', endpoint: 'ep-atlas', prefix: '/atlas/s3', protocol_settings: { bucket: 'atlas-data', access_key_id: 'AK', secret_access_key: 'very-secret' } } });
    expect(r.status).toBe(201);
    expect(JSON.stringify(r.body)).not.toContain('very-secret');
    expect(r.body.protocol_settings).toMatchObject({ bucket: 'atlas-data', secret_access_key: '***' });
  });

  it('validates endpoints (root only) and refuses deleting one in use', async () => {
    await rejected('POST', '/v1/endpoints', { name: 'e1', url: 'ftp://x:1', kind: 'http' }, 400, 'InvalidUrl', t.rootToken);
    await rejected('POST', '/v1/endpoints', { name: 'e1', url: 'http://h:1/path', kind: 'http' }, 400, 'InvalidUrl', t.rootToken);
    await rejected('POST', '/v1/endpoints', { name: 'e1', url: 'not a url', kind: 'http' }, 400, 'InvalidUrl', t.rootToken);
    await rejected('POST', '/v1/endpoints', { name: 'e1', url: 'http://h:1', kind: 'gridftp' }, 400, 'InvalidInput', t.rootToken);
    await rejected('POST', '/v1/endpoints', { name: 'e1', url: 'http://h:1', kind: 'http' }, 403, 'RootRequired', admin);
    await rejected('DELETE', '/v1/endpoints/ep-atlas', undefined, 409, 'EndpointInUse', t.rootToken);
    const e = await t.call('POST', '/v1/endpoints', { body: { name: 'e2', url: 'https://storage.example.org:2880', kind: 'http', tpc: 'pull', max_inbound: 50 } });
    expect(e.body).toMatchObject({ url: 'https://storage.example.org:2880', tpc: 'pull', max_inbound: 50 });
    expect((await t.call('PATCH', '/v1/endpoints/e2', { body: { max_inbound: null } })).body.max_inbound).toBeNull();
    expect((await t.call('DELETE', '/v1/endpoints/e2')).status).toBe(204);
  });
});

describe('VOs, accounts, scopes', () => {
  it('creates VOs with an admin, accounts and scopes, and rejects duplicates', async () => {
    await rejected('POST', '/v1/vos', { name: 'atlas' }, 409, 'DuplicateVo', t.rootToken);
    await rejected('POST', '/v1/vos', { name: 'A' }, 400, 'InvalidName', t.rootToken);
    await rejected('POST', '/v1/vos', { name: 'cms' }, 403, 'RootRequired', admin);
    await rejected('POST', '/v1/accounts', { name: 'alice' }, 409, 'DuplicateAccount');
    await rejected('POST', '/v1/accounts', { name: 'Bob!' }, 400, 'InvalidName');
    await rejected('POST', '/v1/accounts', { name: 'bob' }, 403, 'PermissionDenied', user);
    await rejected('POST', '/v1/scopes', { name: 'data' }, 409, 'DuplicateScope');
    await rejected('POST', '/v1/scopes', { name: 'mc', account: 'nobody' }, 404, 'AccountNotFound');
    await rejected('GET', '/v1/accounts', undefined, 403, 'VoRequired', t.rootToken);
    const me = await t.call('GET', '/v1/accounts/whoami', { token: user });
    expect(me.body).toEqual({ kind: 'account', vo: 'atlas', account: 'alice', role: 'user' });
  });

  it('suspending an account locks it out at once', async () => {
    expectOk(await t.call('POST', '/v1/accounts', { token: admin, body: { name: 'mallory' } }));
    const tok = await t.token('atlas', 'mallory');
    expect((await t.call('GET', '/v1/scopes', { token: tok })).status).toBe(200);
    expectOk(await t.call('PATCH', '/v1/accounts/mallory', { token: admin, body: { status: 'suspended' } }));
    const r = await t.call('GET', '/v1/scopes', { token: tok });
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('AccountSuspended');
  });
});
