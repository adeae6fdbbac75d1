import { expect, it } from 'vitest';
import { printChaosReport, runChaos } from '../../bench/chaos.ts';

/**
 * The bounded CI run of `npm run chaos` (bench/chaos.ts): daemon processes (2 conveyors, the
 * judges, the reaper) SIGKILLed and restarted, storage faults (503, resets, stalls, corrupted
 * bytes) injected, while three rules replicate 150 files to two RSEs. Everything must settle into
 * OK or STUCK-with-a-reason, the catalogue must equal storage byte for byte, and no request may
 * succeed twice.
 *
 * The database is SIGKILLed too (once or more per run, seeded): daemons ride out the outage
 * (the postgres.js write-after-close crash is patched in patches/, and processes wait for the
 * database at start instead of exiting).
 */
it('daemon and database kills and storage faults during replication: rules settle, catalogue == storage, nothing executed twice', { timeout: 150_000 }, async () => {
  const r = await runChaos({ seconds: 40, files: 150, seed: 20261122, dbKills: true, settleSeconds: 60 });
  printChaosReport(r);
  expect(r.kills.daemon).toBeGreaterThanOrEqual(1);
  expect(r.kills.database).toBeGreaterThanOrEqual(1);
  expect(r.faults).toBeGreaterThanOrEqual(1);
  // The chaos happened while transfers were pending, not after the rules were done.
  expect(r.actionsWhilePending).toBeGreaterThanOrEqual(2);
  expect(r.files).toBe(150);
  expect(r.rules.total).toBe(3);
  expect(r.rules.unsettled).toBe(0);
  expect(r.rules.stuckWithoutReason).toBe(0);
  // Every file has its two copies plus the source: 450 AVAILABLE replicas checked on disk.
  expect(r.replicasChecked).toBeGreaterThanOrEqual(150);
  expect(r.mismatches).toEqual([]);
  expect(r.duplicateExecutions).toBe(0);
  expect(r.daemonDeaths.map((d) => `${d.name}: ${d.output.slice(-500)}`)).toEqual([]);
  expect(r.pass).toBe(true);
});
