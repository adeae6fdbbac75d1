/**
 * A small harness to test a policy package the way Sluice calls it: the default package fills
 * the hooks a package leaves out, every result goes through the same checks, and a package given
 * by path runs in a worker with the same time budgets (so a loop fails the test with
 * PolicyTimeout instead of hanging it).
 *
 *   const h = await createPolicyHarness('examples/run-number.ts');   // or a package object
 *   expect(await h.path('data18_13TeV:data18_13TeV.00358031.physics_Main.RAW._0001')).toBe(...);
 *   expect((await h.can('rule.add', { account: 'bob', rses: [h.rse('TAPE1', { type: 'TAPE' })] })).allow).toBe(false);
 *   await h.close();
 */
import { checkPackageShape } from './shape.ts';
import { PolicyError } from './errors.ts';
import { loadPolicy, resolvePolicy, type PolicyOptions, type RankDecision, type ResolvedPolicy } from './registry.ts';
import type { PermissionContext, PolicyAction, PolicyDid, PolicyPackage, PolicyRse, RuleDefaults, SourceRseCandidate } from './types.ts';

export interface PolicyHarness {
  policy: ResolvedPolicy;
  /** An RSE for the hooks: `rse('SITE_A', { type: 'DISK' })`. */
  rse(name: string, attributes?: Record<string, string>, prefix?: string): PolicyRse;
  /** lfn2pfn of one file ('scope:name' or a DID) on an RSE (default: a plain deterministic RSE). */
  path(did: string | PolicyDid, rse?: PolicyRse): Promise<string>;
  paths(dids: Array<string | PolicyDid>, rse?: PolicyRse): Promise<string[]>;
  /** The refusal message for a new DID, or undefined when it is accepted. */
  validate(did: string | PolicyDid): Promise<string | undefined>;
  extractScope(name: string): Promise<PolicyDid | undefined>;
  /** The decision for an action; ctx defaults to VO 'test', account 'alice', role 'user'. */
  can(action: PolicyAction, ctx?: Partial<PermissionContext>): Promise<{ allow: boolean; reason?: string }>;
  rankDestinations(candidates: PolicyRse[], ctx?: { account?: string; rule?: Partial<{ scope: string; name: string; copies: number; grouping: string; activity: string; rse_expression: string }> }): Promise<RankDecision | undefined>;
  rankSources(candidates: Array<PolicyRse | SourceRseCandidate>, ctx?: { did?: PolicyDid; destination?: PolicyRse; activity?: string }): Promise<RankDecision | undefined>;
  ruleDefaults(ctx?: { account?: string; did?: PolicyDid; copies?: number; rse_expression?: string }): Promise<RuleDefaults>;
  close(): Promise<void>;
}

function didOf(d: string | PolicyDid, type: PolicyDid['type'] = 'FILE'): PolicyDid {
  if (typeof d !== 'string') return d;
  const i = d.indexOf(':');
  if (i <= 0) throw new Error(`give DIDs as 'scope:name', got '${d}'`);
  return { scope: d.slice(0, i), name: d.slice(i + 1), type };
}

/**
 * A package object runs in-process (fast unit tests); a path (absolute or relative to policies/)
 * or module name loads like a VO's setting does, in a worker. Load problems throw PolicyError.
 */
export async function createPolicyHarness(pkg: PolicyPackage | string, options: PolicyOptions & { vo?: string } = {}): Promise<PolicyHarness> {
  const vo = options.vo ?? 'test';
  let policy: ResolvedPolicy;
  let close = async () => {};
  if (typeof pkg === 'string') {
    const loaded = await loadPolicy(pkg, options);
    policy = loaded.policy;
    close = loaded.close;
  } else {
    const shape = checkPackageShape(pkg, pkg?.name ?? 'package');
    if ('problem' in shape) throw new PolicyError('PolicyLoadFailed', `policy package ${shape.problem}`, { package: String(pkg?.name), hook: 'load', reason: shape.code });
    policy = resolvePolicy(pkg, options);
  }
  const rse = (name: string, attributes: Record<string, string> = {}, prefix = `/${name.toLowerCase()}`): PolicyRse => ({ name, prefix, attributes: { [name]: 'true', ...attributes } });
  const plainRse = rse('TEST_RSE');
  return {
    policy,
    rse,
    async path(did, r = plainRse) {
      return (await policy.lfn2pfn([didOf(did)], r))[0];
    },
    paths(dids, r = plainRse) {
      return policy.lfn2pfn(dids.map((d) => didOf(d)), r);
    },
    async validate(did) {
      return (await policy.validateDids([didOf(did)]))[0];
    },
    async extractScope(name) {
      return (await policy.extractScopes([name]))[0];
    },
    can(action, ctx = {}) {
      return policy.permission(action, { vo, account: 'alice', role: 'user', ...ctx });
    },
    rankDestinations(candidates, ctx = {}) {
      return policy.rankDestinations(candidates, {
        vo,
        account: ctx.account ?? 'alice',
        rule: { scope: 'data', name: 'ds', copies: 1, grouping: 'DATASET', activity: 'default', rse_expression: '*', ...ctx.rule },
      });
    },
    rankSources(candidates, ctx = {}) {
      return policy.rankSources(
        candidates.map((c) => ({ name: c.name, attributes: c.attributes, distance: 'distance' in c ? c.distance : null })),
        { vo, did: ctx.did ?? { scope: 'data', name: 'f' }, destination: ctx.destination ?? plainRse, activity: ctx.activity ?? 'default' },
      );
    },
    ruleDefaults(ctx = {}) {
      return policy.ruleDefaults({ vo, account: ctx.account ?? 'alice', did: ctx.did ?? { scope: 'data', name: 'ds' }, copies: ctx.copies ?? 1, rse_expression: ctx.rse_expression ?? '*' });
    },
    close,
  };
}
