/**
 * Example policy package: only production may create rules on tape (or on a list of protected
 * RSEs); everyone else gets a clear refusal. Everything else is the default policy.
 *
 * - `rule.add` on RSEs with `type=TAPE`, or named in PROTECTED_RSES, is allowed for the VO's
 *   admins and the accounts in PRODUCTION_ACCOUNTS; anyone else is denied with a message.
 *   The check uses the RSEs the rule's expression matches, so `tier=1` that includes a tape RSE
 *   is refused too (say `tier=1&type=DISK`).
 * - Production rules default to the 'Production' activity.
 *
 * Enable: sluice vo update <vo> --policy examples/production-role.ts
 */
import { definePolicy, POLICY_API_VERSION, type RuleAddContext } from '../types.ts';

/** Accounts that may write to protected RSEs besides the VO's admins. Edit for your VO. */
export const PRODUCTION_ACCOUNTS: readonly string[] = ['prodsys', 'tzero'];
/** RSEs protected regardless of their attributes. */
export const PROTECTED_RSES: readonly string[] = ['CERN_PROD_TAPE'];

const isProtected = (rse: { name: string; attributes: Record<string, string> }) => rse.attributes.type === 'TAPE' || PROTECTED_RSES.includes(rse.name);
const isProduction = (ctx: { account: string; role: string }) => ctx.role === 'admin' || PRODUCTION_ACCOUNTS.includes(ctx.account);

export default definePolicy({
  apiVersion: POLICY_API_VERSION,
  name: 'production-role',
  description: 'rules on tape only for production',

  permission(action, ctx) {
    // rule.add is also asked before the targets are known (no `rses` then): nothing to say yet.
    if (action !== 'rule.add' || !Array.isArray(ctx.rses)) return undefined;
    const { rses, rse_expression } = ctx as RuleAddContext;
    const guarded = rses.filter(isProtected).map((r) => r.name);
    if (guarded.length === 0 || isProduction(ctx)) return undefined;
    return {
      deny: `'${rse_expression}' includes ${guarded.join(', ')}, where only production accounts may create rules; target disk RSEs (for example '${rse_expression}&type=DISK') or ask your VO admin`,
    };
  },

  ruleDefaults(ctx) {
    return PRODUCTION_ACCOUNTS.includes(ctx.account) ? { activity: 'Production' } : undefined;
  },
});
