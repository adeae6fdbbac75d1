/**
 * Replication rules: "N copies of this DID on RSEs matching this expression". Creating a rule and
 * every later judge step (evaluator, repairer, cleaner) go through reconcileRule: list the rule's
 * files once, diff them against its locks, place what is missing in JS (core/placement.ts) and
 * write locks, replicas and requests in a few set-based statements (core/locks.ts).
 *
 * Concurrency: whoever changes a rule's locks holds its row lock (`for update`), so two judge
 * processes serialise per rule and the second one sees the first one's locks; lock, replica and
 * live-request keys turn anything that slips through into an error, never a duplicate.
 */
import { randomInt } from 'node:crypto';
import type { Sql, TransactionSql } from './db.ts';
import { withTransaction } from './db.ts';
import { Conflict, Forbidden, InvalidInput, isSluiceError, NotFound, SluiceError } from './errors.ts';
import { getDid, MAX_BULK, scopeOwners, type DidKey, type DidType } from './catalogue.ts';
import { createRseIndex, evaluateRseExpression, parseRseExpression, type RseCandidate, type RseExpressionStep } from './rse-expression.ts';
import { createLocks, createLocksPipelined, emptyBatch, releaseLocks, retryStuckLocks, type LockBatch, type LockCounts, type RuleRef } from './locks.ts';
import { placeUnits, seededRandom, weightsFrom, InsufficientTargetRses, type PlacementCandidate, type PlacementUnit, type Random } from './placement.ts';
import { accountQuota } from './quota.ts';
import { assertAllowed, type ResolvedPolicy } from '../policies/registry.ts';
import { pathsFor, rankDestinations } from '../policies/hooks.ts';

export type Grouping = 'ALL' | 'DATASET' | 'NONE';
export type RuleState = 'REPLICATING' | 'OK' | 'STUCK' | 'SUSPENDED';
export type LockState = 'OK' | 'REPLICATING' | 'STUCK';

export const GROUPINGS: readonly Grouping[] = ['ALL', 'DATASET', 'NONE'];
export const RULE_STATES: readonly RuleState[] = ['REPLICATING', 'OK', 'STUCK', 'SUSPENDED'];
/** Ten years: beyond that a lifetime is a typo, and "no lifetime" says it better. */
export const MAX_LIFETIME_SECONDS = 10 * 365 * 86400;
export const MAX_DIDS_PER_REQUEST = 1000;
/** Files per lock statement when a rule places many (see placeAndLock). */
const FILES_PER_BATCH = 10_000;

export interface Rule {
  id: string;
  account: string;
  scope: string;
  name: string;
  did_type: DidType;
  copies: number;
  rse_expression: string;
  grouping: Grouping;
  weight: string | null;
  expires_at: Date | null;
  activity: string;
  priority: number;
  source_replica_expression: string | null;
  purge_replicas: boolean;
  locked: boolean;
  comment: string | null;
  state: RuleState;
  locks_ok_cnt: number;
  locks_replicating_cnt: number;
  locks_stuck_cnt: number;
  unplaced_cnt: number;
  error: string | null;
  stuck_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** What the judge needs beyond the public view. */
interface RuleRow extends Rule {
  vo: string;
  repair_attempts: number;
}

export interface RuleProgress {
  bytes_total: number;
  bytes_ok: number;
  bytes_replicating: number;
  bytes_stuck: number;
}

export interface NewRule {
  dids: DidKey[];
  copies: number;
  rse_expression: string;
  grouping?: Grouping;
  weight?: string | null;
  /** Seconds from now; null or absent: the rule never expires. */
  lifetime?: number | null;
  activity?: string;
  priority?: number;
  source_replica_expression?: string | null;
  purge_replicas?: boolean;
  locked?: boolean;
  comment?: string | null;
}

export interface RulePatch {
  lifetime?: number | null;
  priority?: number;
  activity?: string;
  locked?: boolean;
  comment?: string | null;
}

export interface JudgeContext {
  policy: ResolvedPolicy;
  random: Random;
  graceSeconds?: number;
  /** Files per lock statement (default 10,000); tests use small ones to cover several. */
  filesPerBatch?: number;
}

const RULE_COLUMNS = (sql: Sql | TransactionSql) => sql`
  id, vo, account, scope, name, did_type, copies, rse_expression, grouping, weight, expires_at, activity, priority,
  source_replica_expression, purge_replicas, locked, comment, state, locks_ok_cnt, locks_replicating_cnt,
  locks_stuck_cnt, unplaced_cnt, error, stuck_at, repair_attempts, created_at, updated_at`;

function publicRule(r: RuleRow): Rule {
  const { vo: _vo, repair_attempts: _a, ...rest } = r;
  return rest;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ACTIVITY = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/;
const WEIGHT = /^[A-Za-z0-9_.-]{1,64}$/;

// ---------------------------------------------------------------------------------------------
// Validation that needs no database

function checkLifetime(lifetime: number | null | undefined): void {
  if (lifetime === undefined || lifetime === null) return;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > MAX_LIFETIME_SECONDS) {
    throw new InvalidInput('InvalidLifetime', `lifetime must be a whole number of seconds between 1 and ${MAX_LIFETIME_SECONDS} (or null for none), got ${lifetime}`);
  }
}

function checkPriority(priority: number | undefined): void {
  if (priority === undefined) return;
  if (!Number.isInteger(priority) || priority < 1 || priority > 5) throw new InvalidInput('InvalidPriority', `priority must be 1 (lowest) to 5 (highest), got ${priority}`);
}

function checkActivity(activity: string | undefined): void {
  if (activity !== undefined && !ACTIVITY.test(activity)) {
    throw new InvalidInput('InvalidActivity', `activity '${activity.slice(0, 80)}' must be 1-64 letters, digits, spaces, '_', '.', '-'`);
  }
}

function checkComment(comment: string | null | undefined): void {
  if (comment && comment.length > 1000) throw new InvalidInput('InvalidComment', 'comment must be at most 1000 characters');
}

export function validateNewRule(r: NewRule): void {
  if (!Array.isArray(r.dids) || r.dids.length === 0) throw new InvalidInput('EmptyRequest', 'a rule needs at least one DID');
  if (r.dids.length > MAX_DIDS_PER_REQUEST) throw new InvalidInput('TooManyItems', `at most ${MAX_DIDS_PER_REQUEST} DIDs per request, got ${r.dids.length}`);
  const seen = new Set<string>();
  for (const d of r.dids) {
    const k = `${d.scope}:${d.name}`;
    if (seen.has(k)) throw new InvalidInput('DuplicateDid', `DID '${k}' appears twice in the request`);
    seen.add(k);
  }
  if (!Number.isInteger(r.copies) || r.copies < 1) throw new InvalidInput('InvalidCopies', `copies must be a whole number >= 1, got ${r.copies}`);
  if (r.grouping !== undefined && !GROUPINGS.includes(r.grouping)) {
    throw new InvalidInput('InvalidGrouping', `grouping must be ALL, DATASET or NONE, got '${String(r.grouping).slice(0, 40)}'`);
  }
  if (r.weight != null && !WEIGHT.test(r.weight)) throw new InvalidInput('InvalidWeight', `weight must name an RSE attribute (1-64 letters, digits, _ . -), got '${r.weight.slice(0, 80)}'`);
  checkLifetime(r.lifetime);
  checkPriority(r.priority);
  checkActivity(r.activity);
  checkComment(r.comment);
  parseRseExpression(r.rse_expression);
  if (r.source_replica_expression != null) parseRseExpression(r.source_replica_expression);
}

// ---------------------------------------------------------------------------------------------
// RSEs and targets

interface VoRse extends RseCandidate {
  prefix: string;
  writable: boolean;
}

export async function voRses(sql: Sql | TransactionSql, vo: string): Promise<VoRse[]> {
  return sql<VoRse[]>`
    select r.id, r.name, r.prefix, r.availability_write as writable,
           coalesce((select jsonb_object_agg(a.key, a.value) from rse_attributes a where a.rse_id = r.id), '{}'::jsonb) as attributes
    from rses r where r.vo = ${vo} and r.deleted_at is null order by r.name`;
}

/** The RSEs of the caller's VO matching an expression, with the steps when asked. */
export async function resolveExpression(
  sql: Sql,
  vo: string,
  expression: string,
  options: { explain?: boolean } = {},
): Promise<{ rses: string[]; steps?: RseExpressionStep[] }> {
  const ast = parseRseExpression(expression);
  const rses = await voRses(sql, vo);
  const result = evaluateRseExpression(ast, createRseIndex(rses), options);
  return { rses: result.rses.map((r) => r.name), steps: result.steps };
}

interface Targets {
  rses: VoRse[];
  candidates: PlacementCandidate[];
  byId: Map<number, number>;
  quota: { account: string; limits: Map<number, number>; used: Map<number, number> };
  /** Candidate indexes in the VO policy's order of preference (rankDestinations), if it gave one. */
  preferred?: number[];
}

/**
 * The rule's expression over the VO's RSEs, minus RSEs that do not take writes, with weights and
 * the account's remaining quota. Throws the expression's errors and InsufficientTargetRses.
 */
async function targetsFor(
  tx: Sql | TransactionSql,
  rule: Pick<RuleRow, 'vo' | 'account' | 'rse_expression' | 'weight' | 'copies' | 'scope' | 'name' | 'grouping' | 'activity'>,
  policy: ResolvedPolicy,
  all?: VoRse[],
): Promise<Targets> {
  const rses = all ?? (await voRses(tx, rule.vo));
  const matched = evaluateRseExpression(rule.rse_expression, createRseIndex(rses)).rses as VoRse[];
  const writable = matched.filter((r) => r.writable);
  const quota = await accountQuota(tx, rule.vo, rule.account);
  const weights = weightsFrom(writable, rule.weight);
  const candidates = writable.map((r, i) => {
    const limit = quota.limits.get(r.id);
    return { id: r.id, name: r.name, weight: weights[i], remaining: limit === undefined ? Number.POSITIVE_INFINITY : limit - (quota.used.get(r.id) ?? 0) };
  });
  // Policy packages: the VO's rankDestinations may drop candidates (weight 0: never picked) and
  // order the rest (placeUnits takes them in that order after RSEs that already hold the data).
  const ranking = await rankDestinations(policy, writable, {
    vo: rule.vo,
    account: rule.account,
    rule: { scope: rule.scope, name: rule.name, copies: rule.copies, grouping: rule.grouping, activity: rule.activity, rse_expression: rule.rse_expression },
  });
  const dropped = ranking ? ranking.dropped.filter((i) => weights[i] > 0).map((i) => writable[i].name) : [];
  if (ranking) for (const i of ranking.dropped) candidates[i].weight = 0;
  const usable = candidates.filter((c) => c.weight > 0).length;
  if (usable < rule.copies) {
    const notWritable = matched.filter((r) => !r.writable).map((r) => r.name);
    const noWeight = rule.weight ? writable.filter((_, i) => weights[i] === 0).map((r) => r.name) : [];
    throw new InsufficientTargetRses(
      `${rule.copies} cop${rule.copies === 1 ? 'y' : 'ies'} asked, but '${rule.rse_expression}' gives only ${usable} usable RSE${usable === 1 ? '' : 's'}` +
        ` (matched: ${matched.map((r) => r.name).join(', ')}` +
        `${notWritable.length ? `; not writable: ${notWritable.join(', ')}` : ''}` +
        `${noWeight.length ? `; no positive '${rule.weight}' weight: ${noWeight.join(', ')}` : ''}` +
        `${dropped.length ? `; left out by policy '${policy.name}': ${dropped.join(', ')}` : ''})`,
      { copies: rule.copies, matched: matched.map((r) => r.name), not_writable: notWritable, no_weight: noWeight, policy_dropped: dropped },
    );
  }
  return { rses: writable, candidates, byId: new Map(writable.map((r, i) => [r.id, i])), quota: { account: rule.account, ...quota }, preferred: ranking?.preferred };
}

// ---------------------------------------------------------------------------------------------
// Files of a rule

/** `tree` CTE body: every DID below the rule's DID, with the dataset each file was reached through. */
function treeCte(tx: TransactionSql, vo: string, did: DidKey) {
  return tx`
    tree(scope, name, type, ds_scope, ds_name) as (
      select scope, name, type,
             case when type = 'DATASET' then scope end, case when type = 'DATASET' then name end
      from dids where vo = ${vo} and scope = ${did.scope} and name = ${did.name}
      union
      select c.child_scope, c.child_name, c.child_type,
             case when c.child_type = 'DATASET' then c.child_scope else t.ds_scope end,
             case when c.child_type = 'DATASET' then c.child_name else t.ds_name end
      from did_contents c join tree t on c.vo = ${vo} and c.scope = t.scope and c.name = t.name
      where t.type <> 'FILE'
    )`;
}

interface MissingFile {
  scope: string;
  name: string;
  bytes: number;
  adler32: string;
  ds_scope: string | null;
  ds_name: string | null;
  present: number[];
}

async function missingFiles(tx: TransactionSql, rule: RuleRow, candidateIds: number[]): Promise<MissingFile[]> {
  return tx<MissingFile[]>`
    with recursive ${treeCte(tx, rule.vo, rule)},
    files as (
      select distinct on (scope, name) scope, name, ds_scope, ds_name from tree where type = 'FILE'
      order by scope, name, ds_scope, ds_name
    ),
    -- EXCEPT (hash or sort, always linear-ish) rather than NOT EXISTS: right after a big rule
    -- the planner's statistics on locks are stale and a nested loop over them is quadratic.
    todo as (
      select scope, name from files
      except
      select scope, name from locks where rule_id = ${rule.id}::uuid
    )
    select f.scope, f.name, d.bytes, d.adler32, f.ds_scope, f.ds_name,
           array(select r.rse_id::int from replicas r
                 where r.vo = ${rule.vo} and r.scope = f.scope and r.name = f.name
                   and r.state in ('AVAILABLE', 'COPYING') and r.rse_id = any(${candidateIds}::bigint[])) as present
    from todo t
    join files f on f.scope = t.scope and f.name = t.name
    join dids d on d.vo = ${rule.vo} and d.scope = f.scope and d.name = f.name`;
}

/** Locks of files no longer below the rule's DID (detached). */
async function orphanedFiles(tx: TransactionSql, rule: RuleRow): Promise<{ scope: string; name: string }[]> {
  return tx<{ scope: string; name: string }[]>`
    with recursive ${treeCte(tx, rule.vo, rule)}
    select scope, name from locks where rule_id = ${rule.id}::uuid
    except
    select scope, name from tree where type = 'FILE'`;
}

// ---------------------------------------------------------------------------------------------
// Reconciliation: the one place locks are placed

export interface ReconcileResult extends LockCounts {
  /** Locks released because their files left the rule's DID. */
  released: number;
  /** Files that could not be placed (strict=false only); the rule is STUCK with the error. */
  unplaced: number;
}

/**
 * Brings a rule's locks in line with the files below its DID: files without a lock get
 * `copies` locks (placed per grouping unit), locks of files no longer below it are released.
 * The caller holds the rule row lock. strict: placement problems throw (rule creation); else
 * they are recorded on the rule (unplaced_cnt, error) and the rule turns STUCK.
 */
export async function reconcileRule(tx: TransactionSql, rule: RuleRow, ctx: JudgeContext & { strict: boolean }): Promise<ReconcileResult> {
  const result: ReconcileResult = { ok: 0, replicating: 0, requests: 0, released: 0, unplaced: 0 };
  const orphans = await orphanedFiles(tx, rule);
  if (orphans.length) {
    const rel = await releaseLocks(tx, rule, { files: { scopes: orphans.map((o) => o.scope), names: orphans.map((o) => o.name) } }, {
      purge: rule.purge_replicas,
      graceSeconds: ctx.graceSeconds,
    });
    result.released = rel.released;
  }
  let targets: Targets;
  let missing: MissingFile[];
  try {
    targets = await targetsFor(tx, rule, ctx.policy);
    missing = await missingFiles(tx, rule, targets.candidates.map((c) => c.id));
    if (missing.length === 0) {
      if (rule.unplaced_cnt > 0) await tx`update rules set unplaced_cnt = 0 where id = ${rule.id}::uuid`;
      return result;
    }
    const counts = await placeAndLock(tx, rule, targets, missing, ctx);
    Object.assign(result, counts);
    if (rule.unplaced_cnt > 0) await tx`update rules set unplaced_cnt = 0 where id = ${rule.id}::uuid`;
    return result;
  } catch (e) {
    if (ctx.strict || !isSluiceError(e) || e.status >= 500) throw e;
    // The expression no longer resolves, too few RSEs, or no quota left: nothing placed for
    // this rule now; the rule is STUCK with the reason and the repairer tries again.
    const [{ n }] = await tx<{ n: number }[]>`
      with recursive ${treeCte(tx, rule.vo, rule)}
      select count(distinct (t.scope, t.name))::int as n from tree t
      where t.type = 'FILE' and not exists (select 1 from locks l where l.rule_id = ${rule.id}::uuid and l.scope = t.scope and l.name = t.name)`;
    await tx`update rules set unplaced_cnt = ${n}, error = ${`${e.code}: ${e.message}`.slice(0, 4000)} where id = ${rule.id}::uuid`;
    result.unplaced = n;
    return result;
  }
}

async function placeAndLock(tx: TransactionSql, rule: RuleRow, targets: Targets, missing: MissingFile[], ctx: JudgeContext): Promise<LockCounts> {
  // Grouping units: one for ALL, one per dataset for DATASET, one per file for NONE.
  const unitOf = new Int32Array(missing.length);
  const units: PlacementUnit[] = [];
  const unitKeys: string[] = [];
  const unitIndex = new Map<string, number>();
  for (let i = 0; i < missing.length; i++) {
    const f = missing[i];
    let u: number;
    if (rule.grouping === 'NONE') {
      u = units.length;
      units.push({ bytes: 0 });
      unitKeys.push(`file '${f.scope}:${f.name}'`);
    } else {
      const key = rule.grouping === 'ALL' ? '' : f.ds_scope !== null ? `${f.ds_scope}:${f.ds_name}` : `${f.scope}:${f.name}`;
      const found = unitIndex.get(key);
      if (found === undefined) {
        u = units.length;
        unitIndex.set(key, u);
        units.push({ bytes: 0 });
        unitKeys.push(rule.grouping === 'ALL' ? `the files of '${rule.scope}:${rule.name}'` : `dataset '${key}'`);
      } else u = found;
    }
    unitOf[i] = u;
    const unit = units[u];
    unit.bytes += f.bytes;
    if (f.present.length) {
      unit.present ??= new Map();
      for (const id of f.present) {
        const c = targets.byId.get(id);
        if (c !== undefined) unit.present.set(c, (unit.present.get(c) ?? 0) + f.bytes);
      }
    }
  }
  await pinExistingPlacement(tx, rule, targets, units, unitIndex);

  const picks = placeUnits(targets.candidates, units, {
    copies: rule.copies,
    random: ctx.random,
    preferred: targets.preferred,
    describeUnit: (u) => unitKeys[u],
    quota: targets.quota,
  });

  // Batches of files, each sent as soon as its paths are known (createLocksPipelined): the
  // database writes one while the next one's lfn2pfn runs. Policy packages: one lfn2pfn batch
  // per RSE and batch (checked paths; a bad one throws, nothing written).
  async function* batches(): AsyncGenerator<LockBatch> {
    const perBatch = ctx.filesPerBatch ?? FILES_PER_BATCH;
    for (let start = 0; start < missing.length; start += perBatch) {
      const b = emptyBatch();
      const at: VoRse[] = [];
      for (let i = start; i < Math.min(missing.length, start + perBatch); i++) {
        const f = missing[i];
        for (const c of picks[unitOf[i]]) {
          const rse = targets.rses[c];
          b.scopes.push(f.scope);
          b.names.push(f.name);
          b.rseIds.push(rse.id);
          b.bytes.push(f.bytes);
          b.adler32.push(f.adler32);
          at.push(rse);
        }
      }
      b.paths = await pathsFor(ctx.policy, b.scopes, b.names, at);
      yield b;
    }
  }
  return createLocksPipelined(tx, ruleRef(rule), batches());
}

/** New files of a unit the rule already placed go where the unit's other files are (ALL, DATASET). */
async function pinExistingPlacement(tx: TransactionSql, rule: RuleRow, targets: Targets, units: PlacementUnit[], unitIndex: Map<string, number>): Promise<void> {
  if (rule.grouping === 'NONE' || rule.locks_ok_cnt + rule.locks_replicating_cnt + rule.locks_stuck_cnt === 0) return;
  if (rule.grouping === 'ALL') {
    const rows = await tx<{ rse_id: number }[]>`
      select rse_id from locks where rule_id = ${rule.id}::uuid group by rse_id order by count(*) desc, rse_id`;
    const pinned = rows.map((r) => targets.byId.get(r.rse_id)).filter((c): c is number => c !== undefined);
    if (units[0] && pinned.length) units[0].pinned = pinned;
    return;
  }
  const keys = [...unitIndex.keys()].filter((k) => k.includes(':'));
  const scopes = keys.map((k) => k.slice(0, k.indexOf(':')));
  const names = keys.map((k) => k.slice(k.indexOf(':') + 1));
  const rows = await tx<{ scope: string; name: string; rse_id: number }[]>`
    select c.scope, c.name, l.rse_id from locks l
    join did_contents c on c.vo = l.vo and c.child_scope = l.scope and c.child_name = l.name
    join unnest(${scopes}::text[], ${names}::text[]) as t(scope, name) on c.scope = t.scope and c.name = t.name
    where l.rule_id = ${rule.id}::uuid and c.vo = ${rule.vo}
    group by c.scope, c.name, l.rse_id order by c.scope, c.name, count(*) desc, l.rse_id`;
  for (const r of rows) {
    const u = unitIndex.get(`${r.scope}:${r.name}`);
    const c = targets.byId.get(r.rse_id);
    if (u === undefined || c === undefined) continue;
    (units[u].pinned ??= []).push(c);
  }
}

function ruleRef(rule: RuleRow): RuleRef {
  return { vo: rule.vo, id: rule.id, account: rule.account, activity: rule.activity, priority: rule.priority };
}

export function randomFor(seed?: number): Random {
  return seededRandom(seed ?? randomInt(2 ** 31));
}

// ---------------------------------------------------------------------------------------------
// Rule CRUD

export interface CreateRuleOptions {
  policy: ResolvedPolicy;
  /** Seed for placement (tests, reproducible runs); random when absent. */
  seed?: number;
  graceSeconds?: number;
  /** Files per lock statement (default 10,000). */
  filesPerBatch?: number;
}

/**
 * Policy packages, before anything is written: per DID, the VO's ruleDefaults fill grouping,
 * activity and lifetime the client left out, then the VO's permission hook decides `rule.add`
 * knowing the RSEs the expression matches (a package may keep some RSEs to some roles).
 */
async function policyRuleFields(
  sql: Sql,
  vo: string,
  account: string,
  input: NewRule,
  matched: readonly RseCandidate[],
  policy: ResolvedPolicy,
): Promise<Array<{ grouping: Grouping; activity: string; lifetime: number | null }>> {
  const out: Array<{ grouping: Grouping; activity: string; lifetime: number | null }> = [];
  for (const key of input.dids) {
    const d = await policy.ruleDefaults({ vo, account, did: { scope: key.scope, name: key.name }, copies: input.copies, rse_expression: input.rse_expression });
    out.push({
      grouping: input.grouping ?? d.grouping ?? 'DATASET',
      activity: input.activity ?? d.activity ?? 'default',
      lifetime: input.lifetime !== undefined ? input.lifetime : (d.lifetime ?? null),
    });
  }
  // The default package allows rule.add to everyone (the API checked the scopes already).
  if (!policy.hooks.has('permission')) return out;
  const [acct] = await sql<{ role: 'admin' | 'user' }[]>`select role from accounts where vo = ${vo} and name = ${account}`;
  const owners = await scopeOwners(sql, vo, input.dids.map((d) => d.scope));
  const rses = matched.map((r) => ({ name: r.name, attributes: r.attributes }));
  for (const [n, key] of input.dids.entries()) {
    await assertAllowed(policy, 'rule.add', {
      vo,
      account,
      role: acct?.role ?? 'user',
      scope: key.scope,
      scopeAccount: owners.get(key.scope)!,
      did: { scope: key.scope, name: key.name },
      copies: input.copies,
      rse_expression: input.rse_expression,
      ...out[n],
      rses,
    });
  }
  return out;
}

/**
 * Creates one rule per DID, all or nothing: every rule's locks, missing replicas (COPYING) and
 * transfer requests are written in one transaction, or nothing is.
 */
export async function createRules(sql: Sql, vo: string, account: string, input: NewRule, options: CreateRuleOptions): Promise<Rule[]> {
  validateNewRule(input);
  // Fail on the expression (and on too few RSEs) before touching anything.
  const all = await voRses(sql, vo);
  const ix = createRseIndex(all);
  const matched = evaluateRseExpression(input.rse_expression, ix).rses;
  if (input.source_replica_expression != null) evaluateRseExpression(input.source_replica_expression, ix);
  const random = randomFor(options.seed);
  const settled = await policyRuleFields(sql, vo, account, input, matched, options.policy);
  return withTransaction(sql, async (tx) => {
    const rules: Rule[] = [];
    for (const [n, key] of input.dids.entries()) {
      const { grouping, activity, lifetime } = settled[n];
      const did = await getDid(tx, vo, key);
      // Attaching to any collection below the DID waits for this rule to commit (attachDids
      // locks the parent FOR UPDATE), so the evaluator cannot miss a file attached meanwhile.
      await tx`
        with recursive ${treeCte(tx, vo, key)}
        select 1 from dids d join tree t on d.vo = ${vo} and d.scope = t.scope and d.name = t.name
        where t.type <> 'FILE' for share of d`;
      const [row] = await tx<RuleRow[]>`
        insert into rules (vo, account, scope, name, did_type, copies, rse_expression, grouping, weight, expires_at,
                           activity, priority, source_replica_expression, purge_replicas, locked, comment)
        values (${vo}, ${account}, ${did.scope}, ${did.name}, ${did.type}, ${input.copies}, ${input.rse_expression}, ${grouping},
                ${input.weight ?? null}, ${lifetime == null ? null : new Date(Date.now() + lifetime * 1000)},
                ${activity}, ${input.priority ?? 3}, ${input.source_replica_expression ?? null},
                ${input.purge_replicas ?? false}, ${input.locked ?? false}, ${input.comment ?? null})
        returning ${RULE_COLUMNS(tx)}`;
      await reconcileRule(tx, row, { policy: options.policy, random, strict: true, graceSeconds: options.graceSeconds, filesPerBatch: options.filesPerBatch });
      rules.push(publicRule(await lockedRule(tx, vo, row.id)));
    }
    return rules;
  });
}

async function lockedRule(tx: TransactionSql, vo: string, id: string): Promise<RuleRow> {
  const [row] = await tx<RuleRow[]>`select ${RULE_COLUMNS(tx)} from rules where vo = ${vo} and id = ${id}::uuid for update`;
  if (!row) throw new NotFound('RuleNotFound', `rule '${id}' does not exist in VO '${vo}'`);
  return row;
}

function checkId(vo: string, id: string): void {
  if (!UUID.test(id)) throw new NotFound('RuleNotFound', `rule '${id.slice(0, 80)}' does not exist in VO '${vo}'`);
}

export async function getRule(sql: Sql, vo: string, id: string): Promise<Rule & { progress: RuleProgress }> {
  checkId(vo, id);
  const [row] = await sql<(RuleRow & { progress: RuleProgress })[]>`
    select ${RULE_COLUMNS(sql)},
      (select jsonb_build_object(
         'bytes_total', coalesce(sum(bytes), 0),
         'bytes_ok', coalesce(sum(bytes) filter (where state = 'OK'), 0),
         'bytes_replicating', coalesce(sum(bytes) filter (where state = 'REPLICATING'), 0),
         'bytes_stuck', coalesce(sum(bytes) filter (where state = 'STUCK'), 0))
       from locks l where l.rule_id = rules.id) as progress
    from rules where vo = ${vo} and id = ${id}::uuid`;
  if (!row) throw new NotFound('RuleNotFound', `rule '${id}' does not exist in VO '${vo}'`);
  const { progress, ...rule } = row;
  return { ...publicRule(rule), progress };
}

/** The rule's owner, for permission checks (404 when not in the VO). */
export async function ruleOwner(sql: Sql, vo: string, id: string): Promise<{ account: string; scope: string }> {
  checkId(vo, id);
  const [row] = await sql<{ account: string; scope: string }[]>`select account, scope from rules where vo = ${vo} and id = ${id}::uuid`;
  if (!row) throw new NotFound('RuleNotFound', `rule '${id}' does not exist in VO '${vo}'`);
  return row;
}

export async function listRules(
  sql: Sql,
  vo: string,
  opts: { account?: string; did?: DidKey; scope?: string; state?: RuleState; after?: [string, string]; limit: number },
): Promise<Rule[]> {
  const rows = await sql<RuleRow[]>`
    select ${RULE_COLUMNS(sql)} from rules
    where vo = ${vo}
      ${opts.account ? sql`and account = ${opts.account}` : sql``}
      ${opts.did ? sql`and scope = ${opts.did.scope} and name = ${opts.did.name}` : sql``}
      ${opts.scope && !opts.did ? sql`and scope = ${opts.scope}` : sql``}
      ${opts.state ? sql`and state = ${opts.state}` : sql``}
      ${opts.after ? sql`and (created_at, id) > (${opts.after[0]}::timestamptz, ${opts.after[1]}::uuid)` : sql``}
    order by created_at, id
    limit ${opts.limit + 1}`;
  return rows.map(publicRule);
}

export interface LockView {
  scope: string;
  name: string;
  rse: string;
  state: LockState;
  bytes: number;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

export async function listLocks(
  sql: Sql,
  vo: string,
  id: string,
  opts: { state?: LockState; after?: [string, string, string]; limit: number },
): Promise<LockView[]> {
  checkId(vo, id);
  const [rule] = await sql`select 1 from rules where vo = ${vo} and id = ${id}::uuid`;
  if (!rule) throw new NotFound('RuleNotFound', `rule '${id}' does not exist in VO '${vo}'`);
  return sql<LockView[]>`
    select l.scope, l.name, r.name as rse, l.state, l.bytes, l.error, l.created_at, l.updated_at
    from locks l join rses r on r.id = l.rse_id
    where l.rule_id = ${id}::uuid
      ${opts.state ? sql`and l.state = ${opts.state}` : sql``}
      ${opts.after ? sql`and (l.scope, l.name, r.name) > (${opts.after[0]}, ${opts.after[1]}, ${opts.after[2]})` : sql``}
    order by l.scope, l.name, r.name
    limit ${opts.limit + 1}`;
}

export function validateRulePatch(p: RulePatch): void {
  if (p.lifetime !== undefined) checkLifetime(p.lifetime);
  checkPriority(p.priority);
  checkActivity(p.activity);
  checkComment(p.comment);
  if (Object.keys(p).length === 0) throw new InvalidInput('EmptyRequest', 'nothing to update: give lifetime, priority, activity, locked or comment');
}

/**
 * Changes lifetime, priority, activity, locked or comment. A new priority or activity reaches the
 * rule's queued transfer requests (a request shared by several rules keeps the highest priority).
 */
export async function updateRule(sql: Sql, vo: string, id: string, patch: RulePatch): Promise<Rule> {
  checkId(vo, id);
  validateRulePatch(patch);
  return withTransaction(sql, async (tx) => {
    await lockedRule(tx, vo, id);
    await tx`
      update rules set
        expires_at = case when ${patch.lifetime !== undefined} then ${patch.lifetime == null ? null : new Date(Date.now() + patch.lifetime * 1000)}::timestamptz else expires_at end,
        priority = coalesce(${patch.priority ?? null}::int, priority),
        activity = coalesce(${patch.activity ?? null}::text, activity),
        locked = coalesce(${patch.locked ?? null}::boolean, locked),
        comment = case when ${patch.comment !== undefined} then ${patch.comment ?? null}::text else comment end
      where id = ${id}::uuid`;
    if (patch.priority !== undefined) {
      await tx`
        update requests q set priority = m.priority, updated_at = now()
        from (
          select l.scope, l.name, l.rse_id, max(r.priority) as priority
          from locks mine
          join locks l on l.vo = mine.vo and l.scope = mine.scope and l.name = mine.name and l.rse_id = mine.rse_id and l.state = 'REPLICATING'
          join rules r on r.id = l.rule_id
          where mine.rule_id = ${id}::uuid and mine.state = 'REPLICATING'
          group by l.scope, l.name, l.rse_id
        ) m
        where q.vo = ${vo} and q.scope = m.scope and q.name = m.name and q.dest_rse_id = m.rse_id and q.state = 'QUEUED'
          and q.priority <> m.priority`;
    }
    if (patch.activity !== undefined) {
      await tx`
        update requests q set activity = ${patch.activity}, updated_at = now()
        from locks l
        where l.rule_id = ${id}::uuid and l.state = 'REPLICATING' and q.vo = ${vo} and q.scope = l.scope
          and q.name = l.name and q.dest_rse_id = l.rse_id and q.state = 'QUEUED'`;
    }
    return publicRule(await lockedRule(tx, vo, id));
  });
}

/** Deletes a rule and releases its locks (tombstones follow); a locked rule is refused. */
export async function deleteRule(sql: Sql, vo: string, id: string, options: { graceSeconds?: number; force?: boolean } = {}): Promise<{ released: number }> {
  checkId(vo, id);
  return withTransaction(sql, async (tx) => {
    const rule = await lockedRule(tx, vo, id);
    if (rule.locked && !options.force) {
      throw new Conflict('RuleLocked', `rule '${id}' is locked; unlock it first (PUT {"locked": false}) if it really should go`);
    }
    return removeRule(tx, rule, options.graceSeconds);
  });
}

async function removeRule(tx: TransactionSql, rule: RuleRow, graceSeconds?: number): Promise<{ released: number }> {
  const rel = await releaseLocks(tx, rule, { all: true }, { purge: rule.purge_replicas, graceSeconds });
  await tx`delete from rules where id = ${rule.id}::uuid`;
  return { released: rel.released };
}

/** Non-admins may change and delete only their own rules. */
export function checkRuleOwner(actor: { account: string; role: 'admin' | 'user' }, owner: { account: string }, action: string): void {
  if (actor.role !== 'admin' && owner.account !== actor.account) {
    throw new Forbidden(`rule belongs to account '${owner.account}'; only it or a VO admin may ${action} it`, 'PermissionDenied');
  }
}

// ---------------------------------------------------------------------------------------------
// Judge steps (the daemons claim the work and call these inside their transaction)

/** Rules on the given collections or on any collection above them, locked in id order. */
export async function lockRulesAbove(tx: TransactionSql, dids: Array<{ vo: string; scope: string; name: string }>): Promise<RuleRow[]> {
  if (dids.length === 0) return [];
  return tx<RuleRow[]>`
    with recursive up(vo, scope, name) as (
      select * from unnest(${dids.map((d) => d.vo)}::text[], ${dids.map((d) => d.scope)}::text[], ${dids.map((d) => d.name)}::text[])
      union
      select c.vo, c.scope, c.name from did_contents c join up on c.vo = up.vo and c.child_scope = up.scope and c.child_name = up.name
    )
    select ${RULE_COLUMNS(tx)} from rules
    where (vo, scope, name) in (select vo, scope, name from up)
    order by id for update`;
}

export async function lockRule(tx: TransactionSql, id: string): Promise<RuleRow | undefined> {
  const [row] = await tx<RuleRow[]>`select ${RULE_COLUMNS(tx)} from rules where id = ${id}::uuid for update`;
  return row;
}

/** Expired rule: delete it and release its locks (the cleaner; locked rules are kept). */
export async function expireRule(tx: TransactionSql, rule: RuleRow, graceSeconds?: number): Promise<number> {
  return (await removeRule(tx, rule, graceSeconds)).released;
}

export interface RepairResult {
  placed: number;
  moved: number;
  retried: number;
  suspended: boolean;
}

/**
 * One repair pass over a STUCK rule: place files that could not be placed before, move each
 * STUCK lock to another RSE of the expression (not one the rule already uses for that file), and
 * where no other RSE can take it, queue the same transfer again after `retryDelaySeconds`.
 */
export async function repairRule(tx: TransactionSql, rule: RuleRow, ctx: JudgeContext & { retryDelaySeconds: number; batch?: number }): Promise<RepairResult> {
  const res: RepairResult = { placed: 0, moved: 0, retried: 0, suspended: false };
  if (rule.unplaced_cnt > 0) {
    const r = await reconcileRule(tx, rule, { ...ctx, strict: false });
    res.placed = r.ok + r.replicating;
  }
  const stuck = await tx<{ scope: string; name: string; rse_id: number; bytes: number; adler32: string; others: number[]; present: number[] }[]>`
    select l.scope, l.name, l.rse_id, l.bytes, d.adler32,
           array(select o.rse_id::int from locks o where o.rule_id = l.rule_id and o.scope = l.scope and o.name = l.name) as others,
           array(select p.rse_id::int from replicas p where p.vo = l.vo and p.scope = l.scope and p.name = l.name and p.state = 'AVAILABLE') as present
    from locks l join dids d on d.vo = l.vo and d.scope = l.scope and d.name = l.name
    where l.rule_id = ${rule.id}::uuid and l.state = 'STUCK'
    order by l.scope, l.name, l.rse_id
    limit ${ctx.batch ?? 10_000}`;
  if (!stuck.length) return res;
  let targets: Targets | undefined;
  try {
    targets = await targetsFor(tx, rule, ctx.policy);
  } catch (e) {
    if (!isSluiceError(e) || e.status >= 500) throw e;
  }
  const move = { scopes: [] as string[], names: [] as string[], rseIds: [] as number[] };
  const retry = { scopes: [] as string[], names: [] as string[], rseIds: [] as number[] };
  const b = emptyBatch();
  const at: VoRse[] = [];
  for (const l of stuck) {
    let pick: number | undefined;
    if (targets) {
      const exclude = l.others.map((id) => targets.byId.get(id)).filter((c): c is number => c !== undefined);
      const present = new Map<number, number>();
      for (const id of l.present) {
        const c = targets.byId.get(id);
        if (c !== undefined) present.set(c, l.bytes);
      }
      try {
        pick = placeUnits(targets.candidates, [{ bytes: l.bytes, exclude, present }], { copies: 1, random: ctx.random, preferred: targets.preferred })[0][0];
        targets.candidates[pick].remaining -= l.bytes;
      } catch (e) {
        if (!isSluiceError(e)) throw e;
      }
    }
    if (pick === undefined) {
      retry.scopes.push(l.scope), retry.names.push(l.name), retry.rseIds.push(l.rse_id);
      continue;
    }
    const rse = targets!.rses[pick];
    move.scopes.push(l.scope), move.names.push(l.name), move.rseIds.push(l.rse_id);
    b.scopes.push(l.scope), b.names.push(l.name), b.rseIds.push(rse.id), b.bytes.push(l.bytes), b.adler32.push(l.adler32);
    at.push(rse);
  }
  if (move.scopes.length) {
    b.paths = await pathsFor(ctx.policy, b.scopes, b.names, at);
    // A stuck replica holds no data: with no other lock it can be reaped at once.
    await releaseLocks(tx, rule, { locks: move }, { purge: true });
    await createLocks(tx, ruleRef(rule), b);
    res.moved = move.scopes.length;
  }
  res.retried = await retryStuckLocks(tx, ruleRef(rule), retry, ctx.retryDelaySeconds);
  return res;
}
