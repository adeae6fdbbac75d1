/**
 * The policy-package contract: what a VO can customise. A package is an ES module whose default
 * export is `definePolicy({...})`. Every hook is optional; what a package leaves out falls back to
 * the built-in `default` package. Hooks may return a value or a Promise of it.
 *
 * This module has no imports on purpose: a package (and the worker that runs it) loads only this.
 *
 * Versioning: `apiVersion` is the contract's major version. Adding an optional hook, an action or
 * a context field keeps the version; renaming or removing anything, or changing what a hook's
 * return value means, bumps it. Sluice refuses a package whose apiVersion it does not support.
 */
export const POLICY_API_VERSION = 1;

export type DidType = 'FILE' | 'DATASET' | 'CONTAINER';
export type MaybePromise<T> = T | Promise<T>;

export interface PolicyDid {
  scope: string;
  name: string;
  type?: DidType;
}

export interface PolicyRse {
  name: string;
  /** Path prefix on the storage endpoint (the lfn2pfn result goes below it). */
  prefix: string;
  attributes: Record<string, string>;
}

/**
 * API actions a package's `permission` hook is asked about; the context each one gets, beyond
 * `{vo, account, role}`, is listed in ACTION_CONTEXT_DOC and docs/policy-packages.md.
 */
export const POLICY_ACTIONS = [
  'account.add',
  'account.update',
  'scope.add',
  'rse.add',
  'rse.update',
  'rse.delete',
  'did.add',
  'did.update',
  'did.attach',
  'did.detach',
  'replica.add',
  'replica.declare_bad',
  'rule.add',
  'rule.update',
  'rule.delete',
] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** Action-specific context fields (documentation; also shown by the test harness). */
export const ACTION_CONTEXT_DOC: Record<PolicyAction, string> = {
  'account.add': '(none)',
  'account.update': 'target: account name',
  'scope.add': 'scope, scopeAccount: owner of the new scope',
  'rse.add': 'rse: RSE name',
  'rse.update': 'rse: RSE name',
  'rse.delete': 'rse: RSE name',
  'did.add': 'scope, scopeAccount: owner of the scope',
  'did.update': 'scope, scopeAccount',
  'did.attach': 'scope, scopeAccount (of the parent collection)',
  'did.detach': 'scope, scopeAccount (of the parent collection)',
  'replica.add': 'scope, scopeAccount',
  'replica.declare_bad': '(none)',
  'rule.add':
    'scope, scopeAccount; when the targets are known (rule engine): did {scope,name,type}, copies, grouping, activity, lifetime, rse_expression, rses [{name, attributes}] (RSEs the expression matches)',
  'rule.update': 'ruleAccount: owner of the rule, scope',
  'rule.delete': 'ruleAccount: owner of the rule, scope',
};

export interface PermissionContext {
  vo: string;
  account: string;
  role: 'admin' | 'user';
  /** Action-specific facts: the scope's owner, the target RSEs, ... (see ACTION_CONTEXT_DOC). */
  [key: string]: unknown;
}

/** The context of `rule.add` once the rule's targets are resolved. */
export interface RuleAddContext extends PermissionContext {
  scope: string;
  scopeAccount: string;
  did: PolicyDid;
  copies: number;
  grouping: 'ALL' | 'DATASET' | 'NONE';
  activity: string;
  lifetime: number | null;
  rse_expression: string;
  rses: Array<{ name: string; attributes: Record<string, string> }>;
}

/**
 * allow / deny decide; undefined defers to the default package. `{ deny: 'reason' }` denies with
 * a message the client sees (say what to do instead).
 */
export type PermissionVerdict = 'allow' | 'deny' | { deny: string } | undefined | void;

export interface DestinationContext {
  vo: string;
  account: string;
  rule: { scope: string; name: string; copies: number; grouping: string; activity: string; rse_expression: string };
}

export interface SourceRseCandidate {
  name: string;
  attributes: Record<string, string>;
  /** Configured distance to the destination, null when none. */
  distance: number | null;
}

export interface SourceContext {
  vo: string;
  did: PolicyDid;
  destination: { name: string; attributes: Record<string, string> };
  activity: string;
}

/**
 * A rank hook's answer, by RSE name (every name must be one of the candidates):
 * - `string[]`: keep only these, best first; Sluice uses them in this order (deterministic);
 * - `{ only: string[] }`: keep only these, and let Sluice choose among them as it would;
 * - undefined: no opinion.
 */
export type RankResult = string[] | { only: string[] } | undefined | void;

export interface RuleDefaultsContext {
  vo: string;
  account: string;
  did: PolicyDid;
  copies: number;
  rse_expression: string;
}

/** Applied where the client did not give the field. */
export interface RuleDefaults {
  activity?: string;
  /** Seconds; null: never expires. */
  lifetime?: number | null;
  grouping?: 'ALL' | 'DATASET' | 'NONE';
}

export interface PolicyPackage {
  /** Contract major version the package was written for: POLICY_API_VERSION. */
  apiVersion: number;
  /** Shown in errors and logs. */
  name: string;
  description?: string;
  /** Path of a file on a deterministic RSE, relative to the RSE's prefix: no leading '/', no '..'. */
  lfn2pfn?(did: PolicyDid, rse: PolicyRse): MaybePromise<string>;
  /** Return a message to refuse a new DID's name; undefined accepts it. Throwing is a hook failure. */
  validateDid?(did: PolicyDid): MaybePromise<string | undefined | void>;
  /** Split a name given without scope into scope and name (undefined: cannot tell). */
  extractScope?(name: string): MaybePromise<PolicyDid | undefined>;
  permission?(action: PolicyAction, ctx: PermissionContext): MaybePromise<PermissionVerdict>;
  /** Filter or order the RSEs a rule may place copies on (already matching and writable). */
  rankDestinations?(candidates: PolicyRse[], ctx: DestinationContext): MaybePromise<RankResult>;
  /** Filter or order the RSEs a transfer may read from (already AVAILABLE and allowed). */
  rankSources?(candidates: SourceRseCandidate[], ctx: SourceContext): MaybePromise<RankResult>;
  /** Defaults for fields a new rule does not give. */
  ruleDefaults?(ctx: RuleDefaultsContext): MaybePromise<RuleDefaults | undefined>;
}

export const POLICY_HOOKS = ['lfn2pfn', 'validateDid', 'extractScope', 'permission', 'rankDestinations', 'rankSources', 'ruleDefaults'] as const;
export type PolicyHook = (typeof POLICY_HOOKS)[number];

/** Typed identity: gives a package's author completion and type errors for the contract. */
export function definePolicy<P extends PolicyPackage>(p: P): P {
  return p;
}
