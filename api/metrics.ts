import { Hono } from 'hono';
import { renderMetrics } from '../core/metrics.ts';
import type { AppEnv } from './env.ts';

/**
 * GET /metrics: Prometheus text exposition, without a token. Scrapers rarely carry bearer
 * tokens, and nothing here is a VO's data beyond names and counts (VO, RSE, endpoint and link
 * names; queue depths; bytes): restrict who reaches /metrics at the network level (bind the API
 * to an internal address or filter /metrics in the reverse proxy) where that matters.
 * Not in /openapi.json: it is not part of the JSON API.
 */
export function metricsRoutes() {
  const app = new Hono<AppEnv>();
  app.get('/', async (c) => {
    const { contentType, body } = await renderMetrics();
    return c.body(body, 200, { 'content-type': contentType, 'cache-control': 'no-store' });
  });
  return app;
}
