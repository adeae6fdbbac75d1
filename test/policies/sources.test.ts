/** The rankSources hook on top of Sluice's own source ranking (core/sources.ts). */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyPolicySourceRanking, rankSources, type SourceCandidate } from '../../core/sources.ts';
import { loadPolicy, resolvePolicy, type ResolvedPolicy } from '../../policies/registry.ts';
import { definePolicy } from '../../policies/types.ts';

let runNumber: Awaited<ReturnType<typeof loadPolicy>>;
beforeAll(async () => {
  runNumber = await loadPolicy('examples/run-number.ts');
});
afterAll(() => runNumber.close());

const rses = new Map<number, { name: string; attributes: Record<string, string> }>([
  [1, { name: 'NEAR_TAPE', attributes: { type: 'TAPE' } }],
  [2, { name: 'FAR_DISK', attributes: { type: 'DISK' } }],
  [3, { name: 'MID', attributes: {} }],
]);
const cands: SourceCandidate[] = [
  { rseId: 1, distance: 1, failureRate: 0, queued: 0, limit: 10 },
  { rseId: 2, distance: 9, failureRate: 0, queued: 0, limit: 10 },
  { rseId: 3, distance: 5, failureRate: 0, queued: 0, limit: 10 },
];
const ctx = { vo: 'atlas', did: { scope: 'data', name: 'f' }, destination: { name: 'DEST', attributes: {} }, activity: 'default' };
const ids = (r: SourceCandidate[]) => r.map((c) => c.rseId);

it('without a hook, Sluice\'s ranking stands (nearest first)', async () => {
  const ranked = rankSources(cands);
  expect(ids((await applyPolicySourceRanking(resolvePolicy(definePolicy({ apiVersion: 1, name: 'none' })), ranked, rses, ctx)).ranked)).toEqual([1, 3, 2]);
});

it('an ordered answer (run-number: disk before tape) reorders the sources', async () => {
  const out = await applyPolicySourceRanking(runNumber.policy, rankSources(cands), rses, ctx);
  expect(ids(out.ranked)).toEqual([2, 3, 1]);
});

it('{ only } filters and keeps Sluice\'s order; keeping nothing gives a waiting reason', async () => {
  const only = (names: string[]): ResolvedPolicy => resolvePolicy(definePolicy({ apiVersion: 1, name: 'only', rankSources: () => ({ only: names }) }));
  expect(ids((await applyPolicySourceRanking(only(['FAR_DISK', 'NEAR_TAPE']), rankSources(cands), rses, ctx)).ranked)).toEqual([1, 2]);
  const none = await applyPolicySourceRanking(only([]), rankSources(cands), rses, ctx);
  expect(none.ranked).toEqual([]);
  expect(none.reason).toMatch(/policy 'only' rankSources kept none of the sources NEAR_TAPE, MID, FAR_DISK/);
});

it('an RSE that was not a candidate is PolicyInvalidResult', async () => {
  const p = resolvePolicy(definePolicy({ apiVersion: 1, name: 'liar', rankSources: () => ['ELSEWHERE'] }));
  await expect(applyPolicySourceRanking(p, rankSources(cands), rses, ctx)).rejects.toMatchObject({ code: 'PolicyInvalidResult' });
});
