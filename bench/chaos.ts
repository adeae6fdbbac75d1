/**
 * Chaos: daemons and the database are SIGKILLed and restarted, storage misbehaves (5xx, resets,
 * stalls, corrupted bytes) while rules replicate datasets. At the end the system must have
 * settled into a state a user can trust:
 *   - every rule OK, or STUCK with a reason (rule error or a lock error);
 *   - catalogue == storage: every AVAILABLE replica is on disk with the catalogue's size and adler32;
 *   - no request executed twice to a final state (at most one successful attempt per request).
 *
 *   npx tsx bench/chaos.ts [--seconds 120] [--files 500] [--seed 7] [--no-db-kills]
 *
 * The database kill is a real crash: the postmaster gets SIGKILL, its backends die with it, and it
 * is restarted on the same home and port (crash recovery runs), so DATABASE_URL stays valid. A
 * daemon that exits because of the outage (instead of retrying) is restarted and reported.
 */
import { seededRandom } from '../core/random.ts';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createAdler32 } from '../core/checksum.ts';
import { connect, type Sql } from '../core/db.ts';
import { embeddedAddress, startEmbedded, type EmbeddedDatabase } from '../core/embedded.ts';
import { migrate } from '../core/migrate.ts';
import type { FaultRule } from '../fixtures/storage-server.ts';
import { spawnDaemon, type DaemonProcess } from '../test/e2e/processes.ts';
import { createWorld, type World } from '../test/e2e/world.ts';
import { isMain } from './lib.ts';

export interface ChaosOptions {
  /** Length of the chaos phase. */
  seconds: number;
  /** Files in all (split over the datasets). */
  files: number;
  seed: number;
  /** Kill the postmaster too (default true). */
  dbKills?: boolean;
  datasets?: number;
  fileSize?: number;
  /** Bound on the wait for every rule to be OK or STUCK once the chaos stops. */
  settleSeconds?: number;
  /** Mean pause between chaos actions. */
  actionEveryMs?: number;
  log?: (line: string) => void;
}

export interface ChaosReport {
  seconds: number;
  seed: number;
  kills: { daemon: number; database: number };
  faults: number;
  faultKinds: Record<string, number>;
  files: number;
  rules: { total: number; ok: number; stuck: number; stuckWithoutReason: number; unsettled: number };
  replicasChecked: number;
  mismatches: string[];
  duplicateExecutions: number;
  /** Daemons that exited on their own (not killed by chaos), e.g. because the database was down. */
  daemonDeaths: Array<{ name: string; code: number | null; signal: string | null; output: string }>;
  /** Files on destination storage that the catalogue does not know (leftovers; informational). */
  orphanFiles: number;
  lostAttempts: number;
  failedAttempts: number;
  failuresByCode: Record<string, number>;
  /** Transfers still queued or running when the chaos stopped (0: replication finished early). */
  pendingAtChaosEnd: number;
  /** Kills and faults that struck while transfers were queued or running (the point of chaos). */
  actionsWhilePending: number;
  settleMs: number;
  pass: boolean;
  failures: string[];
}

/** The sequence of chaos actions depends on the seed only. */
const prng = seededRandom;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function adler32OfFile(path: string): Promise<string> {
  const h = createAdler32();
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.hex();
}

async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  const go = async (dir: string) => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) await go(join(dir, e.name));
      else out.push(relative(root, join(dir, e.name)));
    }
  };
  await go(root);
  return out;
}

const DAEMON_SETS: Array<{ name: string; args: string[] }> = [
  { name: 'conveyor-1', args: ['conveyor'] },
  { name: 'conveyor-2', args: ['conveyor'] },
  { name: 'judge', args: ['judge-evaluator', 'judge-repairer', 'judge-cleaner'] },
  { name: 'reaper', args: ['reaper'] },
];

const DAEMON_ENV = {
  SLUICE_CONVEYOR_LEASE_SECONDS: '3',
  SLUICE_CONVEYOR_INTERVAL_MS: '100',
  SLUICE_CONVEYOR_MAX_ATTEMPTS: '30',
  SLUICE_CONVEYOR_BACKOFF_BASE_MS: '100',
  SLUICE_CONVEYOR_BACKOFF_MAX_MS: '1000',
  SLUICE_CONVEYOR_STALL_TIMEOUT_MS: '3000',
};

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const rand = prng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const dbKillsEnabled = opts.dbKills ?? true;
  const nDatasets = opts.datasets ?? 3;
  const settleMs = (opts.settleSeconds ?? 180) * 1000;
  const everyMs = opts.actionEveryMs ?? 2500;

  const home = await mkdtemp(join(tmpdir(), 'sluice-chaos-'));
  const pgHome = join(home, 'pg');
  // Production durability: the database is SIGKILLed here, and with synchronous_commit off it
  // would forget commits it had already acknowledged, which no system on top can survive.
  let db: EmbeddedDatabase = await startEmbedded({ home: pgHome });
  const { port } = await embeddedAddress(pgHome);
  const url = db.url;
  const sql: Sql = connect({ url, max: 4, applicationName: 'sluice-chaos' });
  await migrate(sql);

  // Reads from the source are throttled so transfers are in flight when something is killed.
  const throttle: FaultRule = { method: 'GET', bytesPerSecond: 256 * 1024 };
  const baseFaults: Record<string, FaultRule[]> = { a: [throttle], b: [], c: [] };
  const world: World = await createWorld(sql, {
    endpoints: { a: { faults: baseFaults.a }, b: {}, c: {} },
    rses: { SRC: 'a', DST_B: 'b', DST_C: 'c' },
  });

  const procs: Array<{ name: string; p: DaemonProcess; killedByUs: boolean }> = [];
  const live = new Map<string, { p: DaemonProcess; killedByUs: boolean }>();
  const startDaemon = (name: string) => {
    const set = DAEMON_SETS.find((d) => d.name === name)!;
    const entry = { name, p: spawnDaemon(url, set.args, DAEMON_ENV), killedByUs: false };
    procs.push(entry);
    live.set(name, entry);
  };

  const report: ChaosReport = {
    seconds: opts.seconds,
    seed: opts.seed,
    kills: { daemon: 0, database: 0 },
    faults: 0,
    faultKinds: {},
    files: 0,
    rules: { total: 0, ok: 0, stuck: 0, stuckWithoutReason: 0, unsettled: 0 },
    replicasChecked: 0,
    mismatches: [],
    duplicateExecutions: 0,
    daemonDeaths: [],
    orphanFiles: 0,
    lostAttempts: 0,
    failedAttempts: 0,
    failuresByCode: {},
    pendingAtChaosEnd: 0,
    actionsWhilePending: 0,
    settleMs: 0,
    pass: false,
    failures: [],
  };

  /** Restarts daemons that exited without being killed by us, and records each as a finding. */
  const reviveDead = () => {
    for (const [name, e] of live) {
      const { exitCode, signalCode } = e.p.child;
      if ((exitCode !== null || signalCode !== null) && !e.killedByUs) {
        report.daemonDeaths.push({ name, code: exitCode, signal: signalCode, output: e.p.output().slice(-3000) });
        log(`FINDING: daemon ${name} exited by itself (code ${exitCode}, signal ${signalCode}); restarting`);
        startDaemon(name);
      }
    }
  };

  try {
    const per = Math.ceil(opts.files / nDatasets);
    const size = opts.fileSize ?? 32 * 1024;
    const ruleIds: string[] = [];
    for (let d = 0; d < nDatasets; d++) {
      const n = Math.min(per, opts.files - d * per);
      if (n <= 0) break;
      await world.dataset(`chaos${d}`, n, { on: ['SRC'], size });
      report.files += n;
    }
    // The source's shared capacity is sized so that replication lasts about 70% of the chaos
    // phase: kills and faults land on transfers in flight, and there is time left to recover.
    world.storages.a.setCapacity(Math.max(64 * 1024, Math.round((report.files * 2 * size) / (0.7 * opts.seconds))));
    for (const name of DAEMON_SETS.map((d) => d.name)) startDaemon(name);
    for (let d = 0; d < nDatasets; d++) ruleIds.push(await world.rule({ scope: 'data', name: `chaos${d}` }, 'DST_B|DST_C', 2));
    await sql`update links set limit_active = 20`;
    log(`chaos: ${report.files} files in ${ruleIds.length} datasets, ${ruleIds.length} rules (2 copies on DST_B|DST_C), seed ${opts.seed}`);

    // --- the chaos phase ---
    const endAt = Date.now() + opts.seconds * 1000;
    const activeFaults = new Map<string, number>(); // endpoint -> clear at
    while (Date.now() < endAt) {
      await sleep(everyMs * (0.5 + rand()));
      reviveDead();
      for (const [ep, until] of activeFaults) {
        if (Date.now() >= until) {
          world.storages[ep].setFaults(baseFaults[ep]);
          activeFaults.delete(ep);
        }
      }
      // A database that is down right now counts as busy: the action still hits work in flight.
      const [busy] = await sql<{ n: number }[]>`select count(*)::int as n from requests where state in ('QUEUED', 'ACTIVE')`.catch(() => [{ n: 1 }]);
      if (busy.n > 0) report.actionsWhilePending++;
      const r = rand();
      if (r < 0.45) {
        const name = pick(DAEMON_SETS.map((d) => d.name));
        const e = live.get(name)!;
        e.killedByUs = true;
        e.p.child.kill('SIGKILL');
        await e.p.exited;
        report.kills.daemon++;
        log(`kill -9 ${name}`);
        await sleep(200 + rand() * 1500);
        startDaemon(name);
      } else if (r < 0.6 && dbKillsEnabled) {
        const down = 500 + rand() * 3000;
        log(`kill -9 postmaster ${db.pid} (down ${Math.round(down)} ms)`);
        process.kill(db.pid, 'SIGKILL');
        report.kills.database++;
        await sleep(down);
        db = await restartDatabase(pgHome, port, log);
        // Daemons must ride the outage out; give them a moment to show whether they did.
        await sleep(1500);
        reviveDead();
      } else {
        // Mostly on the source, whose GETs every transfer's bytes go through (corrupt there is
        // what the destination's checksum verification must catch); sometimes on a destination's COPY.
        const ep = rand() < 0.6 ? 'a' : pick(['b', 'c'] as const);
        const kind = pick(['503', 'reset', 'stall', 'corrupt'] as const);
        const rate = 0.2 + rand() * 0.4;
        const fault: FaultRule =
          kind === '503' ? { status: 503, rate } : kind === 'reset' ? { reset: true, rate } : kind === 'stall' ? { stallMs: 2000 + Math.round(rand() * 4000), rate } : { corrupt: true, rate };
        world.storages[ep].setFaults([fault, ...baseFaults[ep]]);
        activeFaults.set(ep, Date.now() + 2000 + rand() * 5000);
        report.faults++;
        report.faultKinds[kind] = (report.faultKinds[kind] ?? 0) + 1;
        log(`fault on ${ep}: ${kind} at ${rate.toFixed(2)}`);
      }
    }
    for (const ep of Object.keys(world.storages)) world.storages[ep].setFaults(baseFaults[ep]);
    world.storages.a.setCapacity(undefined);
    const [pending] = await sql<{ n: number }[]>`select count(*)::int as n from requests where state in ('QUEUED', 'ACTIVE')`.catch(() => [{ n: -1 }]);
    report.pendingAtChaosEnd = pending.n;

    // --- settle: bounded wait for every rule to be OK or STUCK ---
    const settleStart = Date.now();
    for (;;) {
      reviveDead();
      const rows = await sql<{ state: string }[]>`select state from rules where id = any(${ruleIds}::uuid[])`.catch(() => []);
      if (rows.length === ruleIds.length && rows.every((x) => x.state === 'OK' || x.state === 'STUCK')) break;
      if (Date.now() - settleStart > settleMs) break;
      await sleep(1000);
    }
    report.settleMs = Date.now() - settleStart;
    // Stop daemons cleanly before looking at storage, so nothing moves under the check.
    for (const e of live.values()) {
      e.killedByUs = true;
      e.p.child.kill('SIGTERM');
    }
    await Promise.all([...live.values()].map((e) => e.p.exited));

    // --- verify ---
    const rules = await sql<{ id: string; state: string; error: string | null; lock_errors: number }[]>`
      select r.id, r.state, r.error,
             (select count(*)::int from locks l where l.rule_id = r.id and l.error is not null and l.error <> '') as lock_errors
        from rules r where r.id = any(${ruleIds}::uuid[])`;
    report.rules.total = rules.length;
    for (const r of rules) {
      if (r.state === 'OK') report.rules.ok++;
      else if (r.state === 'STUCK') {
        report.rules.stuck++;
        if (!(r.error && r.error.trim()) && r.lock_errors === 0) report.rules.stuckWithoutReason++;
      } else report.rules.unsettled++;
    }

    const replicas = await sql<{ rse_id: number; path: string; bytes: number; adler32: string; scope: string; name: string }[]>`
      select r.rse_id, r.path, d.bytes, d.adler32, r.scope, r.name
        from replicas r join dids d on d.vo = r.vo and d.scope = r.scope and d.name = r.name
       where r.state = 'AVAILABLE'`;
    const rseById = new Map(Object.entries(world.rses).map(([name, r]) => [r.id, { name, ...r }]));
    const known = new Set<string>();
    for (const rep of replicas) {
      const rse = rseById.get(rep.rse_id);
      if (!rse) continue;
      const file = join(world.storages[rse.storage].root, rse.prefix, rep.path);
      known.add(file);
      report.replicasChecked++;
      const s = await stat(file).catch(() => undefined);
      if (!s) {
        report.mismatches.push(`${rse.name} ${rep.scope}:${rep.name}: AVAILABLE in the catalogue, missing on storage (${file})`);
        continue;
      }
      if (s.size !== rep.bytes) {
        report.mismatches.push(`${rse.name} ${rep.scope}:${rep.name}: size ${s.size} on storage, ${rep.bytes} in the catalogue`);
        continue;
      }
      const sum = await adler32OfFile(file);
      if (sum !== rep.adler32) report.mismatches.push(`${rse.name} ${rep.scope}:${rep.name}: adler32 ${sum} on storage, ${rep.adler32} in the catalogue`);
    }
    for (const rse of ['DST_B', 'DST_C']) {
      const root = join(world.storages[world.rses[rse].storage].root, world.rses[rse].prefix);
      for (const f of await walk(root)) if (!known.has(join(root, f))) report.orphanFiles++;
    }
    const twice = await sql`select request_id from transfer_attempts where error_code is null group by request_id having count(*) > 1`;
    if (twice.length && process.env.CHAOS_DEBUG) {
      const rows = await sql`select request_id, attempt, owner, error_code, started_at, finished_at from transfer_attempts where request_id = any(${twice.map((t) => t.request_id)}::bigint[]) order by request_id, id`;
      console.error(rows.map((r) => JSON.stringify(r)).join('\n'));
    }
    report.duplicateExecutions = twice.length;
    const [att] = await sql<{ lost: number; failed: number }[]>`
      select count(*) filter (where error_code = 'Lost')::int as lost, count(*) filter (where error_code is not null)::int as failed from transfer_attempts`;
    report.lostAttempts = att.lost;
    report.failedAttempts = att.failed;
    for (const row of await sql<{ code: string; n: number }[]>`select error_code as code, count(*)::int as n from transfer_attempts where error_code is not null group by 1 order by 2 desc`) report.failuresByCode[row.code] = row.n;

    const f = report.failures;
    if (report.rules.unsettled) f.push(`${report.rules.unsettled} rule(s) neither OK nor STUCK after ${Math.round(settleMs / 1000)} s of settling`);
    if (report.rules.stuckWithoutReason) f.push(`${report.rules.stuckWithoutReason} STUCK rule(s) without a reason`);
    if (report.mismatches.length) f.push(`${report.mismatches.length} catalogue/storage mismatch(es)`);
    if (report.duplicateExecutions) f.push(`${report.duplicateExecutions} request(s) executed twice`);
    if (report.daemonDeaths.length) f.push(`${report.daemonDeaths.length} daemon(s) exited by themselves`);
    if (report.replicasChecked === 0) f.push('no replica checked');
    report.pass = f.length === 0;
    return report;
  } finally {
    for (const e of procs) if (e.p.child.exitCode === null && e.p.child.signalCode === null) e.p.child.kill('SIGKILL');
    await Promise.all(procs.map((e) => e.p.exited));
    await world.close().catch(() => {});
    await sql.end({ timeout: 2 }).catch(() => {});
    await db.stop().catch(() => {});
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Starts the killed cluster again on its home and port. Backends of the killed postmaster may
 * linger a moment holding the shared memory ("pre-existing shared memory block is still in use"),
 * so the start is retried for a while.
 */
async function restartDatabase(home: string, port: number, log: (l: string) => void): Promise<EmbeddedDatabase> {
  const deadline = Date.now() + 30_000;
  for (let i = 1; ; i++) {
    try {
      const db = await startEmbedded({ home, port });
      log(`postmaster restarted (pid ${db.pid}${i > 1 ? `, after ${i} attempts` : ''})`);
      return db;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(500);
    }
  }
}

export function printChaosReport(r: ChaosReport): void {
  const rows: Array<[string, string | number, string]> = [
    ['kills: daemons', r.kills.daemon, ''],
    ['kills: database', r.kills.database, ''],
    ['faults injected', r.faults, Object.entries(r.faultKinds).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['files', r.files, ''],
    ['rules OK / STUCK / other', `${r.rules.ok} / ${r.rules.stuck} / ${r.rules.unsettled}`, r.rules.stuckWithoutReason ? `${r.rules.stuckWithoutReason} STUCK without reason` : ''],
    ['replicas checked', r.replicasChecked, 'size + adler32 on disk'],
    ['mismatches', r.mismatches.length, 'must be 0'],
    ['duplicate executions', r.duplicateExecutions, 'must be 0'],
    ['daemons that died by themselves', r.daemonDeaths.length, 'must be 0'],
    ['orphan files on destinations', r.orphanFiles, 'informational'],
    ['failed attempts', r.failedAttempts, Object.entries(r.failuresByCode).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['chaos actions while transfers pending', r.actionsWhilePending, '> 0: chaos overlapped replication'],
    ['transfers pending at chaos end', r.pendingAtChaosEnd, 'informational'],
    ['settle time', `${(r.settleMs / 1000).toFixed(1)} s`, ''],
  ];
  const w = Math.max(...rows.map((x) => x[0].length));
  const v = Math.max(...rows.map((x) => String(x[1]).length));
  console.log(`\nchaos: ${r.seconds} s, seed ${r.seed}`);
  for (const [k, val, note] of rows) console.log(`${k.padEnd(w)}  ${String(val).padStart(v)}  ${note}`);
  for (const m of r.mismatches.slice(0, 20)) console.log(`  mismatch: ${m}`);
  for (const d of r.daemonDeaths) console.log(`  daemon ${d.name} exited (code ${d.code}, signal ${d.signal}):\n${d.output.split('\n').slice(-15).join('\n')}`);
  console.log(r.pass ? 'PASS' : `FAIL: ${r.failures.join('; ')}`);
}

if (isMain(import.meta.url)) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const report = await runChaos({
    seconds: arg('seconds', 120),
    files: arg('files', 500),
    seed: arg('seed', Date.now() % 100_000),
    dbKills: !process.argv.includes('--no-db-kills'),
    log: (l) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${l}`),
  });
  printChaosReport(report);
  process.exit(report.pass ? 0 : 1);
}
