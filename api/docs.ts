import { Hono } from 'hono';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import type { AppEnv } from './env.ts';
import { serveStatic } from './ui.ts';

const SWAGGER_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const ASSETS = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'favicon-32x32.png', 'favicon-16x16.png']);

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Sluice API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/docs-init.js"></script>
</body>
</html>`;

// A separate file rather than an inline script, so that a strict CSP (script-src 'self') works.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: false,
});`;

/**
 * GET /docs: interactive API documentation (Swagger UI) over /openapi.json. Its assets come from
 * the swagger-ui-dist npm package and are served by the API itself: no CDN, works offline.
 * "Authorize" takes a bearer token (sluice token).
 */
export function docsRoutes() {
  const app = new Hono<AppEnv>();
  app.get('/', (c) => c.html(PAGE));
  app.get('/assets/docs-init.js', (c) => c.body(INIT, 200, { 'content-type': 'text/javascript; charset=utf-8' }));
  app.get('/assets/:file', async (c) => {
    const file = c.req.param('file');
    if (!ASSETS.has(file)) return c.json({ error: { code: 'RouteNotFound', message: `no docs asset '${file}'` } }, 404);
    return serveStatic(c, SWAGGER_DIR, file);
  });
  return app;
}
