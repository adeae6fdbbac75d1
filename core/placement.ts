/**
 * Where a rule's copies go: pure, no I/O, seedable. For each grouping unit (all files of the
 * rule, one dataset, or one file) choose `copies` distinct RSEs among the candidates:
 *
 *   1. RSEs the rule already uses for the unit (the evaluator adding files to a placed unit),
 *   2. then RSEs already holding or copying the unit's data, most bytes first,
 *   3. then a weighted random pick by the weight attribute (without replacement),
 *
 * never an RSE where the unit would exceed the account's remaining quota. Candidates are already
 * filtered to writable RSEs matching the expression by the caller.
 */
import { seededRandom } from './random.ts';
import { Conflict, InvalidInput } from './errors.ts';

export interface PlacementCandidate {
  id: number;
  name: string;
  /** Relative weight (> 0) for the random pick; 1 when the rule has no weight attribute. */
  weight: number;
  /** Bytes the account may still lock here (Infinity: no limit). Consumed as units are placed. */
  remaining: number;
}

export interface PlacementUnit {
  bytes: number;
  /** Candidate index -> bytes of the unit already held or being copied there. */
  present?: Map<number, number>;
  /** Candidate indexes the rule already uses for this unit (kept first, in this order). */
  pinned?: number[];
  /** Candidate indexes this unit must not use (the repairer: where the lock is stuck, other copies). */
  exclude?: number[];
}

export type Random = () => number;

export { seededRandom };

export class InsufficientTargetRses extends InvalidInput {
  constructor(message: string, details: Record<string, unknown>) {
    super('InsufficientTargetRses', message, { details });
  }
}

export class QuotaExceeded extends Conflict {
  constructor(message: string, details: Record<string, unknown>) {
    super('QuotaExceeded', message, { details });
  }
}

/**
 * Weight of each RSE from the rule's weight attribute: its numeric value; RSEs without it, or
 * with a value that is not a positive number, cannot be chosen (as in Rucio).
 */
export function weightsFrom(rses: Array<{ attributes: Record<string, string> }>, attribute: string | null | undefined): number[] {
  return rses.map((r) => {
    if (!attribute) return 1;
    const raw = r.attributes[attribute];
    const w = raw === undefined ? Number.NaN : Number(raw);
    return Number.isFinite(w) && w > 0 ? w : 0;
  });
}

export interface PlaceOptions {
  copies: number;
  random: Random;
  /** For messages: what is being placed ("dataset 'data:ds1'"). */
  describeUnit?: (unitIndex: number) => string;
  /**
   * Candidate indexes in the order the VO's policy prefers (rankDestinations): taken after RSEs
   * the unit is pinned to or already on, before the weighted random pick.
   */
  preferred?: readonly number[];
  /** Account name and quota limits, for the QuotaExceeded message. */
  quota?: { account: string; limits: Map<number, number>; used: Map<number, number> };
}

/**
 * Returns, per unit, the chosen candidate indexes (length `copies`). Throws
 * InsufficientTargetRses when fewer than `copies` usable candidates exist at all, and
 * QuotaExceeded when quota leaves a unit fewer than `copies` RSEs.
 */
export function placeUnits(candidates: PlacementCandidate[], units: PlacementUnit[], options: PlaceOptions): Int32Array[] {
  const { copies, random } = options;
  const n = candidates.length;
  const usable = candidates.filter((c) => c.weight > 0).length;
  if (usable < copies) {
    throw new InsufficientTargetRses(
      `${copies} cop${copies === 1 ? 'y' : 'ies'} asked, but only ${usable} RSE${usable === 1 ? '' : 's'} ` +
        `(${candidates.filter((c) => c.weight > 0).map((c) => c.name).join(', ') || 'none'}) can take them`,
      { copies, rses: candidates.filter((c) => c.weight > 0).map((c) => c.name) },
    );
  }
  const remaining = Float64Array.from(candidates, (c) => c.remaining);
  const weights = Float64Array.from(candidates, (c) => c.weight);
  // Fast path for the common case (no quota in play, nothing pinned/present): cumulative weights
  // and a binary search, rejecting repeats; copies is small against n, so rejections are rare.
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) cumulative[i] = total += weights[i];
  const chosen = new Uint8Array(n);
  const limited = candidates.some((c) => Number.isFinite(c.remaining));
  const out: Int32Array[] = new Array(units.length);

  for (let u = 0; u < units.length; u++) {
    const unit = units[u];
    const picks = new Int32Array(copies);
    let k = 0;
    const fits = (i: number) => weights[i] > 0 && chosen[i] === 0 && remaining[i] >= unit.bytes;
    // Excluded RSEs are marked chosen (2) for this unit only, so every path below skips them.
    if (unit.exclude) for (const i of unit.exclude) chosen[i] = 2;
    if (unit.pinned) {
      for (const i of unit.pinned) if (k < copies && fits(i)) ((chosen[i] = 1), (picks[k++] = i));
    }
    if (k < copies && unit.present && unit.present.size) {
      const ranked = [...unit.present.entries()].filter(([i]) => fits(i)).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      for (const [i] of ranked) {
        if (k >= copies) break;
        chosen[i] = 1;
        picks[k++] = i;
      }
    }
    if (k < copies && options.preferred) {
      for (const i of options.preferred) {
        if (k >= copies) break;
        if (fits(i)) ((chosen[i] = 1), (picks[k++] = i));
      }
    }
    let quotaFree = true;
    if (limited && k < copies) {
      for (let i = 0; i < n; i++) if (remaining[i] < unit.bytes && weights[i] > 0) quotaFree = false;
    }
    if (quotaFree && k < copies && k === 0 && !unit.exclude?.length) {
      let guard = 0;
      while (k < copies && guard++ < 64 * copies) {
        const x = random() * total;
        let lo = 0;
        let hi = n - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (cumulative[mid] > x) hi = mid;
          else lo = mid + 1;
        }
        if (weights[lo] > 0 && chosen[lo] === 0) ((chosen[lo] = 1), (picks[k++] = lo));
      }
    }
    while (k < copies) {
      let sum = 0;
      for (let i = 0; i < n; i++) if (fits(i)) sum += weights[i];
      if (sum === 0) break;
      let x = random() * sum;
      let pick = -1;
      for (let i = 0; i < n; i++) {
        if (!fits(i)) continue;
        pick = i;
        x -= weights[i];
        if (x < 0) break;
      }
      chosen[pick] = 1;
      picks[k++] = pick;
    }
    for (let j = 0; j < k; j++) chosen[picks[j]] = 0;
    if (unit.exclude) for (const i of unit.exclude) chosen[i] = 0;
    if (k < copies) {
      const what = options.describeUnit?.(u) ?? `unit ${u}`;
      const q = options.quota;
      const over = candidates
        .map((c, i) => ({ c, i }))
        .filter(({ c, i }) => c.weight > 0 && remaining[i] < unit.bytes)
        .map(({ c, i }) => ({
          rse: c.name,
          limit_bytes: q?.limits.get(c.id) ?? null,
          used_bytes: q?.used.get(c.id) ?? 0,
          remaining_bytes: Math.max(0, remaining[i]),
          needed_bytes: unit.bytes,
        }));
      if (over.length === 0) {
        throw new InsufficientTargetRses(`${what}: no ${copies - k} more RSE${copies - k === 1 ? '' : 's'} available for ${copies} copies`, { copies, unit: what });
      }
      throw new QuotaExceeded(
        `${what} needs ${unit.bytes} bytes on ${copies} RSEs, but account '${q?.account ?? '?'}' has only ${k} with room: ` +
          over.map((o) => `${o.rse} limit ${o.limit_bytes} B, used ${o.used_bytes} B, ${o.remaining_bytes} B left`).join('; '),
        { copies, unit: what, over },
      );
    }
    for (let j = 0; j < copies; j++) if (Number.isFinite(remaining[picks[j]])) remaining[picks[j]] -= unit.bytes;
    out[u] = picks;
  }
  return out;
}
