/**
 * Per-link concurrency optimizer: pure, no I/O, one instance per link (it keeps state between
 * windows). The daemon feeds it one observation per window and stores the decision and reason;
 * fixtures/link-simulator.ts drives it against a model link.
 *
 * FTS3 moves 1-2 transfers per minute and compares throughput on a log scale, so it needs tens of
 * minutes to reach a limit of 100 and does not see a 50% drop. Here:
 * - probe: multiply the limit (x4 while throughput grows in proportion to concurrency, x2 while it
 *   still grows by at least 0.4 of it, x1.4 while it grows at all) and stop when a step no longer
 *   pays: a drop goes back to the best limit seen, a flat step settles between the last two;
 * - hold: keep the limit while throughput stays within a band around its moving average; the band
 *   widens with the noise measured while holding, so noise does not make the limit move;
 * - a level shift at an unchanged limit means the link changed: a rise re-enters probing, a fall
 *   halves the limit, then keeps stepping down (x0.75) while that raises throughput;
 * - failures (success below minSuccessRate, with enough failed transfers to be evidence) cut the
 *   limit to success x active (as if the excess transfers were the ones failing) and cap later
 *   probes below the concurrency that failed, for a while;
 * - demand-limited windows (active + queued < limit) say nothing about the limit: hold;
 * - every so often in hold, re-probe x1.25 to find capacity that appeared without a level shift;
 *   fruitless re-probes space out (10, 20, 40... windows).
 * Observations are taken as: `active` at the end of the window, throughput over the window that
 * ran under `limit`, i.e. under the previous decision.
 */

export interface LinkObservation {
  nowMs: number;
  limit: number;
  min: number;
  max: number;
  active: number;
  queued: number;
  /** Throughput over the last window. */
  bytesPerSecond: number;
  /** 0..1 over the window; retryable failures count as failures. */
  successRate: number;
  meanFileBytes: number;
}

export interface LinkDecision {
  limit: number;
  reason: string;
}

export interface OptimizerOptions {
  /** Relative throughput difference treated as noise when comparing two limits (default 0.1). */
  tolerance: number;
  /** Relative change at an unchanged limit that means the link itself changed (default 0.25). */
  levelShift: number;
  /** Success rate below which the limit backs off (default 0.95). */
  minSuccessRate: number;
  /** Failed transfers a window needs before its success rate counts as evidence (default 2). */
  minFailedTransfers: number;
  /** Largest multiplicative step while probing (default 4). */
  maxProbeFactor: number;
  /** Windows of hold before a re-probe (default 10; doubles after each fruitless one, up to 8x). */
  reprobeAfter: number;
  /** Step of a re-probe (default 1.25). */
  reprobeFactor: number;
  /** Windows during which a concurrency that failed caps probing (default 30). */
  failureMemory: number;
  /** A gap between observations longer than this forgets the history (default 10 min). */
  staleAfterMs: number;
  /** Window length assumed before two observations give one (default 60 s). */
  defaultWindowMs: number;
}

export const defaultOptimizerOptions: OptimizerOptions = {
  tolerance: 0.1,
  levelShift: 0.25,
  minSuccessRate: 0.95,
  minFailedTransfers: 2,
  maxProbeFactor: 4,
  reprobeAfter: 10,
  reprobeFactor: 1.25,
  failureMemory: 30,
  staleAfterMs: 600_000,
  defaultWindowMs: 60_000,
};

type Phase = 'start' | 'probe' | 'hold' | 'reprobe' | 'descend' | 'bisect';

interface Point {
  c: number;
  tput: number;
}

export interface LinkOptimizer {
  decide(o: LinkObservation): LinkDecision;
}

export function createLinkOptimizer(options: Partial<OptimizerOptions> = {}): LinkOptimizer {
  const opts: OptimizerOptions = { ...defaultOptimizerOptions, ...options };

  let phase: Phase = 'start';
  let decisions = 0;
  let lastNowMs: number | null = null;
  /** The previous usable window (concurrency and throughput). */
  let prev: Point | null = null;
  /** Best window seen since probing (re)started, and the windows of the current probe. */
  let best: Point | null = null;
  let probePoints: Point[] = [];
  /** Failed and ended transfers at the current concurrency, decayed, for the significance test. */
  let failStats: { c: number; failed: number; attempts: number } | null = null;
  /** Where a re-probe or a descent started from. */
  let from: Point | null = null;
  /** Moving average of throughput at the held limit, and of its squared relative deviation. */
  let baseline: number | null = null;
  /** Throughput the points around a settled limit promise for it: the first clean window at it is
   * compared with this, so that a link that changes while the limit moves is still noticed. */
  let expected: { lo: number } | null = null;
  let noiseVar = 0;
  let holdCount = 0;
  let reprobeInterval = opts.reprobeAfter;
  /** A limit change makes the next window a blend of old and new: it is not used as a baseline. */
  let transition = false;
  let prevWasTransition = false;
  let ceiling: { c: number; at: number } | null = null;
  /** A concurrency seen to give no more (or less) throughput than the held one: re-probes stay
   * below it for a while, since probing into a known slope only costs throughput. */
  let worseAbove: { c: number; at: number } | null = null;
  /** Largest probe step allowed in the current probe: x4 from scratch, less when re-entering. */
  let probeCap = opts.maxProbeFactor;
  /** Concurrency the last back-off estimated as sustainable (bisection stays near it). */
  let estimate: number | null = null;
  let lastBackoff: { success: number; at: number } | null = null;
  /** In a descent that has not yet seen fewer transfers move more: the last flat step. */
  let flatDescent: number | null = null;
  let flatAbove: number | null = null;
  /** A descent after a level shift stopped on a doubtful comparison: look down once more. */
  let lookDownAgain = false;
  /** Highest concurrency the current bisection saw succeed. */
  let worked: number | null = null;

  function enterHold(expect?: { lo: number }): void {
    phase = 'hold';
    expected = expect ?? null;
    baseline = null;
    holdCount = 0;
    from = null;
  }

  function forget(): void {
    phase = 'start';
    prev = null;
    best = null;
    probePoints = [];
    failStats = null;
    from = null;
    baseline = null;
    expected = null;
    lookDownAgain = false;
    noiseVar = 0;
    holdCount = 0;
    reprobeInterval = opts.reprobeAfter;
    transition = false;
    worseAbove = null;
  }

  return {
    decide(o: LinkObservation): LinkDecision {
      decisions++;
      const min = Math.max(0, Number.isFinite(o.min) ? Math.ceil(o.min) : 0);
      const max = Math.max(min, Number.isFinite(o.max) ? Math.floor(o.max) : min);
      const clamp = (v: number) => (Number.isFinite(v) ? Math.min(max, Math.max(min, Math.round(v))) : min);
      const current = clamp(o.limit);
      if (min === max) return { limit: min, reason: `min equals max (${min}): nothing to optimize` };

      const active = count(o.active);
      const queued = count(o.queued);
      const c = active > 0 ? active : Math.max(1, current);
      const tput = o.bytesPerSecond;
      const success = Number.isFinite(o.successRate) ? Math.min(1, Math.max(0, o.successRate)) : null;
      const now = Number.isFinite(o.nowMs) ? o.nowMs : null;
      const dtMs =
        now !== null && lastNowMs !== null && now > lastNowMs ? now - lastNowMs : opts.defaultWindowMs;
      if (now !== null && lastNowMs !== null && (now <= lastNowMs || now - lastNowMs > opts.staleAfterMs)) forget();
      if (now !== null) lastNowMs = now;
      const wasTransition = transition;
      transition = false;
      /** A concurrency that failed within the failure memory: probes stay below it. */
      const failedAt = ceiling && decisions - ceiling.at <= opts.failureMemory ? ceiling.c : null;
      const ceilingCap = failedAt === null ? max : Math.max(min, failedAt - 1);
      const demand = active + queued;
      /** An increase capped by max, by the queue (no point in slots nobody fills) and by failures. */
      // Near a concurrency that recently failed, go at most half way (geometrically) towards it.
      const nearFailure = failedAt === null ? max : Math.floor(Math.sqrt(current * failedAt));
      const up = (target: number) =>
        Math.max(current, Math.min(clamp(target), ceilingCap, nearFailure, Math.max(demand, min)));
      const move = (limit: number, reason: string): LinkDecision => {
        if (limit !== current) transition = true;
        return { limit, reason };
      };

      // 1. Failures come first: they hurt the storage and the users, whatever the throughput.
      // Failed and ended transfers are estimated from throughput, window length and file size,
      // and accumulated while the concurrency stays the same, so that two unlucky failures out
      // of twenty transfers do not cut the limit but a steady 10% failure rate does.
      if (success !== null && active > 0) {
        const validTput = Number.isFinite(tput) && tput > 0;
        // With no bytes moved, failures ended the transfers early: count the active ones.
        const ended =
          validTput && o.meanFileBytes > 0
            ? (tput * dtMs) / 1000 / o.meanFileBytes / Math.max(success, 0.05)
            : Math.max(1, active);
        if (!failStats || !near(failStats.c, c) || wasTransition) failStats = { c, failed: 0, attempts: 0 };
        else if (failStats.attempts > 0) {
          // A window far outside what the history predicts means the link changed: the history
          // would only dilute the new rate (4 sigma of a binomial with the history's rate).
          const p = Math.min(0.99, Math.max(0.01, failStats.failed / failStats.attempts));
          const predicted = p * ended;
          if (Math.abs((1 - success) * ended - predicted) > 4 * Math.sqrt(ended * p * (1 - p)) + 1) failStats = { c, failed: 0, attempts: 0 };
        }
        failStats.failed = failStats.failed * 0.7 + (1 - success) * ended;
        failStats.attempts = failStats.attempts * 0.7 + ended;
      }
      if (success !== null && success < opts.minSuccessRate && active > 0 && failStats) {
        const allowed = failStats.attempts * (1 - opts.minSuccessRate);
        const significant =
          failStats.failed >= opts.minFailedTransfers && failStats.failed > allowed + 2 * Math.sqrt(allowed) + 0.5;
        // The window after a back-off still holds transfers started under the old limit (they
        // drain, they are not killed); if it is better than the one that caused the back-off,
        // wait for a clean window rather than cut twice for the same overload.
        const recovering =
          wasTransition &&
          lastBackoff !== null &&
          lastBackoff.at === decisions - 1 &&
          success > lastBackoff.success + 0.02;
        if (significant && !recovering) {
          // Cut to the share that succeeded (exact when the excess transfers are the ones that
          // fail), using the upper end of the success rate's one-sigma band: a window holds only
          // tens of transfers, and an unlucky one should not cut far below the working level.
          // The rate comes from every window at this concurrency (decayed), not this one alone.
          const n = Math.max(1, failStats.attempts);
          const rate = Math.max(0, 1 - failStats.failed / n);
          const hopeful = Math.min(1, rate + Math.sqrt((rate * (1 - rate)) / n));
          let target = Math.min(clamp(Math.floor(c * Math.max(hopeful, 0.25))), Math.max(min, current - 1));
          // A failed step of the bisection goes back no lower than the last step that worked.
          if (phase === 'bisect' && worked !== null && worked < c) target = Math.max(target, worked);
          worked = null;
          ceiling = { c: Math.min(c, failedAt ?? Infinity), at: decisions };
          lastBackoff = { success, at: decisions };
          // Where failures start is unknown between two shapes: the excess transfers fail (success
          // = threshold / c: the cut above is exact) or failures grow faster, like the square
          // (threshold = c x sqrt(success)). The bisection looks between the two.
          estimate = c * Math.sqrt(rate);
          prev = null;
          best = null;
          failStats = null;
          reprobeInterval = opts.reprobeAfter;
          enterHold();
          phase = 'bisect';
          return move(
            target,
            `success ${pct(success)} at ${c} active is below ${pct(opts.minSuccessRate)}: backing off to ${target}`,
          );
        }
        if (recovering) {
          prev = null;
          transition = true;
          return { limit: current, reason: `success ${pct(success)} (was ${pct(lastBackoff!.success)}) in the window after backing off, which still drains transfers started above ${current}: holding ${current}` };
        }
        // Too few transfers ended to tell a failing link from bad luck: do not raise the limit
        // on this window.
        // `prev` stays as it was, so the next window is compared with the same reference.
        if (phase === 'probe' || phase === 'reprobe' || phase === 'start' || phase === 'bisect') {
          return { limit: current, reason: `success ${pct(success)} at ${c} active, not yet significant: holding ${current} for more evidence` };
        }
      }

      // 2. Windows that say nothing about the limit.
      if (!Number.isFinite(tput) || tput < 0) {
        return { limit: current, reason: `no valid throughput measurement (${String(tput)}): holding ${current}` };
      }
      if (tput === 0) {
        prev = null;
        return { limit: current, reason: `no bytes moved in the window at ${c} active: holding ${current}` };
      }
      if (demand < current) {
        // The link does not fill its limit: throughput reflects the demand, not the limit.
        prev = null;
        if (phase !== 'hold') enterHold();
        baseline = null;
        return {
          limit: current,
          reason: `demand-limited: ${active} active + ${queued} queued < limit ${current}: holding`,
        };
      }

      const last = prev;
      const lastWasBlend = prevWasTransition;
      prev = { c, tput };
      prevWasTransition = wasTransition;

      if (phase === 'bisect') {
        // After a back-off: the failing concurrency is known (ceiling), this one works. Bisect
        // (geometrically) until the two are within 15%, unless throughput stops rising.
        if (last && !lastWasBlend && c > last.c && tput < last.tput * (1 - Math.max(opts.tolerance, 2 * Math.sqrt(noiseVar)))) {
          const target = clamp(last.c);
          enterHold();
          return move(target, `throughput fell ${signedPct(tput / last.tput - 1)} going from ${last.c} to ${c} active below the failure limit: back to ${target}`);
        }
        // Bisect towards the failing concurrency, but only up to the back-off's estimate of where
        // failures start: probing far above it only buys another failing window.
        if (success === null || success >= opts.minSuccessRate) worked = Math.max(worked ?? 0, c);
        const failing = ceilingCap + 1;
        // Past the estimate's bound, only the periodic re-probe looks further (failures cost).
        const top = Math.min(failing, estimate !== null ? Math.ceil(estimate) : failing);
        if (top / c > 1.15) {
          const target = up(Math.sqrt(c * top));
          if (target > current) {
            return move(target, `success ${pct(success ?? 1)} at ${c} active, failures at ${failing}: trying ${target}`);
          }
        }
        enterHold();
        return { limit: current, reason: `success ${pct(success ?? 1)} at ${c} active, failures at ${failing}: holding ${current}` };
      }
      if (!best || tput > best.tput) best = { c, tput };

      const sigma = Math.sqrt(noiseVar);
      const tol = Math.max(opts.tolerance, 2 * sigma);
      const shift = Math.max(opts.levelShift, 3 * sigma);

      if (phase === 'start' || !last) {
        if (phase === 'hold' && !wasTransition) {
          // Hold without history (after demand-limited windows or a back-off): start a baseline.
          baseline = tput;
          return { limit: current, reason: `${rate(tput)} at ${c} active: holding ${current}` };
        }
        if (phase === 'hold') {
          return { limit: current, reason: `${rate(tput)} at ${c} active just after a limit change: holding ${current}` };
        }
        phase = 'probe';
        best = { c, tput };
        probePoints = [{ c, tput }];
        probeCap = opts.maxProbeFactor;
        const factor = current <= min * 2 ? opts.maxProbeFactor : 2;
        const target = up(c * factor);
        if (target <= current) {
          enterHold();
          return { limit: current, reason: `${rate(tput)} at ${c} active; cannot go higher (max ${max}, queue ${demand}${ceilingNote(ceilingCap, max)}): holding` };
        }
        return move(target, `${rate(tput)} at ${c} active: probing up to ${target}`);
      }

      const r = tput / last.tput;
      const change = `${signedPct(r - 1)} (${rate(last.tput)} -> ${rate(tput)})`;

      if (phase === 'probe') {
        if (c <= last.c) {
          enterHold();
          return { limit: current, reason: `${rate(tput)} at ${c} active; could not probe higher: holding ${current}` };
        }
        const e = Math.log(r) / Math.log(c / last.c);
        probePoints.push({ c, tput });
        if (r < 1 - tol) {
          // Past the peak: it lies between the point before the best and this one. Interpolate
          // it (parabola through the three points in log-concurrency, as in Brent's method).
          const i = probePoints.findIndex((p) => p.c === best!.c);
          const lower = i > 0 ? probePoints[i - 1] : null;
          const target = clamp(lower ? peakBetween(lower, best, { c, tput }) : best.c);
          worseAbove = { c, at: decisions };
          // Concave: the limit gives at least the lower of the two points around it.
          enterHold({ lo: target >= best.c ? Math.min(best.tput, tput) : Math.min(lower?.tput ?? best.tput, best.tput) });
          return move(target, `throughput fell ${change} going from ${last.c} to ${c} active: peak estimated at ${target}`);
        }
        if (r < 1 + tol) {
          // A step that did not pay: the peak is a plateau around both; settle between them.
          const i = probePoints.findIndex((p) => p.c === best!.c);
          const lower = i > 0 && best.c === last.c ? probePoints[i - 1] : null;
          const target = clamp(lower ? peakBetween(lower, best, { c, tput }) : Math.sqrt(last.c * c));
          worseAbove = { c, at: decisions };
          enterHold({ lo: target >= last.c ? Math.min(last.tput, tput) : Math.min(lower?.tput ?? last.tput, last.tput) });
          return move(target, `throughput flat ${change} from ${last.c} to ${c} active: settling at ${target}`);
        }
        const factor = Math.min(probeCap, e >= 0.75 ? opts.maxProbeFactor : e >= 0.4 ? 2 : 1.4);
        const target = up(c * factor);
        if (target <= current) {
          enterHold();
          return { limit: current, reason: `throughput rose ${change} at ${c} active; cannot go higher (max ${max}, queue ${demand}${ceilingNote(ceilingCap, max)}): holding` };
        }
        return move(target, `throughput rose ${change} from ${last.c} to ${c} active: probing up to ${target}`);
      }

      if (phase === 'reprobe' && from) {
        const gain = tput / from.tput;
        const start = from;
        if (c > start.c && gain > 1 + tol) {
          phase = 'probe';
          best = { c, tput };
          probePoints = [start, { c, tput }];
          reprobeInterval = opts.reprobeAfter;
          probeCap = 1.5;
          const target = up(c * opts.reprobeFactor);
          if (target > current) {
            return move(target, `re-probe paid: ${signedPct(gain - 1)} at ${c} active (was ${start.c}): probing up to ${target}`);
          }
          enterHold();
          return { limit: current, reason: `re-probe paid: ${signedPct(gain - 1)} at ${c} active: holding (cannot go higher)` };
        }
        reprobeInterval = Math.min(reprobeInterval * 2, opts.reprobeAfter * 8);
        worseAbove = { c, at: decisions };
        const target = clamp(start.c);
        enterHold({ lo: start.tput });
        return move(target, `re-probe to ${c} active gained ${signedPct(gain - 1)}, within noise: back to ${target}`);
      }

      if (phase === 'descend' && from) {
        const gain = tput / from.tput;
        const start = from;
        if (gain > 1 + tol && c < start.c) {
          // Fewer transfers moved more bytes: still beyond the new peak, keep stepping down.
          flatDescent = null;
          const target = clamp(c * 0.75);
          if (target < current) {
            from = { c, tput };
            return move(target, `fewer transfers moved more (${signedPct(gain - 1)} at ${c} vs ${start.c} active): stepping down to ${target}`);
          }
          enterHold();
          return { limit: current, reason: `throughput recovered ${signedPct(gain - 1)} at ${c} active: holding` };
        }
        if (gain >= 1 - tol && flatDescent !== null && c < start.c) {
          // Half the transfers moved as much: the link is bound by a capacity they share, and the
          // transfers above it only add load. Keep halving (against the same reference) until a
          // step costs throughput.
          flatAbove = flatDescent;
          flatDescent = c;
          const target = clamp(c * 0.5);
          if (target < current) {
            return move(target, `throughput unchanged (${signedPct(gain - 1)}) with ${c} instead of ${start.c} active: capacity-bound, halving to ${target}`);
          }
          enterHold();
          return { limit: current, reason: `throughput unchanged (${signedPct(gain - 1)}) with ${c} active, already at min: holding` };
        }
        if (gain < 1 - tol && flatDescent !== null && flatDescent < start.c && c < flatDescent) {
          // The last halving went below the capacity's knee. The step before it looked flat, but
          // within the noise band it may already have cost a little: settle between it and the
          // one above it.
          const knee = flatDescent;
          const target = clamp(Math.sqrt(knee * (flatAbove ?? knee)));
          flatDescent = null;
          enterHold({ lo: start.tput * (1 - tol) });
          return move(target, `halving to ${c} active cost ${signedPct(gain - 1)}: the knee is near ${knee}, settling at ${target}`);
        }
        if (gain >= 1 - tol) {
          // A plateau between the two: settle in its middle rather than on its lower edge.
          const target = clamp(Math.sqrt(c * start.c));
          enterHold({ lo: Math.min(tput, start.tput) });
          return move(target, `throughput unchanged (${signedPct(gain - 1)}) with ${c} instead of ${start.c} active: settling at ${target}`);
        }
        const target = clamp(start.c);
        // The first step after a level shift is compared with the window that showed the shift,
        // which may still hold some of the old level: look down again from a clean window.
        const firstStep = flatDescent === start.c;
        enterHold({ lo: start.tput });
        if (firstStep) lookDownAgain = true;
        return move(target, `stepping down to ${c} active cost ${signedPct(gain - 1)}: back to ${target}${firstStep ? ', to look again from a clean window' : ''}`);
      }

      // Hold.
      /** Halve the limit and descend from this window (the reference); null when already at min. */
      const halve = (why: (target: number) => string): LinkDecision | null => {
        const target = clamp(c * 0.5);
        if (target >= current) return null;
        phase = 'descend';
        from = { c, tput };
        flatDescent = c;
        flatAbove = null;
        baseline = null;
        expected = null;
        return move(target, why(target));
      };
      const degraded = (old: number, rel: number, what: string) =>
        halve((target) => `throughput fell ${signedPct(rel - 1)} (${rate(old)} -> ${rate(tput)}) ${what}: link degraded, halving to ${target}`);
      if (wasTransition || baseline === null || !near(c, last.c)) {
        if (!wasTransition && expected) {
          // The first clean window at a settled limit: does it give what the points around it
          // promised? If not, the link changed while the limit was moving.
          const e = expected;
          expected = null;
          // Only a fall can be told: throughput is concave in concurrency, so a limit between two
          // points gives at least the lower of them, but may give much more than either.
          const decision = tput < e.lo * (1 - shift) ? degraded(e.lo, tput / e.lo, `at ${c} active, below what ${current} was settled for`) : null;
          if (decision) return decision;
        }
        if (!wasTransition && lookDownAgain) {
          // The clean window at the limit the descent came back to is the reference now.
          lookDownAgain = false;
          const decision = halve((target) => `${rate(tput)} at ${c} active since the link degraded: halving to ${target} to see whether fewer transfers move as much`);
          if (decision) return decision;
        }
        baseline = wasTransition ? null : tput;
        holdCount = 0;
        return { limit: current, reason: `${rate(tput)} at ${c} active: holding ${current}` };
      }
      const rel = tput / baseline;
      if (rel < 1 - shift) {
        const decision = degraded(baseline, rel, `at unchanged ${c} active`);
        if (decision) return decision;
        baseline = tput;
        return { limit: current, reason: `throughput fell ${signedPct(rel - 1)} at ${c} active, already at min: holding` };
      }
      if (rel > 1 + shift) {
        const old = baseline;
        const target = up(c * 2);
        if (target > current) {
          phase = 'probe';
          best = { c, tput };
          probePoints = [{ c, tput }];
          reprobeInterval = opts.reprobeAfter;
          probeCap = 2;
          return move(target, `throughput rose ${signedPct(rel - 1)} (${rate(old)} -> ${rate(tput)}) at unchanged ${c} active: link improved, probing up to ${target}`);
        }
        baseline = tput;
        return { limit: current, reason: `throughput rose ${signedPct(rel - 1)} at ${c} active; cannot go higher: holding` };
      }
      noiseVar = noiseVar === 0 ? (rel - 1) ** 2 : 0.8 * noiseVar + 0.2 * (rel - 1) ** 2;
      baseline = 0.7 * baseline + 0.3 * tput;
      holdCount++;
      if (holdCount >= reprobeInterval) {
        const slopeAbove = worseAbove !== null && decisions - worseAbove.at <= opts.failureMemory;
        const target = slopeAbove ? current : up(c * opts.reprobeFactor);
        holdCount = 0;
        if (target > current) {
          phase = 'reprobe';
          from = { c, tput: baseline };
          return move(target, `steady at ${rate(baseline)} with ${c} active for ${reprobeInterval} windows: re-probing ${target}`);
        }
      }
      return { limit: current, reason: `steady: ${rate(tput)} at ${c} active (${signedPct(rel - 1)} vs average): holding ${current}` };
    },
  };
}

/**
 * Vertex of the parabola through three points in (log concurrency, throughput), with b the
 * highest; kept inside (a, c) and falls back to b when the points are not concave.
 */
export function peakBetween(a: Point, b: Point, c: Point): number {
  const [x0, x1, x2] = [Math.log(a.c), Math.log(b.c), Math.log(c.c)];
  const num = (x1 - x0) ** 2 * (b.tput - c.tput) - (x1 - x2) ** 2 * (b.tput - a.tput);
  const den = (x1 - x0) * (b.tput - c.tput) - (x1 - x2) * (b.tput - a.tput);
  if (!(den > 0) || !Number.isFinite(num / den)) return b.c;
  const x = x1 - (0.5 * num) / den;
  // Stay well inside the bracket: the ends are known to be worse than the middle.
  const lo = x0 + 0.25 * (x1 - x0);
  const hi = x2 - 0.25 * (x2 - x1);
  return Math.exp(Math.min(hi, Math.max(lo, x)));
}

/** Two concurrencies measured on a real link (a window's average) that are the same setting. */
function near(a: number, b: number): boolean {
  return Math.abs(a - b) <= Math.max(1, 0.1 * Math.max(a, b));
}

function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x >= 0.995 || x <= 0.005 ? 0 : 1)}%`;
}

function signedPct(x: number): string {
  return `${x >= 0 ? '+' : '-'}${Math.abs(x * 100).toFixed(0)}%`;
}

function rate(bytesPerSecond: number): string {
  const mb = bytesPerSecond / 1e6;
  return `${mb >= 100 ? mb.toFixed(0) : mb >= 10 ? mb.toFixed(1) : mb.toFixed(2)} MB/s`;
}

function ceilingNote(cap: number, max: number): string {
  return cap < max ? `, failures above ${cap}` : '';
}
