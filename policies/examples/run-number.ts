/**
 * Example policy package: a collaboration that names data by run number.
 *
 * - Names (files and datasets) in a project scope must read `<scope>.<run>.<stream>.<type>[.<rest>]`
 *   with an 8-digit run, e.g. `data18_13TeV.00358031.physics_Main.RAW._0001` in scope
 *   `data18_13TeV`. User scopes (`user.<name>`) take any name starting with `user.<name>.`.
 *   Containers follow the default rules.
 * - Files of a run sit together: `<scope>/<run>/<name>` on deterministic RSEs (the run comes from
 *   the name, so the path never depends on metadata that may change later). Names without a run
 *   (user files) keep Rucio's hashed layout.
 * - A name without scope (`data18_13TeV.00358031...`) is in the scope named by its first field
 *   (`user.<name>` for user data), as ATLAS does.
 * - New rules default to the 'Data Consolidation' activity.
 * - Placement and sources: disk before tape (reading from tape needs a recall first).
 *
 * Enable: sluice vo update <vo> --policy examples/run-number.ts
 */
import { hashPath } from '../default.ts';
import { definePolicy, POLICY_API_VERSION, type PolicyDid, type PolicyRse } from '../types.ts';

const RUN_NAME = /^([A-Za-z0-9_]+)\.(\d{8})\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)(\.[A-Za-z0-9_.-]+)?$/;
const NAME_CHARS = /^[A-Za-z0-9][A-Za-z0-9._-]{0,249}$/;

/** The 8-digit run of a run-style name, or undefined. */
export function runOf(name: string): string | undefined {
  return RUN_NAME.exec(name)?.[2];
}

const isUserScope = (scope: string) => /^(user|group)\./.test(scope);

/** DISK first, then anything else, then TAPE; names keep their order within each class. */
function diskFirst<T extends { name: string; attributes: Record<string, string> }>(rses: T[]): string[] {
  const cls = (r: T) => (r.attributes.type === 'DISK' ? 0 : r.attributes.type === 'TAPE' ? 2 : 1);
  return rses
    .map((r, i) => ({ r, i }))
    .sort((a, b) => cls(a.r) - cls(b.r) || a.i - b.i)
    .map(({ r }) => r.name);
}

export default definePolicy({
  apiVersion: POLICY_API_VERSION,
  name: 'run-number',
  description: 'paths by run number, strict run-style names',

  lfn2pfn(did: PolicyDid, _rse: PolicyRse) {
    const run = runOf(did.name);
    return run ? `${did.scope}/${run}/${did.name}` : hashPath(did);
  },

  validateDid(did) {
    if (!NAME_CHARS.test(did.name)) return `DID name '${did.name.slice(0, 80)}' may contain only letters, digits, '.', '_' and '-'`;
    if (did.type === 'CONTAINER') return undefined;
    if (isUserScope(did.scope)) {
      return did.name.startsWith(`${did.scope}.`) ? undefined : `names in scope '${did.scope}' must start with '${did.scope}.'`;
    }
    const m = RUN_NAME.exec(did.name);
    if (!m) {
      return `DID name '${did.name.slice(0, 80)}' must read <scope>.<8-digit run>.<stream>.<type>[.<rest>], e.g. ${did.scope}.00358031.physics_Main.RAW._0001`;
    }
    if (m[1] !== did.scope) return `DID name '${did.name.slice(0, 80)}' must start with its scope '${did.scope}.'`;
    return undefined;
  },

  extractScope(name) {
    const colon = name.indexOf(':');
    if (colon > 0) return { scope: name.slice(0, colon), name: name.slice(colon + 1) };
    const parts = name.split('.');
    if (parts.length < 2) return undefined;
    const scope = isUserScope(name) ? `${parts[0]}.${parts[1]}` : parts[0];
    return { scope, name };
  },

  ruleDefaults() {
    return { activity: 'Data Consolidation' };
  },

  rankDestinations(candidates) {
    return diskFirst(candidates);
  },

  rankSources(candidates) {
    return diskFirst(candidates);
  },
});
