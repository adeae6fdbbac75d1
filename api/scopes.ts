import { createRoute, z } from '@hono/zod-openapi';
import { getAccount } from '../core/accounts.ts';
import { addScope, getScope, listScopes } from '../core/scopes.ts';
import type { AppDeps } from './env.ts';
import { AccountName, actorOf, Cursor, Limit, ScopeName, body, createRouter, decodeCursor, errorResponses, json, page, paginate, voOf } from './http.ts';

const Scope = z.object({ name: z.string(), account: z.string(), created_at: z.date() }).openapi('Scope');

export function scopeRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['scopes'],
      summary: 'Create a scope owned by an account (VO admin)',
      request: { body: body(z.object({ name: ScopeName, account: AccountName.optional() }).strict()) },
      responses: { 201: json(Scope, 'Created'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const vo = actor.vo;
      const { name, account } = c.req.valid('json');
      const owner = account ?? actor.account;
      await policies.authorize('scope.add', { ...actor, scope: name, scopeAccount: owner });
      await getAccount(sql, vo, owner);
      return c.json(await addScope(sql, vo, { name, account: owner }), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['scopes'],
      request: { query: z.object({ account: AccountName.optional(), limit: Limit, cursor: Cursor }) },
      responses: { 200: json(page(Scope), 'Scopes of your VO'), ...errorResponses },
    }),
    async (c) => {
      const vo = voOf(c.get('caller'));
      const { limit, cursor, account } = c.req.valid('query');
      const after = decodeCursor(cursor, 1)?.[0] as string | undefined;
      return c.json(paginate(await listScopes(sql, vo, { after, limit, account }), limit, (s) => [s.name]), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}', tags: ['scopes'], request: { params: z.object({ name: ScopeName }) }, responses: { 200: json(Scope, 'The scope'), ...errorResponses } }),
    async (c) => c.json(await getScope(sql, voOf(c.get('caller')), c.req.valid('param').name), 200),
  );

  return app;
}
