import { createRoute, z } from '@hono/zod-openapi';
import { addIssuer, addVo, getVo, listIssuers, listVos, updateVo } from '../core/vos.ts';
import { NotFound } from '../core/errors.ts';
import { BUILTIN_POLICIES } from '../policies/registry.ts';
import type { AppDeps } from './env.ts';
import { AccountName, VoName, body, createRouter, errorResponses, json, requireRoot } from './http.ts';

const Vo = z
  .object({ name: z.string(), description: z.string(), policy_package: z.string(), share: z.number(), created_at: z.date() })
  .openapi('Vo');
const Issuer = z
  .object({
    id: z.number(),
    issuer: z.string(),
    vo: z.string().nullable(),
    jwks_url: z.string().nullable(),
    has_static_keys: z.boolean(),
    audience: z.string().nullable(),
    account_claim: z.string(),
  })
  .openapi('Issuer');
const PolicyName = z.string().min(1).max(200);
const NameParam = z.object({ name: VoName });

export function voRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['vos'],
      summary: 'Create a VO and its first admin account (root)',
      request: {
        body: body(
          z
            .object({
              name: VoName,
              description: z.string().max(1000).optional(),
              policy_package: PolicyName.optional(),
              share: z.number().int().min(0).max(1_000_000).optional(),
              admin: AccountName.optional().openapi({ description: "name of the VO's first admin account (default 'admin')" }),
            })
            .strict(),
        ),
      },
      responses: { 201: json(Vo, 'Created'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      const input = c.req.valid('json');
      // Policy packages: a package that does not load is refused before anything is written.
      if (input.policy_package !== undefined) await deps.policies.check(input.policy_package);
      return c.json(await addVo(sql, input), 201);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/', tags: ['vos'], summary: 'List VOs (root) or your own VO', responses: { 200: json(z.object({ items: z.array(Vo) }), 'VOs'), ...errorResponses } }),
    async (c) => {
      const caller = c.get('caller');
      const items = caller.kind === 'root' ? await listVos(sql) : [await getVo(sql, caller.vo)];
      return c.json({ items }, 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}', tags: ['vos'], request: { params: NameParam }, responses: { 200: json(Vo, 'The VO'), ...errorResponses } }),
    async (c) => {
      const caller = c.get('caller');
      const { name } = c.req.valid('param');
      if (caller.kind !== 'root' && caller.vo !== name) throw new NotFound('VoNotFound', `VO '${name}' does not exist`);
      return c.json(await getVo(sql, name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['vos'],
      summary: 'Change description, policy package or fair-share weight (root)',
      request: {
        params: NameParam,
        body: body(z.object({ description: z.string().max(1000).optional(), policy_package: PolicyName.optional(), share: z.number().int().min(0).max(1_000_000).optional() }).strict()),
      },
      responses: { 200: json(Vo, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      const { name } = c.req.valid('param');
      const patch = c.req.valid('json');
      // Policy packages: load it first (400 InvalidPolicyPackage with the reason; nothing written).
      if (patch.policy_package !== undefined) await deps.policies.check(patch.policy_package);
      const vo = await updateVo(sql, name, patch);
      deps.policies.invalidate(name);
      return c.json(vo, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/issuers',
      tags: ['vos'],
      summary: "Trust a VO's token issuer (root)",
      request: {
        params: NameParam,
        body: body(
          z
            .object({
              issuer: z.string().min(1).max(500),
              jwks_url: z.url().max(2000).optional(),
              jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).optional(),
              audience: z.string().max(500).optional(),
              account_claim: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
            })
            .strict(),
        ),
      },
      responses: { 201: json(Issuer, 'Trusted'), ...errorResponses },
    }),
    async (c) => {
      requireRoot(c.get('caller'));
      const { name } = c.req.valid('param');
      const issuer = await addIssuer(sql, { vo: name, ...c.req.valid('json') });
      deps.verifier.invalidate();
      return c.json(issuer, 201);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{name}/issuers', tags: ['vos'], request: { params: NameParam }, responses: { 200: json(z.object({ items: z.array(Issuer) }), 'Issuers'), ...errorResponses } }),
    async (c) => {
      requireRoot(c.get('caller'));
      return c.json({ items: await listIssuers(sql, c.req.valid('param').name) }, 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/-/policies', tags: ['vos'], summary: 'Built-in policy packages', responses: { 200: json(z.object({ items: z.array(z.string()) }), 'Names') } }),
    (c) => c.json({ items: Object.keys(BUILTIN_POLICIES) }, 200),
  );

  return app;
}
