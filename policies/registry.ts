import type { Sql } from '../core/db.ts';
import { Forbidden } from '../core/errors.ts';
import defaultPolicy from './default.ts';
import type { PermissionContext, PolicyAction, PolicyDid, PolicyPackage, PolicyRse } from './types.ts';

/** A VO's policy with every hook present (the package's own, else the default's). */
export interface ResolvedPolicy {
  name: string;
  lfn2pfn(did: PolicyDid, rse: PolicyRse): string;
  validateDid(did: PolicyDid): string | void;
  extractScope(name: string): PolicyDid | undefined;
  permission(action: PolicyAction, ctx: PermissionContext): 'allow' | 'deny';
}

export const BUILTIN_POLICIES: Record<string, PolicyPackage> = { default: defaultPolicy };

export function resolvePolicy(pkg: PolicyPackage): ResolvedPolicy {
  const d = defaultPolicy;
  return {
    name: pkg.name,
    lfn2pfn: (did, rse) => (pkg.lfn2pfn ?? d.lfn2pfn)(did, rse),
    validateDid: (did) => (pkg.validateDid ?? d.validateDid)(did),
    extractScope: (name) => (pkg.extractScope ?? d.extractScope)(name),
    permission: (action, ctx) => pkg.permission?.(action, ctx) ?? d.permission(action, ctx) ?? 'deny',
  };
}

export interface PolicyRegistry {
  forVo(vo: string): Promise<ResolvedPolicy>;
  /** Throws Forbidden unless the VO's policy allows `action`. */
  authorize(action: PolicyAction, ctx: PermissionContext): Promise<void>;
  invalidate(vo?: string): void;
}

/**
 * Looks up each VO's package name (cached briefly, so a changed setting is picked up without a
 * restart) and resolves it to hooks.
 */
export function createPolicyRegistry(sql: Sql, options: { cacheMs?: number } = {}): PolicyRegistry {
  const cacheMs = options.cacheMs ?? 5000;
  const cache = new Map<string, { at: number; policy: ResolvedPolicy }>();
  const registry: PolicyRegistry = {
    async forVo(vo) {
      const hit = cache.get(vo);
      if (hit && Date.now() - hit.at < cacheMs) return hit.policy;
      const [row] = await sql<{ policy_package: string }[]>`select policy_package from vos where name = ${vo}`;
      const pkg = BUILTIN_POLICIES[row?.policy_package ?? 'default'] ?? defaultPolicy;
      const policy = resolvePolicy(pkg);
      cache.set(vo, { at: Date.now(), policy });
      return policy;
    },
    async authorize(action, ctx) {
      const policy = await registry.forVo(ctx.vo);
      if (policy.permission(action, ctx) !== 'allow') {
        throw new Forbidden(`account '${ctx.account}' may not ${action.replace('.', ' ')} in VO '${ctx.vo}' (policy '${policy.name}')`, 'PermissionDenied');
      }
    },
    invalidate(vo) {
      if (vo) cache.delete(vo);
      else cache.clear();
    },
  };
  return registry;
}
