import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { matchedRoutes } from 'hono/route';
import { randomUUID } from 'node:crypto';
import { isSluiceError, pgCode } from '../core/errors.ts';
import { bindMetricsDatabase, recordHttpRequest } from '../core/metrics.ts';
import type { AppDeps, AppEnv } from './env.ts';
import { validationError } from './http.ts';
import { accountRoutes } from './accounts.ts';
import { didRoutes } from './dids.ts';
import { endpointRoutes } from './endpoints.ts';
import { replicaRoutes } from './replicas.ts';
import { rseRoutes } from './rses.ts';
import { requestRoutes } from './requests.ts';
import { ruleRoutes } from './rules.ts';
import { limitRoutes } from './limits.ts';
import { linkRoutes } from './links.ts';
import { scopeRoutes } from './scopes.ts';
import { transferDataRoutes } from './transfers-data.ts';
import { voRoutes } from './vos.ts';
import { docsRoutes } from './docs.ts';
import { endpointStatusRoutes } from './endpoint-status.ts';
import { linkStatsRoutes } from './link-stats.ts';
import { usageRoutes } from './usage.ts';
import { metricsRoutes } from './metrics.ts';
import { uiRoutes } from './ui.ts';

export const API_VERSION = '0.1.0';

/** The matched route pattern (bounded label values), never the raw path; 'unmatched' for 404s. */
function routeLabel(c: Context): string {
  const route = matchedRoutes(c)[c.req.routeIndex];
  return route && route.method !== 'ALL' ? route.path : 'unmatched';
}

/** The whole HTTP API as one Hono app; `app.request()` drives it in tests without a socket. */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });

  bindMetricsDatabase(deps.sql);

  app.use('*', async (c, next) => {
    const requestId = c.req.header('x-request-id')?.slice(0, 64) || randomUUID();
    c.set('requestId', requestId);
    c.set('log', deps.log.child({ requestId }));
    c.header('x-request-id', requestId);
    const started = performance.now();
    await next();
    const ms = performance.now() - started;
    c.get('log').debug({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(ms) }, 'request');
    recordHttpRequest(c.req.method, routeLabel(c), c.res.status, ms / 1000);
  });

  app.route('/metrics', metricsRoutes());
  app.route('/docs', docsRoutes());
  app.route('/ui', uiRoutes());

  app.get('/health', async (c) => {
    try {
      await deps.sql`select 1`;
      return c.json({ status: 'ok', version: API_VERSION });
    } catch {
      return c.json({ status: 'unavailable', error: { code: 'DatabaseUnavailable', message: 'database is not reachable' } }, 503);
    }
  });

  const limitBody = bodyLimit({
    maxSize: 32 * 1024 * 1024,
    onError: () => {
      throw new HTTPException(413, { message: 'request body is larger than 32 MiB; split it (at most 10,000 items per request)' });
    },
  });
  // Not for GET and HEAD, which carry no body here: bodyLimit reads `c.req.raw.body`, and that
  // makes @hono/node-server build a full fetch Request (headers, AbortController) for every
  // request, a tenth of the event loop's time on small reads (bench/api-load.ts profile).
  app.use('/v1/*', (c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limitBody(c, next)));
  app.use('/v1/*', async (c, next) => {
    c.set('caller', await deps.verifier.verify(c.req.header('authorization')));
    await next();
  });

  app.route('/v1/vos', voRoutes(deps));
  app.route('/v1/accounts', accountRoutes(deps));
  app.route('/v1/scopes', scopeRoutes(deps));
  app.route('/v1/endpoints', endpointRoutes(deps));
  app.route('/v1/rses', rseRoutes(deps));
  app.route('/v1/dids', didRoutes(deps));
  app.route('/v1/replicas', replicaRoutes(deps));
  app.route('/v1/rules', ruleRoutes(deps));
  app.route('/v1/requests', requestRoutes(deps));
  app.route('/v1/accounts', limitRoutes(deps));
  app.route('/v1/links', linkRoutes(deps));
  app.route('/v1/links', linkStatsRoutes(deps));
  app.route('/v1/endpoints', endpointStatusRoutes(deps));
  app.route('/v1/usage', usageRoutes(deps));
  app.route('/v1', transferDataRoutes(deps));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Sluice API', version: API_VERSION, description: 'Replica catalogue, replication rules and transfers.' },
    security: [{ bearer: [] }],
  });

  app.notFound((c) => c.json({ error: { code: 'RouteNotFound', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

  app.onError((err, c) => {
    if (isSluiceError(err) && err.status < 500) {
      return c.json({ error: { code: err.code, message: err.message } }, err.status as 400);
    }
    if (err instanceof HTTPException) {
      const code =
        err.status === 400 ? 'MalformedJson' : err.status === 413 ? 'RequestTooLarge' : err.status === 415 ? 'UnsupportedMediaType' : 'BadRequest';
      return c.json({ error: { code, message: err.message || code } }, err.status);
    }
    if (err instanceof Error && err.name === 'ZodError') {
      const v = validationError(err as never);
      return c.json({ error: { code: v.code, message: v.message } }, 400);
    }
    const log = c.get('log') ?? deps.log;
    if (isSluiceError(err)) {
      log.warn({ err, code: err.code }, 'request failed');
      return c.json({ error: { code: err.code, message: err.message } }, err.status as 503);
    }
    const sqlstate = pgCode(err);
    // Lost database connections are the client's cue to retry; everything else is our bug.
    if (sqlstate?.startsWith('08') || sqlstate === '57P01' || (err as { code?: string }).code === 'ECONNREFUSED' || (err as { code?: string }).code === 'CONNECTION_CLOSED') {
      log.warn({ err }, 'database unavailable');
      return c.json({ error: { code: 'DatabaseUnavailable', message: 'the database is not reachable; retry shortly' } }, 503);
    }
    log.error({ err }, 'unhandled error');
    return c.json({ error: { code: 'InternalError', message: `internal error (request id ${c.get('requestId')})` } }, 500);
  });

  return app;
}
