import { createRoute, z } from '@hono/zod-openapi';
import { addEndpoint, deleteEndpoint, getEndpoint, listEndpoints, updateEndpoint } from '../core/endpoints.ts';
import type { AppDeps } from './env.ts';
import { EndpointName, body, createRouter, errorResponses, json, requireRoot } from './http.ts';

const Tpc = z.enum(['pull', 'push', 'both', 'none']);
const Limit = z.number().int().min(1).max(100_000);
const Endpoint = z
  .object({
    id: z.number(),
    name: z.string(),
    url: z.string(),
    kind: z.enum(['http', 's3']),
    tpc: Tpc,
    max_inbound: z.number().nullable(),
    max_outbound: z.number().nullable(),
    settings: z.record(z.string(), z.unknown()),
    created_at: z.date(),
  })
  .openapi('StorageEndpoint');
const Settings = z.record(z.string().max(64), z.union([z.string().max(1000), z.number(), z.boolean(), z.null()]));
const NameParam = z.object({ name: EndpointName });

/** Storage endpoints are shared infrastructure: any caller reads them, only root changes them. */
export function endpointRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['endpoints'],
      summary: 'Register a storage endpoint (root)',
      request: {
        body: body(
          z
            .object({
              name: EndpointName,
              url: z.string().max(2000),
              kind: z.enum(['http', 's3']),
              tpc: Tpc.optional(),
              max_inbound: Limit.optional(),
              max_outbound: Limit.optional(),
              settings: Settings.optional(),
            })
            .strict(),
        ),
      },
      responses: { 201: json(Endpoint, 'Created'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      return c.json(await addEndpoint(sql, c.req.valid('json')), 201);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/', tags: ['endpoints'], responses: { 200: json(z.object({ items: z.array(Endpoint) }), 'Endpoints'), ...errorResponses } }),
    async (c) => c.json({ items: await listEndpoints(sql) }, 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}', tags: ['endpoints'], request: { params: NameParam }, responses: { 200: json(Endpoint, 'The endpoint'), ...errorResponses } }),
    async (c) => c.json(await getEndpoint(sql, c.req.valid('param').name), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['endpoints'],
      summary: 'Change TPC capability, inbound/outbound limits or settings (root)',
      request: {
        params: NameParam,
        body: body(z.object({ tpc: Tpc.optional(), max_inbound: Limit.nullable().optional(), max_outbound: Limit.nullable().optional(), settings: Settings.optional() }).strict()),
      },
      responses: { 200: json(Endpoint, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      return c.json(await updateEndpoint(sql, c.req.valid('param').name, c.req.valid('json')), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'delete', path: '/{name}', tags: ['endpoints'], request: { params: NameParam }, responses: { 204: { description: 'Deleted' }, ...errorResponses } }),
    async (c) => {
      requireRoot(c.get('caller'));
      await deleteEndpoint(sql, c.req.valid('param').name);
      return c.body(null, 204);
    },
  );

  return app;
}
