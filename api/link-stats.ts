import { createRoute, z } from '@hono/zod-openapi';
import { linkStats } from '../core/link-stats.ts';
import type { AppDeps } from './env.ts';
import { createRouter, errorResponses, json } from './http.ts';

const Point = z.object({
  t: z.date(),
  bytes: z.number(),
  bytes_per_second: z.number(),
  files_done: z.number(),
  files_failed: z.number(),
  failed_by_class: z.record(z.string(), z.number()).openapi({ description: 'failed attempts by error code' }),
  mean_duration_ms: z.number().nullable().openapi({ description: 'of successful attempts' }),
});
const Stats = z
  .object({
    link_id: z.number(),
    step: z.number(),
    from: z.date(),
    to: z.date(),
    points: z.array(Point).openapi({ description: 'totals per step over the VOs the caller may see; zeros where nothing happened' }),
    by_vo: z.array(Point.extend({ vo: z.string() })),
  })
  .openapi('LinkStats');

/** GET /v1/links/{id}/stats: mounted at /v1/links next to the lead's api/links.ts. */
export function linkStatsRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/stats',
      tags: ['links'],
      summary: 'Throughput, files done/failed (by error class) and mean duration of a link over time',
      description:
        'Steps under an hour read per-minute statistics (kept 24 hours; the last two minutes are live), steps of whole hours the hourly ones (kept 30 days). A VO caller sees only its own VO.',
      request: {
        params: z.object({ id: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }),
        query: z.object({
          from: z.coerce.date().optional().openapi({ description: 'ISO time; default: one hour before `to`' }),
          to: z.coerce.date().optional().openapi({ description: 'ISO time; default: now' }),
          step: z.coerce.number().int().min(60).max(30 * 86400).optional().openapi({ description: 'seconds, a multiple of 60; default 60 (3600 for ranges over a day)' }),
        }),
      },
      responses: { 200: json(Stats, 'Statistics'), ...errorResponses },
    }),
    async (c) => {
      const caller = c.get('caller');
      const q = c.req.valid('query');
      const to = q.to ?? new Date();
      const from = q.from ?? new Date(to.getTime() - 3600_000);
      const step = q.step ?? (to.getTime() - from.getTime() > 86400_000 ? 3600 : 60);
      const stats = await linkStats(sql, c.req.valid('param').id, { from, to, step, vo: caller.kind === 'root' ? undefined : caller.vo });
      return c.json(stats, 200);
    },
  );

  return app;
}
