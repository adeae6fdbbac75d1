import { createRoute, z } from '@hono/zod-openapi';
import {
  addDids,
  attachDids,
  detachDids,
  didTotals,
  getDid,
  listChildren,
  listDids,
  listFiles,
  parseMetaFilters,
  scopeOwners,
  updateDid,
  validateNewDids,
  MAX_BULK,
} from '../core/catalogue.ts';
import { listReplicas } from '../core/replicas.ts';
import type { AppDeps } from './env.ts';
import {
  Adler32,
  Bytes,
  Cursor,
  DidName,
  DidRef,
  Limit,
  Md5,
  Meta,
  ScopeName,
  actorOf,
  body,
  createRouter,
  decodeCursor,
  errorResponses,
  json,
  page,
  paginate,
  type Actor,
} from './http.ts';
import type { PolicyRegistry, ResolvedPolicy } from '../policies/registry.ts';
import { InvalidInput } from '../core/errors.ts';

const DidType = z.enum(['FILE', 'DATASET', 'CONTAINER']);
const Did = z
  .object({
    scope: z.string(),
    name: z.string(),
    type: DidType,
    account: z.string(),
    bytes: z.number().nullable(),
    adler32: z.string().nullable(),
    md5: z.string().nullable(),
    open: z.boolean(),
    meta: z.record(z.string(), z.unknown()),
    created_at: z.date(),
    closed_at: z.date().nullable(),
    length: z.number().optional().openapi({ description: 'files below a dataset or container' }),
  })
  .openapi('Did');
const NewDid = z
  .object({
    scope: ScopeName.optional().openapi({ description: "omit to let the VO's policy package take the scope from the name (extractScope)" }),
    name: DidName,
    type: DidType.default('FILE'),
    bytes: Bytes.optional(),
    adler32: Adler32.optional(),
    md5: Md5.optional(),
    meta: Meta.optional(),
    open: z.boolean().optional(),
  })
  .strict();
const FileRow = z.object({ scope: z.string(), name: z.string(), bytes: z.number(), adler32: z.string(), md5: z.string().nullable() }).openapi('File');
const Child = z.object({ scope: z.string(), name: z.string(), type: DidType });
const Replica = z.object({ rse: z.string(), state: z.string(), path: z.string(), url: z.string() });
const FileReplicas = FileRow.extend({ replicas: z.array(Replica) }).openapi('FileReplicas');
const DidParams = z.object({ scope: ScopeName, name: DidName });
const Children = z.object({ children: z.array(DidRef).min(1).max(MAX_BULK) }).strict();

/** Authorise a write in every scope touched: the default policy lets users write only in their own scopes. */
export async function authorizeScopes(
  deps: { sql: AppDeps['sql']; policies: PolicyRegistry },
  actor: Actor,
  action: 'did.add' | 'did.update' | 'did.attach' | 'did.detach' | 'replica.add',
  scopes: string[],
): Promise<void> {
  const owners = await scopeOwners(deps.sql, actor.vo, scopes);
  for (const [scope, scopeAccount] of owners) await deps.policies.authorize(action, { ...actor, scope, scopeAccount });
}

/**
 * Policy packages: DIDs given without a scope get the one the VO's extractScope hook finds in
 * the name (one batch call); a name it cannot split is the client's error.
 */
async function withScopes<D extends { scope?: string; name: string }>(policy: ResolvedPolicy, dids: D[]): Promise<Array<D & { scope: string }>> {
  const missing = dids.flatMap((d, i) => (d.scope === undefined ? [i] : []));
  if (missing.length === 0) return dids as Array<D & { scope: string }>;
  const found = await policy.extractScopes(missing.map((i) => dids[i].name));
  const out = [...dids] as Array<D & { scope: string }>;
  for (const [j, i] of missing.entries()) {
    const f = found[j];
    if (!f) throw new InvalidInput('ScopeRequired', `item ${i}: give a scope for '${dids[i].name.slice(0, 80)}' (policy '${policy.name}' cannot take one from the name)`);
    if (!ScopeName.safeParse(f.scope).success || !DidName.safeParse(f.name).success) {
      throw new InvalidInput('InvalidName', `item ${i}: policy '${policy.name}' took scope '${f.scope.slice(0, 40)}' and name '${f.name.slice(0, 80)}' from '${dids[i].name.slice(0, 80)}', which is not a valid scope and name`);
    }
    out[i] = { ...dids[i], scope: f.scope, name: f.name };
  }
  return out;
}

export function didRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['dids'],
      summary: `Register up to ${MAX_BULK} DIDs (files, datasets, containers); all or nothing`,
      request: { body: body(z.object({ dids: z.array(NewDid).min(1).max(MAX_BULK) }).strict()) },
      responses: { 201: json(z.object({ created: z.number() }), 'Created'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const policy = await policies.forVo(actor.vo);
      const dids = await withScopes(policy, c.req.valid('json').dids);
      await validateNewDids(dids, policy);
      await authorizeScopes(deps, actor, 'did.add', dids.map((d) => d.scope));
      return c.json({ created: await addDids(sql, actor.vo, actor.account, dids) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['dids'],
      summary: 'List DIDs of a scope, by name pattern, type and metadata filters',
      request: {
        query: z.object({
          scope: ScopeName,
          name: z.string().max(250).optional().openapi({ description: "wildcard pattern: '*' any run, '?' one character" }),
          type: DidType.optional(),
          filter: z
            .union([z.string(), z.array(z.string())])
            .optional()
            .openapi({ description: 'metadata filter key=value, key>n, key<n (also !=, <=, >=); repeat for AND' }),
          limit: Limit,
          cursor: Cursor,
        }),
      },
      responses: { 200: json(page(Did), 'DIDs'), ...errorResponses },
    }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const q = c.req.valid('query');
      const filters = parseMetaFilters(q.filter === undefined ? [] : Array.isArray(q.filter) ? q.filter : [q.filter]);
      const after = decodeCursor(q.cursor, 1)?.[0] as string | undefined;
      const rows = await listDids(sql, vo, { scope: q.scope, pattern: q.name, type: q.type, filters, after, limit: q.limit });
      return c.json(paginate(rows, q.limit, (d) => [d.name]), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{scope}/{name}', tags: ['dids'], request: { params: DidParams }, responses: { 200: json(Did, 'The DID'), ...errorResponses } }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const key = c.req.valid('param');
      const did = await getDid(sql, vo, key);
      if (did.type === 'FILE') return c.json(did, 200);
      const totals = await didTotals(sql, vo, key);
      return c.json({ ...did, bytes: totals.bytes, length: totals.length }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{scope}/{name}',
      tags: ['dids'],
      summary: 'Close (open=false) a dataset/container, or merge metadata (null removes a key)',
      request: { params: DidParams, body: body(z.object({ open: z.boolean().optional(), meta: Meta.optional() }).strict()) },
      responses: { 200: json(Did, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const key = c.req.valid('param');
      await authorizeScopes(deps, actor, 'did.update', [key.scope]);
      return c.json(await updateDid(sql, actor.vo, key, c.req.valid('json'), { mayReopen: actor.role === 'admin' }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{scope}/{name}/children',
      tags: ['dids'],
      summary: 'Attach files to a dataset, or datasets/containers to a container; all or nothing',
      request: { params: DidParams, body: body(Children) },
      responses: { 201: json(z.object({ attached: z.number() }), 'Attached'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const parent = c.req.valid('param');
      await authorizeScopes(deps, actor, 'did.attach', [parent.scope]);
      return c.json({ attached: await attachDids(sql, actor.vo, parent, c.req.valid('json').children) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{scope}/{name}/children',
      tags: ['dids'],
      summary: 'Detach children; all or nothing',
      request: { params: DidParams, body: body(Children) },
      responses: { 200: json(z.object({ detached: z.number() }), 'Detached'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const parent = c.req.valid('param');
      await authorizeScopes(deps, actor, 'did.detach', [parent.scope]);
      return c.json({ detached: await detachDids(sql, actor.vo, parent, c.req.valid('json').children) }, 200);
    },
  );

  const Paged = z.object({ limit: Limit, cursor: Cursor });
  const afterKey = (cursor?: string) => decodeCursor(cursor, 2) as [string, string] | undefined;

  app.openapi(
    createRoute({ method: 'get', path: '/{scope}/{name}/children', tags: ['dids'], request: { params: DidParams, query: Paged }, responses: { 200: json(page(Child), 'Direct children'), ...errorResponses } }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const { limit, cursor } = c.req.valid('query');
      const rows = await listChildren(sql, vo, c.req.valid('param'), { after: afterKey(cursor), limit });
      return c.json(paginate(rows, limit, (r) => [r.scope, r.name]), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{scope}/{name}/files', tags: ['dids'], summary: 'Every file below a DID, recursively', request: { params: DidParams, query: Paged }, responses: { 200: json(page(FileRow), 'Files'), ...errorResponses } }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const { limit, cursor } = c.req.valid('query');
      const rows = await listFiles(sql, vo, c.req.valid('param'), { after: afterKey(cursor), limit });
      return c.json(paginate(rows, limit, (r) => [r.scope, r.name]), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{scope}/{name}/replicas',
      tags: ['dids'],
      summary: 'Replicas (with URLs) of every file below a DID',
      request: { params: DidParams, query: Paged.extend({ state: z.enum(['AVAILABLE', 'COPYING', 'BEING_DELETED', 'BAD', 'UNAVAILABLE']).optional() }) },
      responses: { 200: json(page(FileReplicas), 'Files with replicas'), ...errorResponses },
    }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const { limit, cursor, state } = c.req.valid('query');
      const rows = await listReplicas(sql, vo, c.req.valid('param'), { after: afterKey(cursor), limit, state });
      return c.json(paginate(rows, limit, (r) => [r.scope, r.name]), 200);
    },
  );

  return app;
}
