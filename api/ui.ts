import type { Context } from 'hono';
import { Hono } from 'hono';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AppEnv } from './env.ts';

const UI_DIR = fileURLToPath(new URL('./ui/', import.meta.url));
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
const VENDOR: Record<string, string> = { 'uPlot.iife.min.js': UPLOT_DIR, 'uPlot.min.css': UPLOT_DIR };

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

const cache = new Map<string, Buffer>();

/**
 * Serves `rel` from under `root` (never outside it). Files are read once and kept: they ship with
 * the code and do not change while the process runs.
 */
export async function serveStatic(c: Context, root: string, rel: string): Promise<Response> {
  const full = resolve(root, rel);
  if (!full.startsWith(resolve(root) + sep)) return c.json({ error: { code: 'RouteNotFound', message: 'no such file' } }, 404);
  let data = cache.get(full);
  if (!data) {
    try {
      data = await readFile(full);
    } catch {
      return c.json({ error: { code: 'RouteNotFound', message: `no such file: ${rel}` } }, 404);
    }
    cache.set(full, data);
  }
  return c.body(new Uint8Array(data), 200, {
    'content-type': TYPES[extname(full)] ?? 'application/octet-stream',
    'cache-control': 'no-cache',
  });
}

/**
 * GET /ui: the admin dashboard, plain HTML/CSS/JS modules from api/ui/ plus uPlot (from npm) for
 * charts. No build step and no token needed to fetch the page itself: it logs in with a token
 * kept in sessionStorage and calls the /v1 API with it, so it sees exactly what that token may.
 */
export function uiRoutes() {
  const app = new Hono<AppEnv>();
  app.get('/', (c) => serveStatic(c, UI_DIR, 'index.html'));
  app.get('/vendor/:file', (c) => {
    const file = c.req.param('file');
    const dir = VENDOR[file];
    if (!dir) return c.json({ error: { code: 'RouteNotFound', message: `no vendor file '${file}'` } }, 404);
    return serveStatic(c, dir, file);
  });
  app.get('/:file{.+}', (c) => serveStatic(c, UI_DIR, c.req.param('file')));
  return app;
}
