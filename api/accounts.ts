import { createRoute, z } from '@hono/zod-openapi';
import { addAccount, getAccount, listAccounts, updateAccount } from '../core/accounts.ts';
import type { AppDeps } from './env.ts';
import { AccountName, actorOf, Cursor, Limit, body, createRouter, decodeCursor, errorResponses, json, page, paginate, voOf } from './http.ts';

const Account = z
  .object({
    name: z.string(),
    type: z.enum(['user', 'group', 'service']),
    role: z.enum(['user', 'admin']),
    email: z.string().nullable(),
    status: z.enum(['active', 'suspended']),
    created_at: z.date(),
  })
  .openapi('Account');

export function accountRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['accounts'],
      summary: 'Create an account in your VO (VO admin)',
      request: {
        body: body(
          z
            .object({
              name: AccountName,
              type: z.enum(['user', 'group', 'service']).optional(),
              role: z.enum(['user', 'admin']).optional(),
              email: z.email().max(320).optional(),
            })
            .strict(),
        ),
      },
      responses: { 201: json(Account, 'Created'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const vo = actor.vo;
      await policies.authorize('account.add', actor);
      return c.json(await addAccount(sql, vo, c.req.valid('json')), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['accounts'],
      request: { query: z.object({ limit: Limit, cursor: Cursor }) },
      responses: { 200: json(page(Account), 'Accounts of your VO'), ...errorResponses },
    }),
    async (c) => {
      const vo = voOf(c.get('caller'));
      const { limit, cursor } = c.req.valid('query');
      const after = decodeCursor(cursor, 1)?.[0] as string | undefined;
      return c.json(paginate(await listAccounts(sql, vo, { after, limit }), limit, (a) => [a.name]), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/whoami', tags: ['accounts'], responses: { 200: json(z.object({ kind: z.string(), vo: z.string().nullable(), account: z.string(), role: z.string() }), 'The caller') } }),
    (c) => {
      const caller = c.get('caller');
      return c.json(
        caller.kind === 'root'
          ? { kind: 'root', vo: null, account: 'root', role: 'root' }
          : { kind: 'account', vo: caller.vo, account: caller.account, role: caller.role },
        200,
      );
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}', tags: ['accounts'], request: { params: z.object({ name: AccountName }) }, responses: { 200: json(Account, 'The account'), ...errorResponses } }),
    async (c) => c.json(await getAccount(sql, voOf(c.get('caller')), c.req.valid('param').name), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['accounts'],
      summary: 'Change role, email or status (VO admin)',
      request: {
        params: z.object({ name: AccountName }),
        body: body(z.object({ role: z.enum(['user', 'admin']).optional(), email: z.email().max(320).nullable().optional(), status: z.enum(['active', 'suspended']).optional() }).strict()),
      },
      responses: { 200: json(Account, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const vo = actor.vo;
      const { name } = c.req.valid('param');
      await policies.authorize('account.update', { ...actor, target: name });
      const account = await updateAccount(sql, vo, name, c.req.valid('json'));
      deps.verifier.invalidate();
      return c.json(account, 200);
    },
  );

  return app;
}
