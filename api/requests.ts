import { createRoute, z } from '@hono/zod-openapi';
import { getRequest, listRequests } from '../core/requests.ts';
import { Forbidden } from '../core/errors.ts';
import type { AppDeps } from './env.ts';
import { Cursor, Limit, VoName, createRouter, decodeCursor, errorResponses, json, page, paginate } from './http.ts';

const State = z.enum(['QUEUED', 'ACTIVE', 'DONE', 'FAILED']);

const Attempt = z
  .object({
    attempt: z.number(),
    source_rse: z.string().nullable(),
    dest_rse: z.string(),
    link_id: z.number().nullable(),
    mode: z.string().nullable(),
    bytes: z.number(),
    duration_ms: z.number(),
    error_code: z.string().nullable(),
    error_phase: z.string().nullable(),
    retryable: z.boolean().nullable(),
    message: z.string().nullable(),
    owner: z.string().nullable(),
    started_at: z.date().nullable(),
    finished_at: z.date(),
  })
  .openapi('TransferAttempt');

const Request = z
  .object({
    id: z.number(),
    vo: z.string(),
    scope: z.string(),
    name: z.string(),
    state: State,
    dest_rse: z.string(),
    source_rse: z.string().nullable(),
    link_id: z.number().nullable(),
    bytes: z.number(),
    bytes_done: z.number().openapi({ description: 'live progress of the running attempt (flushed every few seconds)' }),
    adler32: z.string(),
    activity: z.string(),
    priority: z.number(),
    attempts: z.number(),
    max_attempts: z.number().nullable(),
    mode: z.string().nullable(),
    waiting_reason: z.string().nullable().openapi({ description: 'why a QUEUED request is not running (no source yet, retry backoff)' }),
    error: z.string().nullable(),
    not_before: z.date().nullable(),
    lease_owner: z.string().nullable(),
    lease_expires_at: z.date().nullable(),
    started_at: z.date().nullable(),
    finished_at: z.date().nullable(),
    created_at: z.date(),
    updated_at: z.date(),
  })
  .openapi('TransferRequest');
const RequestWithAttempts = Request.extend({ attempts_list: z.array(Attempt) }).openapi('TransferRequestWithAttempts');

const Query = z
  .object({
    state: State.optional(),
    rule: z.string().uuid('must be a rule id (UUID)').optional(),
    link: z.coerce.number().int().min(1).optional(),
    activity: z.string().min(1).max(64).optional(),
    vo: VoName.optional().openapi({ description: 'root only: one VO (VO callers always see their own)' }),
    limit: Limit,
    cursor: Cursor,
  })
  .strict();
const IdParam = z.object({ id: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });

/**
 * Transfer requests: read-only. Users never submit transfers (rules do); VO callers see their
 * VO's requests, root sees every VO's.
 */
export function requestRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql } = deps;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['transfers'],
      summary: 'Transfer requests, newest first, by state, rule, link, activity (and VO for root)',
      request: { query: Query },
      responses: { 200: json(page(Request), 'Requests'), ...errorResponses },
    }),
    async (c) => {
      const caller = c.get('caller');
      const q = c.req.valid('query');
      if (caller.kind !== 'root' && q.vo !== undefined && q.vo !== caller.vo) {
        throw new Forbidden(`a VO account sees only its own VO's requests; drop vo=${q.vo}`, 'VoMismatch');
      }
      const vo = caller.kind === 'root' ? q.vo : caller.vo;
      const after = decodeCursor(q.cursor, 1) as [number] | undefined;
      const rows = await listRequests(sql, { vo, state: q.state, ruleId: q.rule, linkId: q.link, activity: q.activity, before: after?.[0], limit: q.limit });
      return c.json(paginate(rows, q.limit, (r) => [r.id]), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['transfers'],
      summary: 'One request with every attempt (source, mode, bytes, duration, error) and live progress',
      request: { params: IdParam },
      responses: { 200: json(RequestWithAttempts, 'The request'), ...errorResponses },
    }),
    async (c) => {
      const caller = c.get('caller');
      return c.json(await getRequest(sql, caller.kind === 'root' ? undefined : caller.vo, c.req.valid('param').id), 200);
    },
  );

  return app;
}
