/**
 * Helpers for the places that call a VO's hooks with more than one item, so that the call sites
 * in core/ stay a line or two: grouping lfn2pfn batches per RSE, and turning a rank decision
 * into candidate indexes.
 */
import type { RankDecision, ResolvedPolicy } from './registry.ts';
import type { DestinationContext, PolicyRse } from './types.ts';

/**
 * Paths of (file, RSE) pairs through the VO's lfn2pfn, in input order: one batch per RSE (a
 * rule's 100,000 files on two RSEs are two batches of 100,000, chunked by the registry).
 */
export async function pathsFor(
  policy: Pick<ResolvedPolicy, 'lfn2pfn'>,
  scopes: readonly string[],
  names: readonly string[],
  rses: ReadonlyArray<PolicyRse & { id: number }>,
): Promise<string[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < rses.length; i++) {
    const g = groups.get(rses[i].id);
    if (g) g.push(i);
    else groups.set(rses[i].id, [i]);
  }
  const out = new Array<string>(rses.length);
  for (const idx of groups.values()) {
    const rse = rses[idx[0]];
    const paths = await policy.lfn2pfn(
      idx.map((i) => ({ scope: scopes[i], name: names[i] })),
      { name: rse.name, prefix: rse.prefix, attributes: rse.attributes },
    );
    for (let j = 0; j < idx.length; j++) out[idx[j]] = paths[j];
  }
  return out;
}

export interface DestinationRanking {
  /** Candidate indexes the package dropped. */
  dropped: number[];
  /** Candidate indexes in the package's order of preference (ordered answers only). */
  preferred?: number[];
  decision: RankDecision;
}

/** The VO's rankDestinations over placement candidates; undefined when it has no opinion. */
export async function rankDestinations(
  policy: Pick<ResolvedPolicy, 'hooks' | 'rankDestinations'>,
  candidates: ReadonlyArray<PolicyRse>,
  ctx: DestinationContext,
): Promise<DestinationRanking | undefined> {
  if (!policy.hooks.has('rankDestinations') || candidates.length === 0) return undefined;
  const decision = await policy.rankDestinations(
    candidates.map((c) => ({ name: c.name, prefix: c.prefix, attributes: c.attributes })),
    ctx,
  );
  if (!decision) return undefined;
  const index = new Map(candidates.map((c, i) => [c.name, i]));
  const kept = new Set(decision.names.map((n) => index.get(n)!));
  return {
    dropped: candidates.map((_, i) => i).filter((i) => !kept.has(i)),
    preferred: decision.ordered ? decision.names.map((n) => index.get(n)!) : undefined,
    decision,
  };
}
