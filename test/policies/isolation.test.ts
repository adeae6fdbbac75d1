/**
 * The worker bridge on its own (no database): load checks, result checks, and isolation of
 * throwing, looping and crashing hooks.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicy, type ResolvedPolicy } from '../../policies/registry.ts';
import type { PolicyError } from '../../policies/errors.ts';
import { packageDir } from './fixtures.ts';

let pkgs: Awaited<ReturnType<typeof packageDir>>;
const open: Array<{ close(): Promise<void> }> = [];
const rse = { name: 'SITE_A', prefix: '/a', attributes: {} };
const did = { scope: 'data', name: 'f1' };

async function load(path: string, options: Parameters<typeof loadPolicy>[1] = {}): Promise<ResolvedPolicy> {
  const l = await loadPolicy(path, { callTimeoutMs: 300, perItemMs: 0.01, ...options });
  open.push(l);
  return l.policy;
}

async function policyError(p: Promise<unknown>): Promise<PolicyError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!e) throw new Error('expected a PolicyError, the call succeeded');
  return e as PolicyError;
}

beforeAll(async () => {
  pkgs = await packageDir();
});
afterAll(async () => {
  await Promise.all(open.map((o) => o.close()));
  await pkgs.close();
});

describe('loading', () => {
  it('loads a TypeScript package in a worker and uses its hooks, the default for the rest', async () => {
    const path = await pkgs.ts('flat.ts', `lfn2pfn: (d: PolicyDid): string => \`flat/\${d.name}\`,`);
    const p = await load(path);
    expect(p.name).toBe('flat');
    expect([...p.hooks]).toEqual(['lfn2pfn']);
    expect(await p.lfn2pfn([did, { scope: 'data', name: 'f2' }], rse)).toEqual(['flat/f1', 'flat/f2']);
    // validateDid falls back to the default package
    expect(await p.validateDids([{ scope: 'data', name: 'ok' }, { scope: 'data', name: '-bad' }])).toEqual([undefined, expect.stringContaining('must start with')]);
  });

  it.each([
    ['no default export', 'nodefault.mjs', 'export const x = 1;\n', /has no default export/],
    ['default export is a function', 'fn.mjs', 'export default function () {}\n', /default export is function/],
    ['no apiVersion', 'nover.mjs', "export default { name: 'x' };\n", /does not declare apiVersion/],
    ['a hook that is not a function', 'nofn.mjs', "export default { apiVersion: 1, name: 'x', lfn2pfn: 'a/b' };\n", /hook 'lfn2pfn' is string/],
    ['a misspelt hook', 'typo.mjs', "export default { apiVersion: 1, name: 'x', lfn2Pfn() { return 'a'; } };\n", /unknown field 'lfn2Pfn'/],
    ['an import that throws', 'throws.mjs', "throw new Error('config file missing');\n", /failed to import: config file missing/],
    ['a syntax error', 'syntax.ts', 'export default {{;\n', /failed to import/],
  ])('refuses a package with %s, with a clear message', async (_what, file, text, message) => {
    const path = await pkgs.raw(file, text);
    const e = await policyError(load(path));
    expect(e.code).toBe('PolicyLoadFailed');
    expect(e.message).toMatch(message);
  });

  it('refuses an incompatible apiVersion naming both versions', async () => {
    const path = await pkgs.ts('v2.ts', '', { apiVersion: 2 });
    const e = await policyError(load(path));
    expect(e.code).toBe('PolicyLoadFailed');
    expect(e.message).toMatch(/written for policy API version 2, but this Sluice supports version 1/);
  });

  it('refuses a missing file, an unknown name, and a top-level loop within the load budget', async () => {
    expect((await policyError(load('/nonexistent/pkg.ts'))).message).toMatch(/not found/);
    expect((await policyError(load('no such thing!'))).message).toMatch(/not a built-in/);
    const path = await pkgs.raw('toplevel-loop.mjs', "while (true) {}\nexport default { apiVersion: 1, name: 'x' };\n");
    const t = performance.now();
    const e = await policyError(load(path, { loadTimeoutMs: 1500 }));
    expect(e.message).toMatch(/did not load within 1500 ms/);
    expect(performance.now() - t).toBeLessThan(5000);
  });
});

describe('results are checked before use', () => {
  it.each([
    ['an absolute path', "() => '/etc/passwd'", /absolute path/],
    ['a .. segment', "(d: PolicyDid) => `data/../../${d.name}`", /'\.\.' segment/],
    ['an empty path', "() => ''", /empty path/],
    ['an empty segment', "() => 'a//b'", /empty segment/],
    ['a number', '() => 42', /not a path string/],
  ])('lfn2pfn returning %s is PolicyInvalidResult', async (what, fn, message) => {
    const path = await pkgs.ts(`bad-path-${what.replace(/\W+/g, '-')}.ts`, `lfn2pfn: ${fn},`);
    const e = await policyError((await load(path)).lfn2pfn([did], rse));
    expect([e.code, e.details?.hook]).toEqual(['PolicyInvalidResult', 'lfn2pfn']);
    expect(e.message).toMatch(message);
    expect(e.message).toContain("'data:f1'");
  });

  it('a rank hook naming an RSE that was not a candidate is PolicyInvalidResult; a subset in order is kept', async () => {
    const path = await pkgs.ts('rank.ts', `rankDestinations: (c: Array<{ name: string }>) => c.length > 2 ? ['ELSEWHERE'] : c.map((r) => r.name).reverse(),`);
    const p = await load(path);
    const cands = ['A', 'B', 'C'].map((name) => ({ name, prefix: '/', attributes: {} }));
    const ctx = { vo: 'v', account: 'a', rule: { scope: 's', name: 'n', copies: 1, grouping: 'ALL', activity: 'x', rse_expression: '*' } };
    const e = await policyError(p.rankDestinations(cands, ctx));
    expect(e.code).toBe('PolicyInvalidResult');
    expect(e.message).toMatch(/returned RSE 'ELSEWHERE', which was not among the candidates \(A, B, C\)/);
    expect(await p.rankDestinations(cands.slice(0, 2), ctx)).toEqual({ names: ['B', 'A'], ordered: true });
  });

  it('permission: allow/deny/{deny} decide, undefined defers to the default, anything else is invalid', async () => {
    const path = await pkgs.ts(
      'perm.ts',
      `permission(action: string, ctx: Record<string, unknown>) {
         if (action === 'scope.add') return ctx.account === 'bob' ? 'allow' : { deny: 'ask bob' };
         if (action === 'rule.delete') return 'yes';
         return undefined;
       },`,
    );
    const p = await load(path);
    const ctx = { vo: 'v', account: 'bob', role: 'user' as const };
    expect(await p.permission('scope.add', ctx)).toEqual({ allow: true, reason: undefined });
    expect(await p.permission('scope.add', { ...ctx, account: 'eve' })).toEqual({ allow: false, reason: 'ask bob' });
    // deferred: the default lets users add DIDs only in their own scopes
    expect((await p.permission('did.add', { ...ctx, scopeAccount: 'eve' })).allow).toBe(false);
    expect((await p.permission('did.add', { ...ctx, scopeAccount: 'bob' })).allow).toBe(true);
    expect((await policyError(p.permission('rule.delete', ctx))).code).toBe('PolicyInvalidResult');
  });

  it('ruleDefaults outside the rule fields\' domain is invalid', async () => {
    const path = await pkgs.ts('defaults.ts', `ruleDefaults: (ctx: { account: string }) => ctx.account === 'x' ? { lifetime: -5 } : { activity: 'Express', grouping: 'ALL' },`);
    const p = await load(path);
    const ctx = { vo: 'v', account: 'a', did, copies: 1, rse_expression: '*' };
    expect(await p.ruleDefaults(ctx)).toEqual({ activity: 'Express', grouping: 'ALL' });
    expect((await policyError(p.ruleDefaults({ ...ctx, account: 'x' }))).message).toMatch(/lifetime -5/);
  });
});

describe('isolation', () => {
  it('a throwing hook is PolicyHookFailed naming the package, hook and item; the next call works', async () => {
    const path = await pkgs.ts('throws.ts', `lfn2pfn(d: PolicyDid) { if (d.name === 'boom') throw new TypeError('no run in name'); return 'ok/' + d.name; },`, { name: 'thrower' });
    const p = await load(path);
    const e = await policyError(p.lfn2pfn([did, { scope: 'data', name: 'boom' }], rse));
    expect([e.code, e.details?.package, e.details?.hook]).toEqual(['PolicyHookFailed', 'thrower', 'lfn2pfn']);
    expect(e.message).toMatch(/policy 'thrower' lfn2pfn \(item 1\) threw: TypeError: no run in name/);
    expect(await p.lfn2pfn([did], rse)).toEqual(['ok/f1']);
  });

  it('an endless loop is stopped at its budget (PolicyTimeout), the worker restarts, the next call works', async () => {
    const path = await pkgs.ts('loop.ts', `lfn2pfn(d: PolicyDid) { if (d.name === 'spin') { while (true) {} } return 'ok/' + d.name; },`, { name: 'looper' });
    const p = await load(path, { callTimeoutMs: 300 });
    const other = await load(await pkgs.ts('other.ts', `lfn2pfn: (d: PolicyDid) => 'other/' + d.name,`));
    const t = performance.now();
    const spinning = policyError(p.lfn2pfn([{ scope: 'data', name: 'spin' }], rse));
    // Meanwhile another package (another VO) answers at once: the loop is not on this thread.
    expect(await other.lfn2pfn([did], rse)).toEqual(['other/f1']);
    const e = await spinning;
    const took = performance.now() - t;
    expect([e.code, e.details?.hook]).toEqual(['PolicyTimeout', 'lfn2pfn']);
    expect(e.message).toMatch(/did not answer within 30\d ms/);
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2000);
    expect(await p.lfn2pfn([did], rse)).toEqual(['ok/f1']);
  });

  it('calls queued behind a timed-out call run on the restarted worker', async () => {
    const path = await pkgs.ts('loop2.ts', `lfn2pfn(d: PolicyDid) { if (d.name === 'spin') { while (true) {} } return 'ok/' + d.name; },`);
    const p = await load(path, { callTimeoutMs: 200 });
    const first = policyError(p.lfn2pfn([{ scope: 'data', name: 'spin' }], rse));
    const second = p.lfn2pfn([did], rse);
    expect((await first).code).toBe('PolicyTimeout');
    expect(await second).toEqual(['ok/f1']);
  });

  it('a hook that kills its worker is PolicyHookFailed and the worker comes back', async () => {
    const path = await pkgs.ts('crash.ts', `lfn2pfn(d: PolicyDid) { if (d.name === 'exit') process.exit(3); return 'ok/' + d.name; },`);
    const p = await load(path);
    const e = await policyError(p.lfn2pfn([{ scope: 'data', name: 'exit' }], rse));
    expect(e.code).toBe('PolicyHookFailed');
    expect(e.message).toMatch(/worker exited \(code 3\)/);
    expect(await p.lfn2pfn([did], rse)).toEqual(['ok/f1']);
  });

  it('a value that cannot cross threads is PolicyInvalidResult', async () => {
    const path = await pkgs.ts('fnresult.ts', `ruleDefaults: () => ({ activity: () => 'x' }),`);
    const e = await policyError((await load(path)).ruleDefaults({ vo: 'v', account: 'a', did, copies: 1, rse_expression: '*' }));
    expect(e.code).toBe('PolicyInvalidResult');
  });

  it('batches: 25,000 files go in chunks and come back in order', async () => {
    const path = await pkgs.ts('batch.ts', `lfn2pfn: (d: PolicyDid) => d.scope + '/' + d.name,`);
    const p = await load(path, { batchSize: 10_000 });
    const dids = Array.from({ length: 25_000 }, (_, i) => ({ scope: 'data', name: `f${i}` }));
    const out = await p.lfn2pfn(dids, rse);
    expect(out.length).toBe(25_000);
    expect(out[0]).toBe('data/f0');
    expect(out[24_999]).toBe('data/f24999');
  });

  it('an idle package worker does not keep a finished process alive', async () => {
    const registry = pathToFileURL(join(import.meta.dirname, '../../policies/registry.ts')).href;
    const script = await pkgs.raw(
      'short-lived.mts',
      `import { loadPolicy } from '${registry}';\n` +
        `const l = await loadPolicy('examples/run-number.ts');\n` +
        `console.log((await l.policy.lfn2pfn([{ scope: 'a', name: 'a.00000001.s.t' }], { name: 'X', prefix: '/', attributes: {} }))[0]);\n`,
    );
    const t0 = performance.now();
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { cwd: join(import.meta.dirname, '../..'), timeout: 20_000 });
    expect(stdout.trim()).toBe('a/00000001/a.00000001.s.t');
    expect(performance.now() - t0).toBeLessThan(15_000);
  });
});
