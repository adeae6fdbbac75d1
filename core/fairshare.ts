/**
 * Splitting a link's free transfer slots between VOs, then activities, then priorities.
 *
 * FTS3 draws slots at random with weights, so its shares are right only on average and a small
 * VO can go many rounds without a slot. Here the split is deterministic water-filling against the
 * transfers already running: every VO with queued work is raised towards `level * weight` active
 * transfers, the level chosen so that exactly the free slots are used. A VO already above its
 * share gets nothing (nothing is pre-empted); the slots of VOs with no queued work go to the others
 * (work-conserving). Rounding goes to the largest remainder. Before water-filling, every VO with
 * queued work and no running transfer gets one slot (it is the furthest below its share in
 * relative terms), so a VO with one request next to one with a million is served in the first round
 * that has a free slot. The same split is applied to activities inside a VO; inside an activity,
 * higher priority is served first.
 *
 * Cost: O(n log n) in the number of queues, independent of `free`.
 */

export interface QueueState {
  vo: string;
  activity: string;
  /** 1 (lowest) to 5 (highest); any number works, higher first. */
  priority: number;
  queued: number;
  active: number;
}

export interface Shares {
  /** VO weights; VOs not listed get `defaultVoWeight`. Weight 0: only slots nobody else can use. */
  vo: Record<string, number>;
  /** Per VO, activity weights; activities not listed get `defaultActivityWeight`. */
  activity?: Record<string, Record<string, number>>;
}

export interface FairShareOptions {
  /** Weight of a VO absent from `shares.vo` (default 1). */
  defaultVoWeight: number;
  /** Weight of an activity absent from `shares.activity[vo]` (default 1). */
  defaultActivityWeight: number;
}

export interface SlotAllocation {
  vo: string;
  activity: string;
  priority: number;
  count: number;
}

const defaults: FairShareOptions = { defaultVoWeight: 1, defaultActivityWeight: 1 };

interface Group {
  key: string;
  weight: number;
  active: number;
  queued: number;
}

/**
 * Split `free` slots between the queues. Deterministic (same input, same output, in order of VO,
 * activity, then priority descending); never gives a queue more than it has queued; returns only
 * entries with count > 0; returns [] when `free` < 1.
 */
export function allocateSlots(
  free: number,
  queues: QueueState[],
  shares: Shares,
  options: Partial<FairShareOptions> = {},
): SlotAllocation[] {
  const opts = { ...defaults, ...options };
  const slots = Number.isFinite(free) ? Math.floor(free) : free === Infinity ? Number.MAX_SAFE_INTEGER : 0;
  if (!(slots >= 1)) return [];

  // Merge duplicate (vo, activity, priority) rows and sanitise counts.
  type Act = { active: number; queued: number; byPriority: Map<number, number> };
  type Vo = { active: number; queued: number; activities: Map<string, Act> };
  const vos = new Map<string, Vo>();
  for (const q of queues) {
    const queued = count(q.queued);
    const active = count(q.active);
    let vo = vos.get(q.vo);
    if (!vo) vos.set(q.vo, (vo = { active: 0, queued: 0, activities: new Map() }));
    let act = vo.activities.get(q.activity);
    if (!act) vo.activities.set(q.activity, (act = { active: 0, queued: 0, byPriority: new Map() }));
    const priority = Number.isFinite(q.priority) ? q.priority : 0;
    vo.active += active;
    vo.queued += queued;
    act.active += active;
    act.queued += queued;
    if (queued > 0) act.byPriority.set(priority, (act.byPriority.get(priority) ?? 0) + queued);
  }

  const voGroups: Group[] = [...vos].map(([key, v]) => ({
    key,
    weight: weight(shares.vo?.[key], opts.defaultVoWeight),
    active: v.active,
    queued: v.queued,
  }));
  const voSlots = split(slots, voGroups);

  const out: SlotAllocation[] = [];
  for (const voName of [...voSlots.keys()].sort(compareStrings)) {
    const vo = vos.get(voName)!;
    const activityShares = shares.activity?.[voName] ?? {};
    const actGroups: Group[] = [...vo.activities].map(([key, a]) => ({
      key,
      weight: weight(activityShares[key], opts.defaultActivityWeight),
      active: a.active,
      queued: a.queued,
    }));
    const actSlots = split(voSlots.get(voName)!, actGroups);
    for (const actName of [...actSlots.keys()].sort(compareStrings)) {
      let left = actSlots.get(actName)!;
      const byPriority = vo.activities.get(actName)!.byPriority;
      for (const priority of [...byPriority.keys()].sort((a, b) => b - a)) {
        if (left <= 0) break;
        const n = Math.min(left, byPriority.get(priority)!);
        out.push({ vo: voName, activity: actName, priority, count: n });
        left -= n;
      }
    }
  }
  return out;
}

function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

function weight(configured: number | undefined, fallback: number): number {
  const w = configured === undefined ? fallback : configured;
  return Number.isFinite(w) && w > 0 ? w : 0;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Split `slots` between groups: one slot first to each weighted group with queued work and none
 * active, then water-filling by weight; groups of weight 0 share (equally) only what is left.
 * Returns group key -> slots (> 0 only); the total is min(slots, total queued).
 */
function split(slots: number, groups: Group[]): Map<string, number> {
  const alloc = new Map<string, number>();
  const withWork = groups.filter((g) => g.queued > 0);
  let left = Math.min(slots, withWork.reduce((s, g) => s + g.queued, 0));
  if (left <= 0) return alloc;

  const weighted = withWork.filter((g) => g.weight > 0);
  // Starving groups first: no active transfer means the largest relative deficit of all.
  const starving = weighted
    .filter((g) => g.active === 0)
    .sort((a, b) => b.weight - a.weight || compareStrings(a.key, b.key));
  for (const g of starving) {
    if (left <= 0) break;
    alloc.set(g.key, 1);
    left--;
  }
  left = waterFill(left, weighted, alloc);
  if (left > 0) {
    const unweighted = withWork.filter((g) => g.weight === 0).map((g) => ({ ...g, weight: 1 }));
    left = waterFill(left, unweighted, alloc);
  }
  // Weighted groups may still have queued work when the level search was capped; hand the rest
  // out so that the split is always work-conserving.
  for (const g of withWork) {
    if (left <= 0) break;
    const have = alloc.get(g.key) ?? 0;
    const extra = Math.min(left, g.queued - have);
    if (extra > 0) {
      alloc.set(g.key, have + extra);
      left -= extra;
    }
  }
  for (const [k, v] of alloc) if (v <= 0) alloc.delete(k);
  return alloc;
}

/**
 * Give `slots` to groups so that active + given approaches level * weight, capped by queued.
 * Finds the level on the piecewise-linear total (sorted breakpoints), floors, then hands the
 * remainder to the largest fractional parts. Mutates `alloc`; returns slots not given.
 */
function waterFill(slots: number, groups: Group[], alloc: Map<string, number>): number {
  if (slots <= 0 || groups.length === 0) return slots;
  const items = groups
    .map((g) => {
      const given = alloc.get(g.key) ?? 0;
      return { key: g.key, w: g.weight, base: g.active + given, cap: g.queued - given, given };
    })
    .filter((i) => i.cap > 0);
  if (items.length === 0) return slots;
  const totalCap = items.reduce((s, i) => s + i.cap, 0);
  if (totalCap <= slots) {
    for (const i of items) alloc.set(i.key, i.given + i.cap);
    return slots - totalCap;
  }
  // total(level) = sum clamp(level*w - base, 0, cap): slope changes at base/w (starts) and
  // (base+cap)/w (ends). Walk the breakpoints in order until the total reaches `slots`.
  const points: Array<{ at: number; dSlope: number }> = [];
  for (const i of items) {
    points.push({ at: i.base / i.w, dSlope: i.w });
    points.push({ at: (i.base + i.cap) / i.w, dSlope: -i.w });
  }
  points.sort((a, b) => a.at - b.at);
  let level = 0;
  let total = 0;
  let slope = 0;
  for (const p of points) {
    const next = total + slope * (p.at - level);
    if (next >= slots) break;
    total = next;
    level = p.at;
    slope += p.dSlope;
  }
  if (slope > 0) level += (slots - total) / slope;

  const shares = items.map((i) => {
    const exact = Math.min(i.cap, Math.max(0, level * i.w - i.base));
    const whole = Math.min(i.cap, Math.floor(exact + 1e-9));
    return { i, whole, frac: exact - whole };
  });
  let left = slots - shares.reduce((s, x) => s + x.whole, 0);
  shares.sort((a, b) => b.frac - a.frac || b.i.w - a.i.w || compareStrings(a.i.key, b.i.key));
  for (const s of shares) {
    if (left <= 0) break;
    if (s.whole < s.i.cap) {
      s.whole++;
      left--;
    }
  }
  for (const s of shares) if (s.whole > 0) alloc.set(s.i.key, s.i.given + s.whole);
  return Math.max(0, left);
}
