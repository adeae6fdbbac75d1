/**
 * The policy-package contract: what a VO can customise. A package is an ES module whose default
 * export is `definePolicy({...})`. Every hook is optional; what a package leaves out falls back to
 * the built-in `default` package.
 */
export const POLICY_API_VERSION = 1;

export type DidType = 'FILE' | 'DATASET' | 'CONTAINER';

export interface PolicyDid {
  scope: string;
  name: string;
  type?: DidType;
}

export interface PolicyRse {
  name: string;
  prefix: string;
  attributes: Record<string, string>;
}

/** API actions a package's `permission` hook is asked about. */
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

export interface PermissionContext {
  vo: string;
  account: string;
  role: 'admin' | 'user';
  /** Action-specific facts: the scope's owner, the target RSE's attributes, ... */
  [key: string]: unknown;
}

/** allow / deny decide; undefined defers to the default package. */
export type PermissionVerdict = 'allow' | 'deny' | undefined;

export interface PolicyPackage {
  apiVersion: number;
  name: string;
  /** Path of a file on a deterministic RSE, relative to the RSE's prefix. */
  lfn2pfn?(did: PolicyDid, rse: PolicyRse): string;
  /** Throw or return a message to refuse a new DID's name. */
  validateDid?(did: PolicyDid): string | void;
  /** Split `name` into scope and name when the client gives only a name. */
  extractScope?(name: string): PolicyDid | undefined;
  permission?(action: PolicyAction, ctx: PermissionContext): PermissionVerdict;
}

export function definePolicy<P extends PolicyPackage>(p: P): P {
  return p;
}
