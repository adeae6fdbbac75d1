import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import {
  checkRuleOwner,
  createRules,
  deleteRule,
  getRule,
  listLocks,
  listRules,
  ruleOwner,
  updateRule,
  GROUPINGS,
  MAX_DIDS_PER_REQUEST,
  RULE_STATES,
} from '../core/rules.ts';
import { scopeOwners } from '../core/catalogue.ts';
import { InvalidInput, NotFound } from '../core/errors.ts';
import type { AppDeps, AppEnv } from './env.ts';
import {
  AccountName,
  AttributeKey,
  Cursor,
  DidName,
  DidRef,
  Limit,
  ScopeName,
  actorOf,
  body,
  decodeCursor,
  errorResponses,
  json,
  page,
  paginate,
  validationError,
} from './http.ts';

/** Rule fields whose validation failures have their own codes (the rest: api/http.ts defaults). */
const RULE_FIELD_CODES: Record<string, string> = {
  copies: 'InvalidCopies',
  lifetime: 'InvalidLifetime',
  grouping: 'InvalidGrouping',
  priority: 'InvalidPriority',
  activity: 'InvalidActivity',
  weight: 'InvalidWeight',
  rse_expression: 'InvalidRSEExpression',
  source_replica_expression: 'InvalidRSEExpression',
  comment: 'InvalidComment',
  state: 'InvalidState',
  id: 'RuleNotFound',
};

function ruleValidationError(error: z.ZodError) {
  const base = validationError(error);
  if (base.code === 'UnknownField') return base;
  const path = error.issues[0].path.map(String);
  const field = [...path].reverse().find((p) => !/^\d+$/.test(p));
  const code = field && RULE_FIELD_CODES[field];
  if (!code) return base;
  // A malformed rule id cannot name a rule: the same 404 as an unknown one.
  if (code === 'RuleNotFound') return new NotFound(code, 'that is not a rule id (rule ids are UUIDs)');
  return new InvalidInput(code, base.message, { details: base.details });
}

const Grouping = z.enum(GROUPINGS as [string, ...string[]]);
const RuleState = z.enum(RULE_STATES as [string, ...string[]]);
const Lifetime = z.number().int('must be a whole number of seconds').min(1, 'must be at least 1 second (null: no expiry)').nullable();
const Priority = z.number().int().min(1).max(5);
const Activity = z.string().min(1).max(64);
const Expression = z.string().min(1).max(8192);

const NewRule = z
  .object({
    dids: z.array(DidRef).min(1).max(MAX_DIDS_PER_REQUEST),
    copies: z.number().int('must be a whole number').min(1, 'must be at least 1'),
    rse_expression: Expression,
    grouping: Grouping.optional().openapi({ description: 'ALL: every file on the same RSEs; DATASET (default): per dataset; NONE: per file' }),
    weight: AttributeKey.nullable().optional().openapi({ description: 'RSE attribute whose numeric value weights the random choice' }),
    lifetime: Lifetime.optional().openapi({ description: 'seconds until the rule expires (null or absent: never)' }),
    activity: Activity.optional(),
    priority: Priority.optional().openapi({ description: '1 (lowest) to 5 (highest); default 3' }),
    source_replica_expression: Expression.nullable().optional(),
    purge_replicas: z.boolean().optional(),
    locked: z.boolean().optional(),
    comment: z.string().max(1000).nullable().optional(),
  })
  .strict();

const RulePatch = z
  .object({
    lifetime: Lifetime.optional(),
    priority: Priority.optional(),
    activity: Activity.optional(),
    locked: z.boolean().optional(),
    comment: z.string().max(1000).nullable().optional(),
  })
  .strict();

const Rule = z
  .object({
    id: z.string(),
    account: z.string(),
    scope: z.string(),
    name: z.string(),
    did_type: z.string(),
    copies: z.number(),
    rse_expression: z.string(),
    grouping: z.string(),
    weight: z.string().nullable(),
    expires_at: z.date().nullable(),
    activity: z.string(),
    priority: z.number(),
    source_replica_expression: z.string().nullable(),
    purge_replicas: z.boolean(),
    locked: z.boolean(),
    comment: z.string().nullable(),
    state: z.string(),
    locks_ok_cnt: z.number(),
    locks_replicating_cnt: z.number(),
    locks_stuck_cnt: z.number(),
    unplaced_cnt: z.number(),
    error: z.string().nullable(),
    stuck_at: z.date().nullable(),
    created_at: z.date(),
    updated_at: z.date(),
  })
  .openapi('Rule');
const Progress = z.object({ bytes_total: z.number(), bytes_ok: z.number(), bytes_replicating: z.number(), bytes_stuck: z.number() });
const RuleWithProgress = Rule.extend({ progress: Progress }).openapi('RuleWithProgress');
const Lock = z
  .object({ scope: z.string(), name: z.string(), rse: z.string(), state: z.string(), bytes: z.number(), error: z.string().nullable(), created_at: z.date(), updated_at: z.date() })
  .openapi('Lock');
const IdParam = z.object({ id: z.string().uuid() });

export function ruleRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw ruleValidationError(result.error);
    },
  });
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['rules'],
      summary: 'Create one rule per DID: copies on RSEs matching the expression; all or nothing',
      request: { body: body(NewRule) },
      responses: { 201: json(z.object({ ids: z.array(z.string()), rules: z.array(Rule) }), 'Created'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const input = c.req.valid('json') as z.infer<typeof NewRule> & { grouping?: 'ALL' | 'DATASET' | 'NONE' };
      // Unknown scopes are a 404 here; the permission hook is asked once, in createRules, with
      // everything it may need (the DID, its scope's owner, the RSEs the expression matched).
      await scopeOwners(sql, actor.vo, input.dids.map((d) => d.scope));
      const rules = await createRules(sql, actor.vo, actor.account, input, { policy: await policies.forVo(actor.vo) });
      return c.json({ ids: rules.map((r) => r.id), rules }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['rules'],
      summary: 'List rules of your VO, by account, DID (scope + name) or scope, and state',
      request: {
        query: z.object({ account: AccountName.optional(), scope: ScopeName.optional(), name: DidName.optional(), state: RuleState.optional(), limit: Limit, cursor: Cursor }),
      },
      responses: { 200: json(page(Rule), 'Rules'), ...errorResponses },
    }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const q = c.req.valid('query');
      if (q.name && !q.scope) throw new InvalidInput('InvalidInput', 'name filters need scope too (a DID is scope:name)');
      const after = decodeCursor(q.cursor, 2) as [string, string] | undefined;
      const rows = await listRules(sql, vo, {
        account: q.account,
        did: q.scope && q.name ? { scope: q.scope, name: q.name } : undefined,
        scope: q.scope,
        state: q.state as never,
        after,
        limit: q.limit,
      });
      return c.json(paginate(rows, q.limit, (r) => [r.created_at.toISOString(), r.id]), 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/{id}', tags: ['rules'], request: { params: IdParam }, responses: { 200: json(RuleWithProgress, 'The rule with lock counters and bytes'), ...errorResponses } }),
    async (c) => c.json(await getRule(sql, actorOf(c.get('caller')).vo, c.req.valid('param').id), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{id}',
      tags: ['rules'],
      summary: 'Change lifetime, priority, activity, locked or comment',
      request: { params: IdParam, body: body(RulePatch) },
      responses: { 200: json(Rule, 'Updated'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { id } = c.req.valid('param');
      const owner = await ruleOwner(sql, actor.vo, id);
      await policies.authorize('rule.update', { ...actor, ruleAccount: owner.account, scope: owner.scope });
      checkRuleOwner(actor, owner, 'update');
      return c.json(await updateRule(sql, actor.vo, id, c.req.valid('json')), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['rules'],
      summary: 'Delete a rule and release its locks (a locked rule is refused)',
      request: { params: IdParam },
      responses: { 200: json(z.object({ id: z.string(), locks_released: z.number() }), 'Deleted'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { id } = c.req.valid('param');
      const owner = await ruleOwner(sql, actor.vo, id);
      await policies.authorize('rule.delete', { ...actor, ruleAccount: owner.account, scope: owner.scope });
      checkRuleOwner(actor, owner, 'delete');
      const { released } = await deleteRule(sql, actor.vo, id);
      return c.json({ id, locks_released: released }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/locks',
      tags: ['rules'],
      request: { params: IdParam, query: z.object({ state: z.enum(['OK', 'REPLICATING', 'STUCK']).optional(), limit: Limit, cursor: Cursor }) },
      responses: { 200: json(page(Lock), 'Locks of the rule'), ...errorResponses },
    }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const { limit, cursor, state } = c.req.valid('query');
      const after = decodeCursor(cursor, 3) as [string, string, string] | undefined;
      const rows = await listLocks(sql, vo, c.req.valid('param').id, { state, after, limit });
      return c.json(paginate(rows, limit, (l) => [l.scope, l.name, l.rse]), 200);
    },
  );

  return app;
}
