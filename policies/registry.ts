/**
 * Which policy each VO runs, and the one way Sluice calls it.
 *
 * A VO's `policy_package` names a built-in (`default`, `identity`), a file (absolute, or relative
 * to this policies/ directory: `examples/run-number.ts`) or an installed module. Built-ins run
 * in-process; anything else runs in a worker thread of its own (worker-bridge.ts), so a package
 * that throws, loops or crashes fails only the current request of its VO, with a PolicyError.
 *
 * Every hook is async here, and the per-file hooks take batches: a rule over 100,000 files is ten
 * messages to the worker, not 100,000. Results are checked (results.ts) before anyone uses them.
 *
 * Loading: the VO's setting is re-read after `cacheMs`; a changed name (or, for a file, a changed
 * mtime) loads the new package in the background of that request and swaps it in when it loaded.
 * A package that fails to load is refused with a clear message (logged) and the VO keeps its
 * previous package. A VO with no previous package is NOT silently given `default`: its requests
 * fail with PolicyLoadFailed until the package is fixed, because the default's paths and
 * permissions are not what that community asked for (files would land at paths its tools do not
 * expect, and its permission rules would not apply).
 */
import { stat } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import type { Sql } from '../core/db.ts';
import { Forbidden, InvalidInput } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import defaultPolicy from './default.ts';
import identityPolicy from './identity.ts';
import { PolicyError, isPolicyError } from './errors.ts';
import {
  checkExtracted,
  checkPolicyPath,
  checkRank,
  checkRefusal,
  checkRuleDefaults,
  checkVerdict,
  type Checked,
  type PermissionDecision,
  type RankDecision,
} from './results.ts';
import { checkPackageShape } from './shape.ts';
import { POLICY_API_VERSION } from './types.ts';
import type {
  DestinationContext,
  PermissionContext,
  PolicyAction,
  PolicyDid,
  PolicyHook,
  PolicyPackage,
  PolicyRse,
  RuleDefaults,
  RuleDefaultsContext,
  SourceContext,
  SourceRseCandidate,
} from './types.ts';
import { PolicyWorker } from './worker-bridge.ts';

export type { PermissionDecision, RankDecision } from './results.ts';
export { PolicyError, isPolicyError } from './errors.ts';

/** A VO's policy with every hook present (the package's own, else the default's); all async, results checked. */
export interface ResolvedPolicy {
  /** The package's own name. */
  name: string;
  /** What the VO's setting says (built-in name, path or module). */
  source: string;
  /** Hooks the package itself provides (the rest are the default's). */
  hooks: ReadonlySet<PolicyHook>;
  /** Paths (relative to each RSE's prefix) of files on one deterministic RSE, in input order. */
  lfn2pfn(dids: PolicyDid[], rse: PolicyRse): Promise<string[]>;
  /** Per DID: a refusal message, or undefined when the name is fine. */
  validateDids(dids: PolicyDid[]): Promise<(string | undefined)[]>;
  /** Per name: scope and name, or undefined when the package cannot tell. */
  extractScopes(names: string[]): Promise<(PolicyDid | undefined)[]>;
  /** The package's verdict, the default's when it defers. */
  permission(action: PolicyAction, ctx: PermissionContext): Promise<{ allow: boolean; reason?: string }>;
  /** undefined: keep Sluice's own choice. */
  rankDestinations(candidates: PolicyRse[], ctx: DestinationContext): Promise<RankDecision | undefined>;
  rankSources(candidates: SourceRseCandidate[], ctx: SourceContext): Promise<RankDecision | undefined>;
  ruleDefaults(ctx: RuleDefaultsContext): Promise<RuleDefaults>;
}

export const BUILTIN_POLICIES: Record<string, PolicyPackage> = { default: defaultPolicy, identity: identityPolicy };

export interface PolicyOptions {
  /** Budget of one hook call (a batch adds perItemMs per item). Default 2000. */
  callTimeoutMs?: number;
  /** Extra budget per item of a batch hook. Default 0.05 (10,000 files: +500 ms). */
  perItemMs?: number;
  /** Items per message to a worker. Default 10,000. */
  batchSize?: number;
  /** Import and shape check of a custom package. Default 15,000 (TypeScript is compiled on load). */
  loadTimeoutMs?: number;
  /** Heap cap of each package worker. Default 256. */
  maxHeapMb?: number;
}

interface ResolvedOptions {
  callTimeoutMs: number;
  perItemMs: number;
  batchSize: number;
  loadTimeoutMs: number;
  maxHeapMb: number;
}

function resolveOptions(o: PolicyOptions): ResolvedOptions {
  const r = {
    callTimeoutMs: o.callTimeoutMs ?? 2000,
    perItemMs: o.perItemMs ?? 0.05,
    batchSize: o.batchSize ?? 10_000,
    loadTimeoutMs: o.loadTimeoutMs ?? 15_000,
    maxHeapMb: o.maxHeapMb ?? 256,
  };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isFinite(v) || v < 0 || (k !== 'perItemMs' && v === 0)) throw new Error(`policy option ${k} must be a positive number, got ${v}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Running hooks: in-process (built-ins) or in a worker (everything else)

interface HookRunner {
  name: string;
  hooks: ReadonlySet<PolicyHook>;
  /** Batch hooks: one result per item. */
  batch(hook: 'lfn2pfn' | 'validateDid' | 'extractScope', items: unknown[], extra: unknown, budgetMs: number): Promise<unknown[]>;
  call(hook: Exclude<PolicyHook, 'lfn2pfn' | 'validateDid' | 'extractScope'>, args: unknown[], budgetMs: number): Promise<unknown>;
  dispose(): Promise<void>;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Built-ins are trusted code: no thread, no budget, but a throw is still a PolicyError. */
function inProcessRunner(pkg: PolicyPackage, vo?: string): HookRunner {
  const hooks = new Set(checkShapeOrThrow(pkg, pkg.name).hooks);
  const fail = (hook: PolicyHook, e: unknown, item?: number) =>
    new PolicyError('PolicyHookFailed', `policy '${pkg.name}' ${hook}${item === undefined ? '' : ` (item ${item})`} threw: ${describe(e)}`, { package: pkg.name, hook, vo, cause: e });
  return {
    name: pkg.name,
    hooks,
    async batch(hook, items, extra) {
      const fn = pkg[hook] as (a: unknown, b?: unknown) => unknown;
      const out = new Array<unknown>(items.length);
      for (let i = 0; i < items.length; i++) {
        try {
          const v = fn.call(pkg, items[i], extra);
          out[i] = v instanceof Promise ? await v : v;
        } catch (e) {
          throw fail(hook, e, i);
        }
      }
      return out;
    },
    async call(hook, args) {
      try {
        return await (pkg[hook] as (...a: unknown[]) => unknown).apply(pkg, args);
      } catch (e) {
        throw fail(hook, e);
      }
    },
    async dispose() {},
  };
}

function checkShapeOrThrow(pkg: unknown, source: string) {
  const shape = checkPackageShape(pkg, source);
  if ('problem' in shape) throw new PolicyError('PolicyLoadFailed', `policy package ${shape.problem}`, { package: source, hook: 'load', reason: shape.code });
  return shape;
}

function workerRunner(worker: PolicyWorker): HookRunner {
  return {
    name: worker.packageName,
    hooks: new Set(worker.shape!.hooks),
    async batch(hook, items, extra, budgetMs) {
      const message =
        hook === 'lfn2pfn'
          ? { hook, dids: items, rse: extra }
          : hook === 'validateDid'
            ? { hook, dids: items }
            : { hook, names: items as string[] };
      const out = (await worker.call({ hook, message: message as never }, budgetMs)) as unknown;
      if (!Array.isArray(out) || out.length !== items.length) {
        throw new PolicyError('PolicyInvalidResult', `policy '${worker.packageName}' ${hook} worker answered ${Array.isArray(out) ? out.length : typeof out} results for ${items.length} items`, {
          package: worker.packageName,
          hook,
        });
      }
      return out;
    },
    call(hook, args, budgetMs) {
      return worker.call({ hook, message: { hook, args } as never }, budgetMs);
    },
    async dispose() {
      await worker.idle();
      await worker.terminate();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// From a runner to a ResolvedPolicy: fallbacks, batching, result checks

const defaultRunner = inProcessRunner(defaultPolicy);

function resolveRunner(runner: HookRunner, source: string, opts: ResolvedOptions, vo?: string): ResolvedPolicy {
  const name = runner.name;
  const budget = (n: number) => Math.ceil(opts.callTimeoutMs + opts.perItemMs * n);
  const invalid = (hook: PolicyHook, problem: string) => new PolicyError('PolicyInvalidResult', `policy '${name}' ${hook} ${problem}`, { package: name, hook, vo });
  const pick = (hook: PolicyHook) => (runner.hooks.has(hook) ? runner : defaultRunner);
  function must<T>(hook: PolicyHook, r: Checked<T>, what = ''): T {
    if (!r.ok) throw invalid(hook, `${what}${r.problem}`);
    return r.value;
  }
  async function batched(hook: 'lfn2pfn' | 'validateDid' | 'extractScope', items: unknown[], extra?: unknown): Promise<unknown[]> {
    const r = pick(hook);
    if (items.length <= opts.batchSize) return r.batch(hook, items, extra, budget(items.length));
    const out: unknown[] = [];
    for (let i = 0; i < items.length; i += opts.batchSize) {
      const chunk = items.slice(i, i + opts.batchSize);
      const part = await r.batch(hook, chunk, extra, budget(chunk.length));
      for (const v of part) out.push(v);
    }
    return out;
  }
  async function lfn2pfnBatch(dids: PolicyDid[], rse: PolicyRse): Promise<string[]> {
    if (dids.length === 0) return [];
    const plain = { name: rse.name, prefix: rse.prefix, attributes: rse.attributes };
    const raw = await batched('lfn2pfn', dids.map((d) => ({ scope: d.scope, name: d.name, ...(d.type ? { type: d.type } : {}) })), plain);
    const out = new Array<string>(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = must('lfn2pfn', checkPolicyPath(raw[i]), `for '${dids[i].scope}:${dids[i].name}' on ${rse.name} `);
    return out;
  }
  return {
    name,
    source,
    hooks: runner.hooks,
    lfn2pfn: lfn2pfnBatch,
    async validateDids(dids) {
      if (dids.length === 0) return [];
      const raw = await batched('validateDid', dids.map((d) => ({ scope: d.scope, name: d.name, ...(d.type ? { type: d.type } : {}) })));
      return raw.map((v, i) => must('validateDid', checkRefusal(v), `for '${dids[i].scope}:${dids[i].name}' `));
    },
    async extractScopes(names) {
      if (names.length === 0) return [];
      const raw = await batched('extractScope', names);
      return raw.map((v, i) => must('extractScope', checkExtracted(v), `for '${names[i].slice(0, 80)}' `));
    },
    async permission(action, ctx) {
      let d: PermissionDecision = { verdict: undefined };
      if (runner.hooks.has('permission')) d = must('permission', checkVerdict(await runner.call('permission', [action, { ...ctx }], budget(1))), `for ${action} `);
      if (d.verdict === undefined) d = must('permission', checkVerdict(await defaultRunner.call('permission', [action, ctx], 0)));
      return { allow: d.verdict === 'allow', reason: d.reason };
    },
    async rankDestinations(candidates, ctx) {
      if (!runner.hooks.has('rankDestinations') || candidates.length === 0) return undefined;
      const plain = candidates.map((c) => ({ name: c.name, prefix: c.prefix, attributes: c.attributes }));
      return must('rankDestinations', checkRank(await runner.call('rankDestinations', [plain, ctx], budget(candidates.length)), candidates));
    },
    async rankSources(candidates, ctx) {
      if (!runner.hooks.has('rankSources') || candidates.length === 0) return undefined;
      const plain = candidates.map((c) => ({ name: c.name, attributes: c.attributes, distance: c.distance }));
      return must('rankSources', checkRank(await runner.call('rankSources', [plain, ctx], budget(candidates.length)), candidates));
    },
    async ruleDefaults(ctx) {
      if (!runner.hooks.has('ruleDefaults')) return {};
      return must('ruleDefaults', checkRuleDefaults(await runner.call('ruleDefaults', [ctx], budget(1))));
    },
  };
}

/** An in-process package (built-ins, tests) as a ResolvedPolicy. */
export function resolvePolicy(pkg: PolicyPackage, options: PolicyOptions = {}): ResolvedPolicy {
  return resolveRunner(inProcessRunner(pkg), pkg.name, resolveOptions(options));
}

/** Throws Forbidden (PermissionDenied) unless `policy` allows `action`. */
export async function assertAllowed(policy: ResolvedPolicy, action: PolicyAction, ctx: PermissionContext): Promise<void> {
  const d = await policy.permission(action, ctx);
  if (!d.allow) {
    const base = `account '${ctx.account}' may not ${action.replace('.', ' ')} in VO '${ctx.vo}' (policy '${policy.name}')`;
    throw new Forbidden(d.reason ? `${base}: ${d.reason}` : base, 'PermissionDenied');
  }
}

// ---------------------------------------------------------------------------------------------
// Naming a package

const POLICIES_DIR = dirname(fileURLToPath(import.meta.url));
const MODULE_NAME = /^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*(\/[A-Za-z0-9._-]+)*$/;

export type PolicySpec = { kind: 'builtin'; pkg: PolicyPackage } | { kind: 'file'; path: string } | { kind: 'module'; name: string };

/** What a `policy_package` value names. Paths are absolute or relative to policies/. */
export function parsePolicySpec(spec: string, policiesDir = POLICIES_DIR): PolicySpec {
  const builtin = Object.hasOwn(BUILTIN_POLICIES, spec) ? BUILTIN_POLICIES[spec] : undefined;
  if (builtin) return { kind: 'builtin', pkg: builtin };
  if (isAbsolute(spec) || spec.startsWith('./') || spec.startsWith('../') || /\.(m?[jt]s|c?js)$/.test(spec)) {
    return { kind: 'file', path: isAbsolute(spec) ? spec : resolvePath(policiesDir, spec) };
  }
  if (MODULE_NAME.test(spec)) return { kind: 'module', name: spec };
  throw new PolicyError(
    'PolicyLoadFailed',
    `policy package '${spec.slice(0, 200)}' is not a built-in (${Object.keys(BUILTIN_POLICIES).join(', ')}), a file path (absolute or relative to policies/, ending .ts/.js/.mjs) or an installed module name`,
    { package: spec, hook: 'load', reason: 'PolicyUnknown' },
  );
}

async function mtimeOf(spec: PolicySpec): Promise<number | undefined> {
  if (spec.kind !== 'file') return undefined;
  try {
    return (await stat(spec.path)).mtimeMs;
  } catch {
    return -1;
  }
}

interface Loaded {
  policy: ResolvedPolicy;
  runner: HookRunner;
}

async function loadPackage(source: string, opts: ResolvedOptions, vo: string | undefined, log?: Logger): Promise<Loaded> {
  const spec = parsePolicySpec(source);
  if (spec.kind === 'builtin') {
    const runner = inProcessRunner(spec.pkg, vo);
    return { runner, policy: resolveRunner(runner, source, opts, vo) };
  }
  let url: string;
  if (spec.kind === 'file') {
    const st = await stat(spec.path).catch(() => undefined);
    if (!st?.isFile()) {
      throw new PolicyError('PolicyLoadFailed', `policy package '${source}' not found: no file ${spec.path}`, { package: source, hook: 'load', vo, reason: 'PolicyImportFailed' });
    }
    // The mtime in the URL defeats the loader's module cache when the file changes.
    url = `${pathToFileURL(spec.path).href}?v=${Math.round(st.mtimeMs)}`;
  } else url = spec.name;
  const worker = new PolicyWorker({ source, url, vo, loadTimeoutMs: opts.loadTimeoutMs, maxHeapMb: opts.maxHeapMb, log });
  await worker.start();
  const runner = workerRunner(worker);
  return { runner, policy: resolveRunner(runner, source, opts, vo) };
}

/**
 * Loads a package exactly as a VO would (built-in in-process, anything else in a worker) without
 * a registry: the test harness and tools use it. close() stops its worker.
 */
export async function loadPolicy(source: string, options: PolicyOptions & { vo?: string; log?: Logger } = {}): Promise<{ policy: ResolvedPolicy; close(): Promise<void> }> {
  const loaded = await loadPackage(source, resolveOptions(options), options.vo, options.log);
  return { policy: loaded.policy, close: () => loaded.runner.dispose() };
}

// ---------------------------------------------------------------------------------------------
// The registry

export interface PolicyRegistry {
  forVo(vo: string): Promise<ResolvedPolicy>;
  /** Throws Forbidden unless the VO's policy allows `action`. */
  authorize(action: PolicyAction, ctx: PermissionContext): Promise<void>;
  /** Loads a package without installing it (before saving a VO's setting); throws InvalidInput InvalidPolicyPackage. */
  check(source: string): Promise<{ name: string; apiVersion: number; hooks: PolicyHook[] }>;
  /** Loads every VO's package now (at start), logging failures. */
  loadAll(): Promise<void>;
  /** Re-read the VO's setting on next use. */
  invalidate(vo?: string): void;
  /** Stops every package worker. */
  close(): Promise<void>;
}

interface VoState {
  source: string;
  mtime?: number;
  loaded: Loaded;
  checkedAt: number;
}

export function createPolicyRegistry(sql: Sql, options: { cacheMs?: number; retryFailedMs?: number; log?: Logger } & PolicyOptions = {}): PolicyRegistry {
  const cacheMs = options.cacheMs ?? 5000;
  const retryFailedMs = options.retryFailedMs ?? 30_000;
  const opts = resolveOptions(options);
  const log = options.log;
  const state = new Map<string, VoState>();
  const failed = new Map<string, { source: string; mtime?: number; at: number; error: PolicyError }>();
  const inflight = new Map<string, Promise<ResolvedPolicy>>();
  let closed = false;

  async function refresh(vo: string): Promise<ResolvedPolicy> {
    const current = state.get(vo);
    const [row] = await sql<{ policy_package: string }[]>`select policy_package from vos where name = ${vo}`;
    const source = row?.policy_package ?? 'default';
    let spec: PolicySpec | undefined;
    try {
      spec = parsePolicySpec(source);
    } catch {
      // reported by loadPackage below
    }
    const mtime = spec ? await mtimeOf(spec) : undefined;
    if (current && current.source === source && current.mtime === mtime) {
      current.checkedAt = Date.now();
      return current.loaded.policy;
    }
    const f = failed.get(vo);
    if (f && f.source === source && f.mtime === mtime && Date.now() - f.at < retryFailedMs) {
      if (current) {
        current.checkedAt = Date.now();
        return current.loaded.policy;
      }
      throw f.error;
    }
    try {
      const loaded = await loadPackage(source, opts, vo, log);
      if (closed) {
        await loaded.runner.dispose();
        throw new PolicyError('PolicyLoadFailed', 'the policy registry is closed', { package: source, hook: 'load', vo });
      }
      failed.delete(vo);
      state.set(vo, { source, mtime, loaded, checkedAt: Date.now() });
      if (current) {
        log?.info({ vo, from: current.source, to: source }, 'policy package reloaded');
        // In-flight calls on the old package finish first (each is bounded by its budget).
        void current.loaded.runner.dispose().catch(() => undefined);
      }
      return loaded.policy;
    } catch (e) {
      const error = isPolicyError(e) ? e : new PolicyError('PolicyLoadFailed', `policy package '${source}' failed to load: ${describe(e)}`, { package: source, hook: 'load', vo, cause: e });
      failed.set(vo, { source, mtime, at: Date.now(), error });
      log?.error({ vo, package: source, err: error, keeping: current?.source ?? null }, `policy package refused: ${error.message}`);
      if (current) {
        current.checkedAt = Date.now();
        return current.loaded.policy;
      }
      throw error;
    }
  }

  const registry: PolicyRegistry = {
    async forVo(vo) {
      const hit = state.get(vo);
      if (hit && Date.now() - hit.checkedAt < cacheMs) return hit.loaded.policy;
      let p = inflight.get(vo);
      if (!p) {
        p = refresh(vo).finally(() => inflight.delete(vo));
        inflight.set(vo, p);
      }
      return p;
    },
    async authorize(action, ctx) {
      await assertAllowed(await registry.forVo(ctx.vo), action, ctx);
    },
    async check(source) {
      let loaded: Loaded;
      try {
        loaded = await loadPackage(source, opts, undefined, log);
      } catch (e) {
        const reason = isPolicyError(e) ? e.message : describe(e);
        throw new InvalidInput('InvalidPolicyPackage', reason.replace(/^policy package /, 'policy package '), { cause: e });
      }
      await loaded.runner.dispose();
      return { name: loaded.runner.name, apiVersion: POLICY_API_VERSION, hooks: [...loaded.runner.hooks] };
    },
    async loadAll() {
      const vos = await sql<{ name: string }[]>`select name from vos order by name`;
      for (const { name } of vos) {
        try {
          await registry.forVo(name);
        } catch {
          // logged in refresh; that VO's requests fail with PolicyLoadFailed until it is fixed
        }
      }
    },
    invalidate(vo) {
      if (vo) {
        const s = state.get(vo);
        if (s) s.checkedAt = 0;
        failed.delete(vo);
      } else {
        for (const s of state.values()) s.checkedAt = 0;
        failed.clear();
      }
    },
    async close() {
      closed = true;
      const all = [...state.values()];
      state.clear();
      await Promise.all(all.map((s) => s.loaded.runner.dispose().catch(() => undefined)));
    },
  };
  return registry;
}
