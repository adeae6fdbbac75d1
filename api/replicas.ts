import { createRoute, z } from '@hono/zod-openapi';
import { MAX_BULK } from '../core/catalogue.ts';
import { addReplicas, declareBad } from '../core/replicas.ts';
import { authorizeScopes } from './dids.ts';
import type { AppDeps } from './env.ts';
import { Adler32, Bytes, DidName, RseName, ScopeName, actorOf, body, createRouter, errorResponses, json } from './http.ts';

const NewReplica = z
  .object({ scope: ScopeName, name: DidName, path: z.string().max(1024).optional(), bytes: Bytes.optional(), adler32: Adler32.optional() })
  .strict();

export function replicaRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['replicas'],
      summary: `Register up to ${MAX_BULK} replicas of existing files on one RSE; all or nothing`,
      request: { body: body(z.object({ rse: RseName, replicas: z.array(NewReplica).min(1).max(MAX_BULK) }).strict()) },
      responses: { 201: json(z.object({ created: z.number() }), 'Registered'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { rse, replicas } = c.req.valid('json');
      await authorizeScopes(deps, actor, 'replica.add', replicas.map((r) => r.scope));
      const created = await addReplicas(sql, actor.vo, await policies.forVo(actor.vo), rse, replicas);
      return c.json({ created }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/bad',
      tags: ['replicas'],
      summary: 'Declare replicas bad (lost or corrupted), with a reason',
      request: {
        body: body(
          z
            .object({
              reason: z.string().min(1).max(1000),
              replicas: z.array(z.object({ scope: ScopeName, name: DidName, rse: RseName }).strict()).min(1).max(MAX_BULK),
            })
            .strict(),
        ),
      },
      responses: { 200: json(z.object({ declared: z.number() }), 'Declared'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { reason, replicas } = c.req.valid('json');
      await policies.authorize('replica.declare_bad', actor);
      return c.json({ declared: await declareBad(sql, actor.vo, actor.account, replicas, reason) }, 200);
    },
  );

  return app;
}
