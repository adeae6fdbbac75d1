import { createRoute, z } from '@hono/zod-openapi';
import { banEndpoint, endpointAvailability, getEndpointStatus, listEndpointStatus, unbanEndpoint } from '../core/probes.ts';
import type { AppDeps } from './env.ts';
import { EndpointName, body, createRouter, errorResponses, json, requireRoot } from './http.ts';

const Probe = z.object({
  rse: z.string().nullable(),
  ok: z.boolean(),
  phase: z.string().nullable(),
  error_code: z.string().nullable(),
  message: z.string().nullable(),
  duration_ms: z.number(),
  at: z.string(),
});
const Status = z
  .object({
    name: z.string(),
    url: z.string(),
    status: z.enum(['ok', 'degraded', 'excluded', 'banned']).openapi({ description: 'excluded and banned endpoints are not used as transfer source or destination' }),
    reason: z.string().nullable(),
    since: z.date(),
    consecutive_failures: z.number(),
    consecutive_successes: z.number(),
    last_probe_at: z.date().nullable(),
    banned_by: z.string().nullable(),
    last_probes: z.array(Probe).openapi({ description: 'the 10 most recent probe results, newest first' }),
  })
  .openapi('EndpointStatus');
const Day = z
  .object({
    day: z.string(),
    availability: z.number().nullable(),
    reliability: z.number().nullable().openapi({ description: 'equals availability: Sluice keeps no scheduled-downtime calendar' }),
    observed_seconds: z.number(),
    up_seconds: z.number(),
    probes: z.number(),
    probes_failed: z.number(),
  })
  .openapi('EndpointAvailabilityDay');
const NameParam = z.object({ name: EndpointName });

/**
 * Endpoint health (probes, exclusion, bans): mounted at /v1/endpoints next to api/endpoints.ts.
 * Endpoints are shared infrastructure: every caller reads their status, only root bans.
 */
export function endpointStatusRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/-/status',
      tags: ['endpoints'],
      summary: 'Status of every endpoint (ok, degraded, excluded, banned) with reasons and recent probes',
      responses: { 200: json(z.object({ items: z.array(Status) }), 'Endpoint statuses'), ...errorResponses },
    }),
    async (c) => c.json({ items: await listEndpointStatus(sql) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/status',
      tags: ['endpoints'],
      summary: "An endpoint's status with its reason and recent probes",
      request: { params: NameParam },
      responses: { 200: json(Status, 'Status'), ...errorResponses },
    }),
    async (c) => c.json(await getEndpointStatus(sql, c.req.valid('param').name), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{name}/ban',
      tags: ['endpoints'],
      summary: 'Ban an endpoint by hand (root): no new transfers from or to it until the ban is lifted',
      request: { params: NameParam, body: body(z.object({ reason: z.string().min(1).max(1000) }).strict()) },
      responses: { 200: json(Status, 'Banned'), ...errorResponses },
    }),
    async (c) => {
      const caller = c.get('caller');
      requireRoot(caller);
      return c.json(await banEndpoint(sql, c.req.valid('param').name, c.req.valid('json').reason, caller.account), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}/ban',
      tags: ['endpoints'],
      summary: 'Lift a ban (root); the next probes decide whether the endpoint is usable',
      request: { params: NameParam },
      responses: { 200: json(Status, 'Ban lifted'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      return c.json(await unbanEndpoint(sql, c.req.valid('param').name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/availability',
      tags: ['endpoints'],
      summary: 'Daily availability and reliability (UTC days, today included)',
      description: 'A = time usable (ok or degraded) / time observed. R = up / (time - scheduled downtime); with no downtime calendar in Sluice, R = A.',
      request: { params: NameParam, query: z.object({ days: z.coerce.number().int().min(1).max(90).default(7) }) },
      responses: { 200: json(z.object({ endpoint: z.string(), days: z.array(Day) }), 'Per day'), ...errorResponses },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      return c.json({ endpoint: name, days: await endpointAvailability(sql, name, c.req.valid('query').days) }, 200);
    },
  );

  return app;
}
