import { describe, it, expect } from 'vitest';
import { createLinkOptimizer, peakBetween } from '../../core/optimizer.ts';
import type { LinkObservation } from '../../core/optimizer.ts';

const GB = 1e9;

function obs(partial: Partial<LinkObservation>): LinkObservation {
  return {
    nowMs: 60_000,
    limit: 10,
    min: 1,
    max: 100,
    active: 10,
    queued: 1000,
    bytesPerSecond: 0.5 * GB,
    successRate: 1,
    meanFileBytes: 1e9,
    ...partial,
  };
}

/** Drive an optimizer with a throughput function of the concurrency; returns the limits chosen. */
function drive(
  tput: (c: number) => number,
  windows: number,
  start: Partial<LinkObservation> = {},
  success: (c: number) => number = () => 1,
) {
  const o = createLinkOptimizer();
  let limit = start.limit ?? start.min ?? 1;
  const limits: number[] = [];
  const reasons: string[] = [];
  for (let w = 0; w < windows; w++) {
    const d = o.decide(obs({ ...start, nowMs: (w + 1) * 60_000, limit, active: limit, bytesPerSecond: tput(limit), successRate: success(limit) }));
    limits.push(d.limit);
    reasons.push(d.reason);
    limit = d.limit;
  }
  return { limits, reasons };
}

describe('createLinkOptimizer', () => {
  it('probes multiplicatively from min while throughput grows in proportion', () => {
    const { limits } = drive((c) => Math.min(c, 1000) * 1e7, 4, { min: 1, max: 1000 });
    expect(limits).toEqual([4, 16, 64, 256]);
  });

  it('goes back towards the peak when throughput falls and then holds', () => {
    // Peak at 50 concurrent transfers, falling beyond.
    const f = (c: number) => (c <= 50 ? c * 2e7 : Math.max(0.1, 1 - (c - 50) / 100) * GB);
    const { limits, reasons } = drive(f, 12, { min: 1, max: 400 });
    const final = limits[limits.length - 1];
    expect(final).toBeGreaterThanOrEqual(35);
    expect(final).toBeLessThanOrEqual(70);
    expect(new Set(limits.slice(-6)).size).toBe(1);
    expect(reasons.some((r) => /fell/.test(r))).toBe(true);
  });

  it('never leaves [min, max] whatever the inputs', () => {
    const o = createLinkOptimizer();
    let limit = 5;
    const weird = [NaN, -1, 0, Infinity, 1e12, 3e8, 1];
    for (let i = 0; i < 60; i++) {
      const d = o.decide(
        obs({ nowMs: (i + 1) * 60_000, min: 5, max: 20, limit, active: limit, bytesPerSecond: weird[i % weird.length] * (i + 1), successRate: i % 5 === 0 ? 0 : 1 }),
      );
      expect(d.limit).toBeGreaterThanOrEqual(5);
      expect(d.limit).toBeLessThanOrEqual(20);
      expect(Number.isInteger(d.limit)).toBe(true);
      expect(d.reason.length).toBeGreaterThan(0);
      limit = d.limit;
    }
  });

  it('clamps a limit given outside [min, max]', () => {
    const o = createLinkOptimizer();
    const d = o.decide(obs({ limit: 500, active: 0, queued: 0, min: 2, max: 50 }));
    expect(d.limit).toBeLessThanOrEqual(50);
  });

  it('returns min when min equals max', () => {
    const o = createLinkOptimizer();
    const d = o.decide(obs({ min: 7, max: 7, limit: 3 }));
    expect(d).toEqual({ limit: 7, reason: expect.stringContaining('min equals max') });
  });

  it('holds on NaN or zero throughput instead of moving', () => {
    const o = createLinkOptimizer();
    expect(o.decide(obs({ bytesPerSecond: NaN })).limit).toBe(10);
    expect(o.decide(obs({ nowMs: 120_000, bytesPerSecond: 0 })).limit).toBe(10);
    expect(o.decide(obs({ nowMs: 180_000, bytesPerSecond: 0 })).reason).toMatch(/no bytes/);
  });

  it('backs off hard when every transfer fails', () => {
    const o = createLinkOptimizer();
    const d = o.decide(obs({ limit: 40, active: 40, successRate: 0, bytesPerSecond: 0 }));
    expect(d.limit).toBeLessThanOrEqual(10);
    expect(d.reason).toMatch(/success 0%.*backing off/);
  });

  it('cuts to about success x active when the excess transfers fail', () => {
    const o = createLinkOptimizer();
    // 60 active, half fail, ~200 transfers ended in the window: strong evidence.
    const d = o.decide(obs({ limit: 60, max: 100, active: 60, successRate: 0.5, bytesPerSecond: 3 * GB, meanFileBytes: 0.5e9 }));
    expect(d.limit).toBeGreaterThanOrEqual(28);
    expect(d.limit).toBeLessThanOrEqual(34);
  });

  it('does not cut on two failures out of twenty transfers', () => {
    const o = createLinkOptimizer();
    o.decide(obs({ limit: 20, active: 20 }));
    // 0.33 GB/s x 60 s / 1 GB = 20 transfers, 2 failed: 90%.
    const d = o.decide(obs({ nowMs: 120_000, limit: 20, active: 20, successRate: 0.9, bytesPerSecond: 0.33 * GB }));
    expect(d.limit).toBeGreaterThanOrEqual(20);
    expect(d.reason).not.toMatch(/backing off/);
  });

  it('holds when demand-limited and says so', () => {
    const o = createLinkOptimizer();
    const d = o.decide(obs({ limit: 50, active: 12, queued: 3 }));
    expect(d).toEqual({ limit: 50, reason: expect.stringMatching(/demand-limited/) });
    // Even while throughput keeps rising, a queue shorter than the limit does not inflate it.
    for (let i = 2; i < 10; i++) {
      const e = o.decide(obs({ nowMs: i * 60_000, limit: 50, active: 12, queued: 3, bytesPerSecond: i * 1e8 }));
      expect(e.limit).toBe(50);
    }
  });

  it('does not probe beyond the queue', () => {
    const o = createLinkOptimizer();
    const d = o.decide(obs({ limit: 4, min: 1, max: 100, active: 4, queued: 3 }));
    expect(d.limit).toBeLessThanOrEqual(7);
  });

  it('keeps the limit steady under noise', () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const f = (c: number) => (c <= 30 ? (1 - (1 - c / 30) ** 2) : 1 - 0.3 * (c / 30 - 1)) * GB * (1 + (rand() - 0.5) * 0.16);
    const { limits } = drive(f, 80, { min: 1, max: 200 });
    const tail = limits.slice(30);
    expect(Math.max(...tail) - Math.min(...tail)).toBeLessThanOrEqual(0.3 * 30);
  });

  it('forgets its history after a long gap', () => {
    const o = createLinkOptimizer();
    o.decide(obs({ nowMs: 60_000, limit: 10, active: 10 }));
    const d = o.decide(obs({ nowMs: 60_000 + 3_600_000, limit: 10, active: 10, bytesPerSecond: 0.1 * GB }));
    // A 80% lower throughput an hour later is not read as a drop caused by the last decision.
    expect(d.limit).toBeGreaterThanOrEqual(10);
  });

  it('keeps state per instance', () => {
    const a = createLinkOptimizer();
    const b = createLinkOptimizer();
    a.decide(obs({ limit: 1, active: 1, bytesPerSecond: 1e7 }));
    const da = a.decide(obs({ nowMs: 120_000, limit: 4, active: 4, bytesPerSecond: 4e7 }));
    const db = b.decide(obs({ nowMs: 120_000, limit: 4, active: 4, bytesPerSecond: 4e7 }));
    expect(da.reason).toMatch(/rose/);
    expect(db.reason).not.toMatch(/rose/);
  });
});

describe('peakBetween', () => {
  it('finds the vertex of a concave triple inside the bracket', () => {
    const p = peakBetween({ c: 16, tput: 0.3 }, { c: 64, tput: 0.9 }, { c: 256, tput: 0.55 });
    expect(p).toBeGreaterThan(64);
    expect(p).toBeLessThan(128);
  });

  it('falls back to the middle point when the triple is not concave', () => {
    expect(peakBetween({ c: 10, tput: 1 }, { c: 20, tput: 1 }, { c: 40, tput: 1 })).toBe(20);
  });
});
