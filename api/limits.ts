import { createRoute, z } from '@hono/zod-openapi';
import { accountUsage, setAccountLimit } from '../core/quota.ts';
import { Forbidden } from '../core/errors.ts';
import type { AppDeps } from './env.ts';
import { AccountName, Bytes, RseName, actorOf, body, createRouter, errorResponses, json } from './http.ts';

const Usage = z
  .object({ rse: z.string(), files: z.number(), bytes: z.number(), limit_bytes: z.number().nullable(), remaining_bytes: z.number().nullable() })
  .openapi('AccountUsage');

/** Quotas: mounted at /v1/accounts next to api/accounts.ts. */
export function limitRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{name}/limits/{rse}',
      tags: ['accounts'],
      summary: "Set (bytes) or remove (null) an account's quota on an RSE (VO admin); no limit means unlimited",
      request: { params: z.object({ name: AccountName, rse: RseName }), body: body(z.object({ bytes: Bytes.nullable() }).strict()) },
      responses: { 200: json(z.object({ items: z.array(Usage) }), "The account's usage and limits"), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      if (actor.role !== 'admin') throw new Forbidden(`only a VO admin may set quotas in VO '${actor.vo}'`, 'PermissionDenied');
      const { name, rse } = c.req.valid('param');
      await setAccountLimit(sql, actor.vo, name, rse, c.req.valid('json').bytes);
      return c.json({ items: await accountUsage(sql, actor.vo, name) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/usage',
      tags: ['accounts'],
      summary: 'Bytes and files locked by the account per RSE, with its limits (the account itself or a VO admin)',
      request: { params: z.object({ name: AccountName }) },
      responses: { 200: json(z.object({ items: z.array(Usage), next: z.string().nullable() }), 'Usage per RSE'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { name } = c.req.valid('param');
      if (actor.role !== 'admin' && actor.account !== name) throw new Forbidden(`only '${name}' or a VO admin may see its usage`, 'PermissionDenied');
      // One row per RSE with usage or a limit: bounded by the VO's RSEs, so one page.
      return c.json({ items: await accountUsage(sql, actor.vo, name), next: null }, 200);
    },
  );

  return app;
}
