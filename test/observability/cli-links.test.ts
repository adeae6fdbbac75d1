import { describe, expect, it } from 'vitest';
import { humanBytes, progressBar } from '../../bin/cli.ts';
import { formatRate, linkRows } from '../../bin/commands/links.ts';

describe('sluice links', () => {
  it('shows one row per link with throughput, slots, queue and success', () => {
    const rows = linkRows([
      { id: 3, source: 'CERN', destination: 'IN2P3', limit: 20, min: 1, max: 100, pinned: true, active: 12, queued: 340, bytes_per_second: 3 * 1024 * 1024, success_rate: 0.987, vos: [{ vo: 'atlas', active: 12, queued: 340 }] },
      { id: 4, source: 'A', destination: 'B', limit: 10, min: 1, max: 100, pinned: false, active: 0, queued: 0, bytes_per_second: 0, success_rate: null, vos: [] },
    ]);
    expect(rows[0]).toEqual({ id: 3, link: 'CERN -> IN2P3', throughput: '3.0 MiB/s', 'active/limit': '12/20 (pinned)', queued: 340, success: '98.7%', vos: 'atlas:12/340' });
    expect(rows[1]).toMatchObject({ throughput: '0 B/s', success: '-', vos: '' });
    expect(formatRate(1536)).toBe('1.5 KiB/s');
    expect(humanBytes(5 * 1024 ** 4)).toBe('5.0 TiB');
  });

  it('progress bars stay silent when stderr is not a terminal (CI logs, pipes)', () => {
    const writes: unknown[] = [];
    const orig = process.stderr.write;
    process.stderr.write = ((chunk: unknown) => (writes.push(chunk), true)) as typeof process.stderr.write;
    try {
      const p = progressBar(100, { unit: 'bytes', label: 'upload' });
      p.update(50);
      p.increment(10);
      p.stop();
    } finally {
      process.stderr.write = orig;
    }
    expect(process.stderr.isTTY ? 'tty' : writes).toEqual(process.stderr.isTTY ? 'tty' : []);
  });
});
