import { describe, it, expect } from 'vitest';
import { allocateSlots } from '../../core/fairshare.ts';
import type { QueueState } from '../../core/fairshare.ts';

const q = (vo: string, queued: number, active = 0, activity = 'default', priority = 3): QueueState => ({ vo, activity, priority, queued, active });
const byVo = (r: ReturnType<typeof allocateSlots>) => {
  const m: Record<string, number> = {};
  for (const a of r) m[a.vo] = (m[a.vo] ?? 0) + a.count;
  return m;
};

describe('allocateSlots', () => {
  it('returns [] for no free slots', () => {
    expect(allocateSlots(0, [q('a', 10)], { vo: {} })).toEqual([]);
    expect(allocateSlots(-3, [q('a', 10)], { vo: {} })).toEqual([]);
    expect(allocateSlots(NaN, [q('a', 10)], { vo: {} })).toEqual([]);
  });

  it('splits by weight from an empty link', () => {
    const r = allocateSlots(100, [q('atlas', 1e6), q('cms', 1e6), q('lhcb', 1e6)], { vo: { atlas: 5, cms: 3, lhcb: 2 } });
    expect(byVo(r)).toEqual({ atlas: 50, cms: 30, lhcb: 20 });
  });

  it('fills the VOs furthest below their share, counting running transfers', () => {
    // 90 running; of 100, targets are 50/30/20: atlas 45 (90% of target), cms 40 (over), lhcb 5 (25%).
    const shares = { vo: { atlas: 5, cms: 3, lhcb: 2 } };
    expect(byVo(allocateSlots(10, [q('atlas', 1e6, 45), q('cms', 1e6, 40), q('lhcb', 1e6, 5)], shares))).toEqual({ lhcb: 10 });
    // With 20 free, lhcb reaches atlas's relative level (active/weight) and both rise together.
    expect(byVo(allocateSlots(20, [q('atlas', 1e6, 45), q('cms', 1e6, 40), q('lhcb', 1e6, 5)], shares))).toEqual({ atlas: 5, lhcb: 15 });
  });

  it('is work-conserving: idle shares go to VOs with work', () => {
    const r = allocateSlots(100, [q('atlas', 0, 0), q('cms', 1e6), q('lhcb', 7)], { vo: { atlas: 5, cms: 3, lhcb: 2 } });
    expect(byVo(r)).toEqual({ cms: 93, lhcb: 7 });
  });

  it('never gives more than queued and returns only positive counts', () => {
    const r = allocateSlots(1000, [q('a', 3), q('b', 0), q('c', 2)], { vo: {} });
    expect(byVo(r)).toEqual({ a: 3, c: 2 });
    expect(r.every((x) => x.count > 0)).toBe(true);
  });

  it('gives unknown VOs the default weight', () => {
    expect(byVo(allocateSlots(30, [q('known', 1e6), q('unknown', 1e6)], { vo: { known: 2 } }))).toEqual({ known: 20, unknown: 10 });
    expect(byVo(allocateSlots(30, [q('known', 1e6), q('unknown', 1e6)], { vo: { known: 2 } }, { defaultVoWeight: 4 }))).toEqual({ known: 10, unknown: 20 });
  });

  it('gives zero-weight VOs only what nobody else can use', () => {
    expect(byVo(allocateSlots(10, [q('a', 1e6), q('z', 1e6)], { vo: { a: 1, z: 0 } }))).toEqual({ a: 10 });
    expect(byVo(allocateSlots(10, [q('a', 4), q('z', 1e6)], { vo: { a: 1, z: 0 } }))).toEqual({ a: 4, z: 6 });
  });

  it('serves a VO with one request next to one with a million in the first free slot', () => {
    const r = allocateSlots(1, [q('big', 1_000_000, 99), q('small', 1, 0)], { vo: { big: 100, small: 1 } });
    expect(r).toEqual([{ vo: 'small', activity: 'default', priority: 3, count: 1 }]);
  });

  it('splits a VO between activities by activity share, unknown activities by default weight', () => {
    const r = allocateSlots(
      40,
      [q('atlas', 1e6, 0, 'production'), q('atlas', 1e6, 0, 'analysis'), q('atlas', 1e6, 0, 'other')],
      { vo: { atlas: 1 }, activity: { atlas: { production: 6, analysis: 2 } } },
    );
    const by: Record<string, number> = {};
    for (const a of r) by[a.activity] = a.count;
    expect(by).toEqual({ production: 27, analysis: 9, other: 4 });
  });

  it('serves higher priority first within an activity', () => {
    const r = allocateSlots(10, [q('a', 4, 0, 'x', 1), q('a', 8, 0, 'x', 5), q('a', 5, 0, 'x', 3)], { vo: {} });
    expect(r).toEqual([
      { vo: 'a', activity: 'x', priority: 5, count: 8 },
      { vo: 'a', activity: 'x', priority: 3, count: 2 },
    ]);
  });

  it('merges duplicate queue rows and is deterministic regardless of input order', () => {
    const queues = [q('b', 5, 1), q('a', 5, 2), q('b', 5, 0), q('c', 100, 0)];
    const r1 = allocateSlots(12, queues, { vo: { a: 1, b: 2, c: 1 } });
    const r2 = allocateSlots(12, [...queues].reverse(), { vo: { a: 1, b: 2, c: 1 } });
    expect(r1).toEqual(r2);
    expect(r1.reduce((s, x) => s + x.count, 0)).toBe(12);
  });

  it('handles hundreds of queues and thousands of slots without looping per slot', () => {
    const queues: QueueState[] = [];
    for (let v = 0; v < 50; v++) for (let a = 0; a < 4; a++) for (const p of [1, 3, 5]) queues.push(q(`vo${v}`, 1000, v % 7, `act${a}`, p));
    const weights: Record<string, number> = {};
    for (let v = 0; v < 50; v++) weights[`vo${v}`] = 1 + (v % 5);
    const t0 = performance.now();
    const r = allocateSlots(5000, queues, { vo: weights });
    const ms = performance.now() - t0;
    expect(r.reduce((s, x) => s + x.count, 0)).toBe(5000);
    expect(ms).toBeLessThan(200);
    // Running + new transfers follow weights: vo4 (weight 5, 48 running) about 5x vo0 (weight 1, none).
    const m = byVo(r);
    const vo4 = m.vo4 + 48;
    expect(vo4 / m.vo0).toBeGreaterThan(4.5);
    expect(vo4 / m.vo0).toBeLessThan(5.5);
  });
});
