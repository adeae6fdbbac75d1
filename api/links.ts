import { createRoute, z } from '@hono/zod-openapi';
import type { Caller } from '../core/auth.ts';
import { getLink, listDecisions, listLinks, updateLink } from '../core/links.ts';
import type { AppDeps } from './env.ts';
import { VoName, body, createRouter, errorResponses, json, requireRoot } from './http.ts';

const LinkVo = z.object({ vo: z.string(), active: z.number(), queued: z.number(), share: z.number() });
const Link = z
  .object({
    id: z.number(),
    source: z.string().openapi({ description: 'source storage endpoint' }),
    destination: z.string().openapi({ description: 'destination storage endpoint' }),
    limit: z.number().openapi({ description: 'concurrent transfers allowed now (optimizer or pinned)' }),
    min: z.number(),
    max: z.number(),
    pinned: z.boolean(),
    active: z.number(),
    queued: z.number(),
    bytes_per_second: z.number().openapi({ description: 'over the last minute' }),
    success_rate: z.number().nullable(),
    vos: z.array(LinkVo),
    updated_at: z.date(),
  })
  .openapi('Link');
const Decision = z
  .object({ at: z.date(), limit: z.number(), previous_limit: z.number(), reason: z.string(), inputs: z.record(z.string(), z.unknown()) })
  .openapi('LinkDecision');
const IdParam = z.object({ id: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });
const Slots = z.number().int().min(1).max(100_000);

/**
 * Links are shared infrastructure: everyone sees them, only root steers them; a VO caller's
 * figures (active, queued, throughput, per-VO rows) are its own VO's only.
 */
export function linkRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;
  const scopeOf = (caller: Caller) => (caller.kind === 'root' ? undefined : caller.vo);

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['links'],
      summary: 'Links with limit, load, throughput, success rate and per-VO slots',
      responses: { 200: json(z.object({ items: z.array(Link) }), 'Links'), ...errorResponses },
    }),
    async (c) => c.json({ items: await listLinks(sql, { vo: scopeOf(c.get('caller')) }) }, 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{id}', tags: ['links'], request: { params: IdParam }, responses: { 200: json(Link, 'The link'), ...errorResponses } }),
    async (c) => c.json(await getLink(sql, c.req.valid('param').id, { vo: scopeOf(c.get('caller')) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{id}',
      tags: ['links'],
      summary: 'Set min/max, pin a fixed limit, or set per-VO shares on this link (root)',
      request: {
        params: IdParam,
        body: body(
          z
            .object({
              min: Slots.optional(),
              max: Slots.optional(),
              limit: Slots.optional(),
              pinned: z.boolean().optional(),
              vo_shares: z.record(VoName, z.number().int().min(0).max(1_000_000).nullable()).optional(),
            })
            .strict(),
        ),
      },
      responses: { 200: json(Link, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      const { id } = c.req.valid('param');
      await updateLink(sql, id, c.req.valid('json'));
      return c.json(await getLink(sql, id, {}), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/decisions',
      tags: ['links'],
      summary: "The optimizer's decisions on this link, newest first, with inputs and reasons",
      request: { params: IdParam, query: z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(100), before: z.coerce.date().optional() }) },
      responses: { 200: json(z.object({ items: z.array(Decision) }), 'Decisions'), ...errorResponses },
    }),
    async (c) => {
      const { limit, before } = c.req.valid('query');
      return c.json({ items: await listDecisions(sql, c.req.valid('param').id, { limit, before }) }, 200);
    },
  );

  return app;
}
