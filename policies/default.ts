import { createHash } from 'node:crypto';
import { definePolicy, POLICY_API_VERSION, type PolicyDid, type PolicyRse } from './types.ts';

const DID_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,249}$/;

/**
 * Rucio's default deterministic path: `scope/xx/yy/name` where xx and yy are the first two byte
 * pairs of md5("scope:name"), which spreads files evenly over directories. `user.x` and `group.x`
 * scopes become `user/x` as in Rucio.
 */
export function hashPath(did: PolicyDid): string {
  const h = createHash('md5').update(`${did.scope}:${did.name}`).digest('hex');
  const scope = /^(user|group)\./.test(did.scope) ? did.scope.replace('.', '/') : did.scope;
  return `${scope}/${h.slice(0, 2)}/${h.slice(2, 4)}/${did.name}`;
}

export function identityPath(did: PolicyDid): string {
  return `${did.scope}/${did.name}`;
}

export default definePolicy({
  apiVersion: POLICY_API_VERSION,
  name: 'default',
  lfn2pfn: (did: PolicyDid, _rse: PolicyRse) => hashPath(did),
  validateDid(did: PolicyDid) {
    if (!DID_NAME.test(did.name)) {
      return `DID name '${did.name.slice(0, 80)}' must start with a letter or digit and contain only letters, digits, '.', '_' and '-' (at most 250 characters)`;
    }
  },
  extractScope(name: string) {
    const i = name.indexOf(':');
    return i > 0 ? { scope: name.slice(0, i), name: name.slice(i + 1) } : undefined;
  },
  permission(action, ctx) {
    if (ctx.role === 'admin') return 'allow';
    switch (action) {
      case 'account.add':
      case 'account.update':
      case 'scope.add':
      case 'rse.add':
      case 'rse.update':
      case 'rse.delete':
        return 'deny';
      case 'did.add':
      case 'did.update':
      case 'did.attach':
      case 'did.detach':
      case 'replica.add':
        // Users write only in scopes they own.
        return ctx.scopeAccount === ctx.account ? 'allow' : 'deny';
      default:
        return 'allow';
    }
  },
});
