import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Sql } from '../core/db.ts';
import { startEmbedded, type EmbeddedDatabase } from '../core/embedded.ts';
import { migrate } from '../core/migrate.ts';
import { cpus, totalmem } from 'node:os';

/** One measured figure, as every benchmark reports it and bench/results.json stores it. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  target?: string | number;
  pass?: boolean;
  note?: string;
}

export function machine() {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, commit };
}

export function printResults(title: string, results: BenchResult[]): void {
  console.log(`\n${title}`);
  const value = (v: number) => (Number.isNaN(v) ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(2));
  const rows = results.map((r) => [r.name, `${value(r.value)} ${r.unit}`, String(r.target ?? ''), r.pass === undefined ? '' : r.pass ? 'pass' : 'MISS']);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length), ['benchmark', 'value', 'target', ''][i].length));
  const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(line(['benchmark', 'value', 'target', '']));
  for (const r of rows) console.log(line(r));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
}

/** True when this module is the entry point (`npx tsx bench/x.ts`), not imported by bench/run.ts. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && url === new URL(`file://${process.argv[1]}`).href;
}

/**
 * A migrated database of its own for one benchmark: on DATABASE_URL when set, else on an
 * embedded PostgreSQL in a temporary directory (ephemeral settings: fsync off).
 */
export async function benchDatabase(tag: string, poolMax = 12): Promise<{ sql: Sql; close(): Promise<void> }> {
  let embedded: EmbeddedDatabase | undefined;
  let home: string | undefined;
  let url = process.env.DATABASE_URL;
  const name = `sluice_bench_${tag}_${process.pid}`.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
  if (!url) {
    home = await mkdtemp(join(tmpdir(), `sluice-bench-${tag}-`));
    embedded = await startEmbedded({ home, ephemeral: true });
    url = embedded.url;
  }
  const admin = connect({ url, max: 1 });
  await admin`drop database if exists ${admin(name)}`;
  await admin`create database ${admin(name)}`;
  const u = new URL(url);
  u.pathname = `/${name}`;
  const sql = connect({ url: u.toString(), max: poolMax });
  await migrate(sql);
  return {
    sql,
    async close() {
      await sql.end({ timeout: 5 });
      await admin`drop database if exists ${admin(name)} with (force)`;
      await admin.end();
      await embedded?.stop();
      if (home) await rm(home, { recursive: true, force: true });
    },
  };
}

/** POST JSON with a bearer token; anything but 2xx throws with the answer. */
export async function post(url: string, token: string, body: unknown): Promise<void> {
  const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`${url}: ${r.status} ${await r.text()}`);
}
