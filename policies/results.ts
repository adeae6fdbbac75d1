/**
 * Checks of what hooks return, on the main thread: nothing a package returns is written or used
 * before it passes here. Each check returns a problem string (for PolicyInvalidResult) or the
 * normalised value.
 */
import type { PermissionVerdict, RankResult, RuleDefaults } from './types.ts';

/** Same bounds as a rule's own activity and lifetime (core/rules.ts). */
const ACTIVITY = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/;
const MAX_LIFETIME_SECONDS = 10 * 365 * 86400;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

const bad = (problem: string): { ok: false; problem: string } => ({ ok: false, problem });

function show(v: unknown): string {
  if (typeof v === 'string') return `'${v.slice(0, 120)}'`;
  try {
    return (JSON.stringify(v) ?? String(v)).slice(0, 120);
  } catch {
    return String(v).slice(0, 120);
  }
}

/** A path below an RSE prefix: relative, not empty, no empty / '.' / '..' segments, no control characters. */
export function checkPolicyPath(v: unknown): Checked<string> {
  if (typeof v !== 'string') return bad(`returned ${show(v)} (${typeof v}), not a path string`);
  if (v.length === 0) return bad('returned an empty path');
  if (v.startsWith('/')) return bad(`returned the absolute path ${show(v)}; return a path relative to the RSE prefix`);
  if (v.length > 1024) return bad(`returned a path of ${v.length} characters (at most 1024)`);
  if (CONTROL.test(v)) return bad(`returned path ${show(v.replace(CONTROL, '?'))} with a control character`);
  const seg = v.split('/').find((s) => s === '' || s === '.' || s === '..');
  if (seg !== undefined) return bad(`returned path ${show(v)} with a${seg === '' ? 'n empty' : ` '${seg}'`} segment`);
  return { ok: true, value: v };
}

export function checkRefusal(v: unknown): Checked<string | undefined> {
  if (v === undefined || v === null || v === '') return { ok: true, value: undefined };
  if (typeof v === 'string') return { ok: true, value: v.slice(0, 1000) };
  return bad(`returned ${show(v)}; return a message string to refuse, or nothing to accept`);
}

export function checkExtracted(v: unknown): Checked<{ scope: string; name: string } | undefined> {
  if (v === undefined || v === null) return { ok: true, value: undefined };
  const o = v as { scope?: unknown; name?: unknown };
  if (typeof o !== 'object' || typeof o.scope !== 'string' || typeof o.name !== 'string' || !o.scope || !o.name) {
    return bad(`returned ${show(v)}; return { scope, name } (non-empty strings) or nothing`);
  }
  return { ok: true, value: { scope: o.scope, name: o.name } };
}

export interface PermissionDecision {
  /** undefined: the package deferred. */
  verdict: 'allow' | 'deny' | undefined;
  reason?: string;
}

export function checkVerdict(v: unknown): Checked<PermissionDecision> {
  const x = v as PermissionVerdict | null;
  if (x === undefined || x === null) return { ok: true, value: { verdict: undefined } };
  if (x === 'allow' || x === 'deny') return { ok: true, value: { verdict: x } };
  if (typeof x === 'object' && typeof (x as { deny?: unknown }).deny === 'string' && Object.keys(x).length === 1) {
    return { ok: true, value: { verdict: 'deny', reason: (x as { deny: string }).deny.slice(0, 1000) } };
  }
  return bad(`returned ${show(v)}; return 'allow', 'deny', { deny: 'reason' } or nothing (defer to the default)`);
}

export interface RankDecision {
  /** Candidate names kept, best first when `ordered`. */
  names: string[];
  /** true: use in this order; false: only a filter. */
  ordered: boolean;
}

export function checkRank(v: unknown, candidates: ReadonlyArray<{ name: string }>): Checked<RankDecision | undefined> {
  const x = v as RankResult | null;
  if (x === undefined || x === null) return { ok: true, value: undefined };
  let names: unknown;
  let ordered: boolean;
  if (Array.isArray(x)) ((names = x), (ordered = true));
  else if (typeof x === 'object' && Array.isArray((x as { only?: unknown }).only) && Object.keys(x).length === 1) {
    ((names = (x as { only: unknown[] }).only), (ordered = false));
  } else return bad(`returned ${show(v)}; return RSE names (best first), { only: names }, or nothing`);
  const known = new Set(candidates.map((c) => c.name));
  const seen = new Set<string>();
  for (const n of names as unknown[]) {
    if (typeof n !== 'string') return bad(`returned ${show(n)} among the RSE names; return names (strings)`);
    if (!known.has(n)) return bad(`returned RSE '${n.slice(0, 80)}', which was not among the candidates (${[...known].slice(0, 20).join(', ')})`);
    if (seen.has(n)) return bad(`returned RSE '${n}' twice`);
    seen.add(n);
  }
  return { ok: true, value: { names: names as string[], ordered } };
}

export function checkRuleDefaults(v: unknown): Checked<RuleDefaults> {
  if (v === undefined || v === null) return { ok: true, value: {} };
  if (typeof v !== 'object' || Array.isArray(v)) return bad(`returned ${show(v)}; return { activity?, lifetime?, grouping? }`);
  const d = v as Record<string, unknown>;
  const unknown = Object.keys(d).filter((k) => !['activity', 'lifetime', 'grouping'].includes(k));
  if (unknown.length) return bad(`returned unknown field '${unknown[0]}'; rule defaults are activity, lifetime, grouping`);
  const out: RuleDefaults = {};
  if (d.activity !== undefined) {
    if (typeof d.activity !== 'string' || !ACTIVITY.test(d.activity)) return bad(`returned activity ${show(d.activity)}; 1-64 letters, digits, spaces, '_', '.', '-'`);
    out.activity = d.activity;
  }
  if (d.lifetime !== undefined) {
    if (d.lifetime !== null && (typeof d.lifetime !== 'number' || !Number.isInteger(d.lifetime) || d.lifetime < 1 || d.lifetime > MAX_LIFETIME_SECONDS)) {
      return bad(`returned lifetime ${show(d.lifetime)}; whole seconds between 1 and ${MAX_LIFETIME_SECONDS}, or null`);
    }
    out.lifetime = d.lifetime as number | null;
  }
  if (d.grouping !== undefined) {
    if (d.grouping !== 'ALL' && d.grouping !== 'DATASET' && d.grouping !== 'NONE') return bad(`returned grouping ${show(d.grouping)}; ALL, DATASET or NONE`);
    out.grouping = d.grouping;
  }
  return { ok: true, value: out };
}
