import { createRoute, z } from '@hono/zod-openapi';
import { addRse, deleteRse, deleteRseAttribute, getRse, listDistances, listRses, setDistance, setRseAttribute, updateRse } from '../core/rses.ts';
import { resolveExpression } from '../core/rules.ts';
import type { AppDeps } from './env.ts';
import {
  AttributeKey,
  AttributeValue,
  Cursor,
  Limit,
  RseName,
  EndpointName,
  actorOf,
  body,
  createRouter,
  decodeCursor,
  errorResponses,
  json,
  page,
  paginate,
  voOf,
} from './http.ts';

const Availability = z.object({ read: z.boolean().optional(), write: z.boolean().optional(), delete: z.boolean().optional() }).strict();
const ProtocolSettings = z
  .object({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name').optional(),
    region: z.string().max(64).optional(),
    access_key_id: z.string().max(256).optional(),
    secret_access_key: z.string().max(512).optional(),
    force_path_style: z.boolean().optional(),
    checksum_mode: z.enum(['when_required', 'when_supported']).optional(),
    token: z.string().max(8192).optional(),
    timeout_ms: z.number().int().min(1000).max(86_400_000).optional(),
  })
  .strict();
const Rse = z
  .object({
    id: z.number(),
    name: z.string(),
    endpoint: z.string(),
    endpoint_id: z.number(),
    url: z.string(),
    kind: z.enum(['http', 's3']),
    prefix: z.string(),
    deterministic: z.boolean(),
    availability: z.object({ read: z.boolean(), write: z.boolean(), delete: z.boolean() }),
    attributes: z.record(z.string(), z.string()),
    protocol_settings: z.record(z.string(), z.unknown()),
    quota_bytes: z.number().nullable(),
    created_at: z.date(),
  })
  .openapi('Rse');
const Distance = z.object({ source: z.string(), destination: z.string(), distance: z.number() }).openapi('Distance');
const NameParam = z.object({ name: RseName });

export function rseRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['rses'],
      summary: 'Create an RSE on a storage endpoint (VO admin)',
      request: {
        body: body(
          z
            .object({
              name: RseName,
              endpoint: EndpointName,
              prefix: z.string().max(1024).optional(),
              deterministic: z.boolean().optional(),
              availability: Availability.optional(),
              attributes: z.record(AttributeKey, AttributeValue).refine((a) => Object.keys(a).length <= 100, 'at most 100 attributes').optional(),
              protocol_settings: ProtocolSettings.optional(),
              quota_bytes: z.number().int().min(0).nullable().optional(),
            })
            .strict(),
        ),
      },
      responses: { 201: json(Rse, 'Created'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const input = c.req.valid('json');
      await policies.authorize('rse.add', { ...actor, rse: input.name });
      return c.json(await addRse(sql, actor.vo, input), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['rses'],
      summary: 'RSEs of your VO; with expression, those it matches (explain: the set after each step)',
      request: {
        query: z.object({
          limit: Limit,
          cursor: Cursor,
          expression: z.string().min(1).max(8192).optional().openapi({ description: "RSE expression, e.g. 'tier=1&country=FR|CERN-PROD_DISK' (left to right)" }),
          explain: z.enum(['true', 'false', '1', '0']).optional().openapi({ description: 'with expression: add the step-by-step sets' }),
        }),
      },
      responses: { 200: json(page(Rse).extend({ steps: z.array(z.record(z.string(), z.unknown())).optional() }), 'RSEs of your VO'), ...errorResponses },
    }),
    async (c) => {
      const vo = voOf(c.get('caller'));
      const { limit, cursor, expression, explain } = c.req.valid('query');
      const after = decodeCursor(cursor, 1)?.[0] as string | undefined;
      if (expression === undefined) return c.json(paginate(await listRses(sql, vo, { after, limit }), limit, (r) => [r.name]), 200);
      // Only the caller's VO's RSEs are candidates, so nothing else can match or be named.
      const resolved = await resolveExpression(sql, vo, expression, { explain: explain === 'true' || explain === '1' });
      const names = new Set(resolved.rses);
      const matched = (await listRses(sql, vo)).filter((r) => names.has(r.name) && (after === undefined || r.name > after));
      const result = paginate(matched.slice(0, limit + 1), limit, (r) => [r.name]);
      return c.json(resolved.steps ? { ...result, steps: resolved.steps } : result, 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}', tags: ['rses'], request: { params: NameParam }, responses: { 200: json(Rse, 'The RSE'), ...errorResponses } }),
    async (c) => c.json(await getRse(sql, voOf(c.get('caller')), c.req.valid('param').name), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['rses'],
      summary: 'Change availability, protocol settings or quota (VO admin)',
      request: {
        params: NameParam,
        body: body(
          z
            .object({
              availability: Availability.optional(),
              deterministic: z.boolean().optional(),
              protocol_settings: ProtocolSettings.optional(),
              quota_bytes: z.number().int().min(0).nullable().optional(),
            })
            .strict(),
        ),
      },
      responses: { 200: json(Rse, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { name } = c.req.valid('param');
      await policies.authorize('rse.update', { ...actor, rse: name });
      return c.json(await updateRse(sql, actor.vo, name, c.req.valid('json')), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'delete', path: '/{name}', tags: ['rses'], request: { params: NameParam }, responses: { 204: { description: 'Deleted' }, ...errorResponses } }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { name } = c.req.valid('param');
      await policies.authorize('rse.delete', { ...actor, rse: name });
      await deleteRse(sql, actor.vo, name);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{name}/attributes/{key}',
      tags: ['rses'],
      summary: 'Set an attribute (VO admin)',
      request: { params: z.object({ name: RseName, key: AttributeKey }), body: body(z.object({ value: AttributeValue }).strict()) },
      responses: { 200: json(Rse, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { name, key } = c.req.valid('param');
      await policies.authorize('rse.update', { ...actor, rse: name });
      await setRseAttribute(sql, actor.vo, name, key, c.req.valid('json').value);
      return c.json(await getRse(sql, actor.vo, name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}/attributes/{key}',
      tags: ['rses'],
      request: { params: z.object({ name: RseName, key: AttributeKey }) },
      responses: { 200: json(Rse, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { name, key } = c.req.valid('param');
      await policies.authorize('rse.update', { ...actor, rse: name });
      await deleteRseAttribute(sql, actor.vo, name, key);
      return c.json(await getRse(sql, actor.vo, name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{name}/distances/{destination}',
      tags: ['rses'],
      summary: 'Set the distance from this RSE to another (VO admin); lower is closer',
      request: { params: z.object({ name: RseName, destination: RseName }), body: body(z.object({ distance: z.number().int().min(0).max(1_000_000) }).strict()) },
      responses: { 200: json(Distance, 'Set'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { name, destination } = c.req.valid('param');
      await policies.authorize('rse.update', { ...actor, rse: name });
      return c.json(await setDistance(sql, actor.vo, name, destination, c.req.valid('json').distance), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}/distances', tags: ['rses'], request: { params: NameParam }, responses: { 200: json(z.object({ items: z.array(Distance) }), 'Distances from and to this RSE'), ...errorResponses } }),
    async (c) => c.json({ items: await listDistances(sql, voOf(c.get('caller')), c.req.valid('param').name) }, 200),
  );

  return app;
}
