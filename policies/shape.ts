/**
 * Checks that a module's default export is a policy package Sluice can use. Runs wherever the
 * package is imported (in a worker for custom packages), so it imports nothing but the contract.
 */
import { POLICY_API_VERSION, POLICY_HOOKS, type PolicyHook } from './types.ts';

export interface PackageShape {
  name: string;
  apiVersion: number;
  hooks: PolicyHook[];
}

/** A reason string when the export is unusable; the package's shape otherwise. */
export function checkPackageShape(exported: unknown, source: string): PackageShape | { problem: string; code: 'PolicyInvalidPackage' | 'PolicyIncompatible' } {
  if (exported === undefined) {
    return { code: 'PolicyInvalidPackage', problem: `'${source}' has no default export; export default definePolicy({ apiVersion: ${POLICY_API_VERSION}, name: '...', ... })` };
  }
  if (!exported || typeof exported !== 'object' || Array.isArray(exported)) {
    return { code: 'PolicyInvalidPackage', problem: `'${source}' default export is ${Array.isArray(exported) ? 'an array' : typeof exported}, not a definePolicy({...}) object` };
  }
  const p = exported as Record<string, unknown>;
  if (typeof p.apiVersion !== 'number' || !Number.isInteger(p.apiVersion)) {
    return { code: 'PolicyInvalidPackage', problem: `'${source}' does not declare apiVersion (an integer); add apiVersion: ${POLICY_API_VERSION}` };
  }
  if (p.apiVersion !== POLICY_API_VERSION) {
    return {
      code: 'PolicyIncompatible',
      problem: `'${source}' was written for policy API version ${p.apiVersion}, but this Sluice supports version ${POLICY_API_VERSION}; update the package (see docs/policy-packages.md)`,
    };
  }
  if (typeof p.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.@/-]{0,99}$/.test(p.name)) {
    return { code: 'PolicyInvalidPackage', problem: `'${source}' needs a name: 1-100 letters, digits, '_', '.', '-', '@', '/'` };
  }
  const known = new Set<string>(['apiVersion', 'name', 'description', ...POLICY_HOOKS]);
  const unknown = Object.keys(p).filter((k) => !known.has(k));
  if (unknown.length) {
    // A misspelt hook (lfn2Pfn) would otherwise be silently ignored and the default used.
    return { code: 'PolicyInvalidPackage', problem: `'${source}' has unknown field${unknown.length > 1 ? 's' : ''} '${unknown.join("', '")}'; hooks are ${POLICY_HOOKS.join(', ')}` };
  }
  const hooks: PolicyHook[] = [];
  for (const h of POLICY_HOOKS) {
    if (p[h] === undefined) continue;
    if (typeof p[h] !== 'function') return { code: 'PolicyInvalidPackage', problem: `'${source}' hook '${h}' is ${typeof p[h]}, not a function` };
    hooks.push(h);
  }
  return { name: p.name, apiVersion: p.apiVersion, hooks };
}
