import { createRoute, z } from '@hono/zod-openapi';
import { usageReport } from '../core/usage.ts';
import type { AppDeps } from './env.ts';
import { VoName, createRouter, errorResponses, json } from './http.ts';

const RseUsage = z
  .object({ vo: z.string(), rse: z.string(), files: z.number(), bytes: z.number(), quota_bytes: z.number().nullable() })
  .openapi('RseUsage');
const AccountUsage = z.object({ vo: z.string(), account: z.string(), rse: z.string(), files: z.number(), bytes: z.number() }).openapi('AccountRseUsage');

/** GET /v1/usage: replicas per VO and RSE (kept current by triggers) and rules' usage per account. */
export function usageRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['usage'],
      summary: "Bytes and files of AVAILABLE replicas per RSE, and locked by each account's rules per RSE",
      description:
        "A VO admin sees its VO's RSEs and every account of its VO; a VO user its VO's RSEs and its own account; root every VO (or one with ?vo=).",
      request: { query: z.object({ vo: VoName.optional().openapi({ description: 'root only: one VO' }) }) },
      responses: { 200: json(z.object({ rses: z.array(RseUsage), accounts: z.array(AccountUsage) }), 'Usage'), ...errorResponses },
    }),
    async (c) => {
      const caller = c.get('caller');
      const q = c.req.valid('query');
      const opts =
        caller.kind === 'root'
          ? { vo: q.vo }
          : { vo: caller.vo, account: caller.role === 'admin' ? undefined : caller.account };
      return c.json(await usageReport(sql, opts), 200);
    },
  );

  return app;
}
