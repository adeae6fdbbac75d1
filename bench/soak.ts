/**
 * Soak: the demo topology (embedded PostgreSQL, API, every daemon, four storage sites, two VOs)
 * in this process under continuous rule churn: rules with short lifetimes are created on the
 * demo datasets and old ones deleted, so the judges, conveyor and reaper work the whole time.
 * Every sample records RSS, heap, active handles and requests, and database connections; the
 * verdict compares the end of the run with the end of the warm-up (the first third): a leak
 * shows as growth after warm-up.
 *
 *   npx tsx bench/soak.ts [--minutes 30] [--sample-seconds 30] [--churn-ms 3000]
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveApi } from '../api/server.ts';
import { createClient } from '../bin/client.ts';
import { startDaemons } from '../bin/process.ts';
import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';
import { loadConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { openDatabase } from '../core/runtime.ts';
import { uploadFiles } from '../core/upload.ts';
import { DAEMONS, type DaemonName } from '../daemons/index.ts';
import { demoTopology, seedDemo, startDemoSites } from '../fixtures/demo.ts';
import { isMain } from './lib.ts';

export interface SoakSample {
  atSeconds: number;
  rssMiB: number;
  heapUsedMiB: number;
  handles: number;
  requests: number;
  dbConnections: number;
  rulesLive: number;
  created: number;
  deleted: number;
  transfersDone: number;
}

export interface SoakReport {
  minutes: number;
  samples: SoakSample[];
  churnErrors: number;
  verdict: { pass: boolean; reasons: string[]; base?: SoakSample; end?: SoakSample };
}

/** Allowed growth from the end of warm-up to the end of the run. */
const TOLERANCE = { rssRatio: 1.25, rssMiB: 32, heapRatio: 1.3, heapMiB: 16, handles: 10, requests: 10, dbConnections: 3 };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      r();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      r();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

export function soakVerdict(samples: SoakSample[]): SoakReport['verdict'] {
  if (samples.length < 4) return { pass: false, reasons: [`only ${samples.length} samples: run longer or sample more often`] };
  const warm = Math.ceil(samples.length / 3);
  const after = samples.slice(warm - 1);
  const tail = samples.slice(-Math.max(2, Math.floor(samples.length / 3)));
  // The end of warm-up vs the median of the last third (one GC-timing outlier does not decide).
  const base = after[0];
  const end: SoakSample = { ...tail[tail.length - 1] };
  for (const k of ['rssMiB', 'heapUsedMiB', 'handles', 'requests', 'dbConnections'] as const) end[k] = median(tail.map((s) => s[k]));
  const reasons: string[] = [];
  if (end.rssMiB > base.rssMiB * TOLERANCE.rssRatio + TOLERANCE.rssMiB) reasons.push(`RSS grew ${base.rssMiB} -> ${end.rssMiB} MiB`);
  if (end.heapUsedMiB > base.heapUsedMiB * TOLERANCE.heapRatio + TOLERANCE.heapMiB) reasons.push(`heap grew ${base.heapUsedMiB} -> ${end.heapUsedMiB} MiB`);
  if (end.handles > base.handles + TOLERANCE.handles) reasons.push(`active handles grew ${base.handles} -> ${end.handles}`);
  if (end.requests > base.requests + TOLERANCE.requests) reasons.push(`active requests grew ${base.requests} -> ${end.requests}`);
  if (end.dbConnections > base.dbConnections + TOLERANCE.dbConnections) reasons.push(`database connections grew ${base.dbConnections} -> ${end.dbConnections}`);
  return { pass: reasons.length === 0, reasons, base, end };
}

export async function runSoak(opts: { minutes: number; sampleSeconds?: number; churnMs?: number; log?: (l: string) => void }): Promise<SoakReport> {
  const say = opts.log ?? (() => {});
  const sampleMs = (opts.sampleSeconds ?? 30) * 1000;
  const churnMs = opts.churnMs ?? 3000;
  const home = await mkdtemp(join(tmpdir(), 'sluice-soak-'));
  const cfg = loadConfig(process.env, { home, port: 0, logLevel: process.env.LOG_LEVEL ?? 'warn' });
  cfg.databaseUrl = undefined; // the demo's own embedded database, whatever the environment says
  const log = createLogger({ level: cfg.logLevel });
  const sites = await startDemoSites(home, 20_000 + Math.floor(Math.random() * 20_000));
  const db = await openDatabase(cfg, { log, migrate: 'apply', applicationName: 'sluice-soak' });
  const api = await serveApi(db.sql, cfg, log);
  const daemons = startDaemons(db.sql, log, Object.keys(DAEMONS) as DaemonName[]);
  const samples: SoakSample[] = [];
  let churnErrors = 0;
  try {
    say(`soak in ${home}: seeding the demo ...`);
    await seedDemo(api.url, cfg, sites);
    // Tokens for the whole run (the CLI client's own token lives 600 s).
    const issuer = await loadOrCreateLocalIssuer(home);
    const topo = demoTopology(sites);
    const vos = await Promise.all(
      topo.vos.map(async (vo) => ({
        vo,
        client: createClient({ url: api.url, token: await mintToken(issuer, { vo: vo.name, account: 'admin', lifetimeSeconds: opts.minutes * 60 + 3600, audience: cfg.tokenAudience }), vo: vo.name, account: 'admin' }, cfg),
      })),
    );

    const churned: Array<{ vo: number; id: string }> = [];
    let created = 0;
    let deleted = 0;
    const started = Date.now();
    const endAt = started + opts.minutes * 60_000;
    const ac = new AbortController();
    const churn = (async () => {
      for (let i = 0; !ac.signal.aborted; i++) {
        await sleep(churnMs, ac.signal);
        if (ac.signal.aborted) break;
        try {
          if (churned.length >= 6 || (churned.length > 0 && i % 3 === 2)) {
            const old = churned.shift()!;
            await vos[old.vo].client.request('DELETE', `/v1/rules/${old.id}`).catch((e: Error) => {
              // expired and cleaned up already: fine
              if (!/404|RuleNotFound|does not exist/.test(e.message)) throw e;
            });
            deleted++;
          } else {
            // A fresh small dataset uploaded to the VO's tier-0 disk, then a rule with a short
            // lifetime to another RSE: every churn rule makes real transfers (the demo dataset
            // is already everywhere), and its expiry gives the cleaner and reaper work.
            const v = i % vos.length;
            const { vo, client } = vos[v];
            // Named like the VO's demo dataset: the atlas policy wants <scope>.<8-digit run>.<stream>.<type>.
            const run = String(10_000_000 + i);
            const name = /\.\d{8}\./.test(vo.dataset) ? vo.dataset.replace(/\.\d{8}\./, `.${run}.`) : `Soak${run}.${vo.dataset}`;
            const dir = join(home, 'soak-input', vo.name, name);
            await mkdir(dir, { recursive: true });
            const files: string[] = [];
            for (let k = 0; k < 4; k++) {
              const f = join(dir, `${name}._${String(k + 1).padStart(4, '0')}`);
              await writeFile(f, randomBytes(16 * 1024));
              files.push(f);
            }
            const up = await uploadFiles(client, { rse: vo.rses[0].name, scope: vo.scope, dataset: { scope: vo.scope, name }, files, concurrency: 2 });
            const failed = up.files.find((f) => f.status === 'failed');
            if (failed) throw new Error(`upload of ${vo.scope}:${name} failed: ${failed.error}`);
            await rm(dir, { recursive: true, force: true });
            const rse = vo.rses[1 + (Math.floor(i / vos.length) % (vo.rses.length - 1))].name;
            const res = await client.request<{ ids: string[] }>('POST', '/v1/rules', {
              dids: [{ scope: vo.scope, name }],
              copies: 1,
              rse_expression: rse,
              lifetime: 20 + (i % 4) * 15,
              comment: 'soak churn',
            });
            churned.push({ vo: v, id: res.ids[0] });
            created++;
          }
        } catch (e) {
          churnErrors++;
          if (churnErrors <= 5) say(`churn error: ${(e as Error).message}`);
        }
      }
    })();

    const sample = async () => {
      const mem = process.memoryUsage();
      const [c] = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
      const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from rules`;
      const [t] = await db.sql<{ n: number }[]>`select count(*)::int as n from transfer_attempts where error_code is null`;
      const p = process as unknown as { _getActiveHandles(): unknown[]; _getActiveRequests(): unknown[] };
      const s: SoakSample = {
        atSeconds: Math.round((Date.now() - started) / 1000),
        rssMiB: Math.round(mem.rss / 2 ** 20),
        heapUsedMiB: Math.round(mem.heapUsed / 2 ** 20),
        handles: p._getActiveHandles().length,
        requests: p._getActiveRequests().length,
        dbConnections: c.n + 1,
        rulesLive: r.n,
        created,
        deleted,
        transfersDone: t.n,
      };
      samples.push(s);
      say(formatRow(s));
    };
    say(HEADER);
    while (Date.now() < endAt) {
      await sleep(Math.min(sampleMs, endAt - Date.now()));
      await sample();
    }
    ac.abort();
    await churn;
  } finally {
    await api.close();
    await daemons.stop(5000);
    await db.close();
    await sites.close();
    await rm(home, { recursive: true, force: true });
  }
  return { minutes: opts.minutes, samples, churnErrors, verdict: soakVerdict(samples) };
}

const HEADER = ['t (s)', 'RSS MiB', 'heap MiB', 'handles', 'requests', 'db conns', 'rules', 'created', 'deleted', 'transfers'].map((h) => h.padStart(9)).join(' ');
function formatRow(s: SoakSample): string {
  return [s.atSeconds, s.rssMiB, s.heapUsedMiB, s.handles, s.requests, s.dbConnections, s.rulesLive, s.created, s.deleted, s.transfersDone].map((v) => String(v).padStart(9)).join(' ');
}

if (isMain(import.meta.url)) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const report = await runSoak({ minutes: arg('minutes', 30), sampleSeconds: arg('sample-seconds', 30), churnMs: arg('churn-ms', 3000), log: (l) => console.log(l) });
  const v = report.verdict;
  console.log(`\nchurn errors: ${report.churnErrors}`);
  if (v.base && v.end) console.log(`after warm-up (t=${v.base.atSeconds}s) -> end (median of the last third): RSS ${v.base.rssMiB} -> ${v.end.rssMiB} MiB, heap ${v.base.heapUsedMiB} -> ${v.end.heapUsedMiB} MiB, handles ${v.base.handles} -> ${v.end.handles}, db connections ${v.base.dbConnections} -> ${v.end.dbConnections}`);
  console.log(v.pass ? 'PASS: no growth after warm-up' : `FAIL: ${v.reasons.join('; ')}`);
  process.exit(v.pass ? 0 : 1);
}
