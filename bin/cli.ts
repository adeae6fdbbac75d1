import type { Command } from 'commander';
import Table from 'cli-table3';
import { SingleBar, Presets } from 'cli-progress';
import { loadConfig, type Config } from '../core/config.ts';
import { createClient, type Client } from './client.ts';

/**
 * What every command module gets: the parsed global options, an API client, and output helpers.
 * Command modules live in bin/commands/, one per resource, each exporting `register(program, cli)`.
 */
export interface Globals {
  url: string;
  token?: string;
  vo?: string;
  account: string;
  json?: boolean;
}

export type Row = Record<string, unknown>;

export interface Cli {
  globals(): Globals;
  config(overrides?: Partial<Config>): Config;
  client(): Client;
  print(data: Row | Row[], columns?: string[]): void;
}

export function createCli(program: Command): Cli {
  const globals = () => program.opts<Globals>();
  const config = (overrides: Partial<Config> = {}) => loadConfig(process.env, overrides);
  return {
    globals,
    config,
    client() {
      const g = globals();
      return createClient({ url: g.url, token: g.token ?? process.env.SLUICE_TOKEN, vo: g.vo, account: g.vo ? g.account : undefined }, config());
    },
    print(data, columns) {
      print(globals().json ?? false, data, columns);
    },
  };
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') {
    return Object.entries(v as Row)
      .map(([k, x]) => `${k}=${typeof x === 'object' ? JSON.stringify(x) : String(x)}`)
      .join(' ');
  }
  return String(v);
}

/** Tables for people, JSON (the API's own shape) for scripts. */
export function print(json: boolean, data: Row | Row[], columns?: string[]): void {
  if (json) {
    console.log(JSON.stringify(data, null, 2));
    return;
  }
  if (!Array.isArray(data)) {
    const t = new Table({ style: { head: [], border: [] } });
    for (const [k, v] of Object.entries(data)) t.push({ [k]: cell(v) });
    console.log(t.toString());
    return;
  }
  if (data.length === 0) {
    console.log('(none)');
    return;
  }
  const cols = columns ?? Object.keys(data[0]);
  const t = new Table({ head: cols, style: { head: ['bold'], border: [] } });
  for (const r of data) t.push(cols.map((c) => cell(r[c])));
  console.log(t.toString());
}

export function parseDid(text: string): { scope: string; name: string } {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) throw new Error(`'${text}' is not a DID; write scope:name`);
  return { scope: text.slice(0, i), name: text.slice(i + 1) };
}

export const enc = encodeURIComponent;
export const didPath = (d: { scope: string; name: string }) => `/v1/dids/${enc(d.scope)}/${enc(d.name)}`;

export function keyValues(pairs: string[] = []): Record<string, string> {
  return Object.fromEntries(
    pairs.map((p) => {
      const i = p.indexOf('=');
      if (i <= 0) throw new Error(`'${p}' is not key=value`);
      return [p.slice(0, i), p.slice(i + 1)];
    }),
  );
}

/** Metadata values: numbers and booleans keep their type, as users expect from `run=1234`. */
export function typedValues(pairs: string[] = []): Record<string, string | number | boolean> {
  return Object.fromEntries(
    Object.entries(keyValues(pairs)).map(([k, v]) => [k, /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v]),
  );
}

export const collect = (v: string, prev: string[] = []) => [...prev, v];
export const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`'${v}' is not an integer`);
  return n;
};

export interface Progress {
  /** Moves the bar to `done` (same unit as total: bytes or files). */
  update(done: number, extra?: { total?: number; label?: string }): void;
  increment(by?: number): void;
  stop(): void;
}

/**
 * A progress bar for long-running commands (uploads, downloads, `rule show --watch`): on a
 * terminal a live bar on stderr, so stdout stays clean for --json; elsewhere (CI logs, pipes)
 * nothing at all. `unit: 'bytes'` shows sizes and rates.
 */
export function progressBar(total: number, options: { label?: string; unit?: 'bytes' | 'files' } = {}): Progress {
  if (!process.stderr.isTTY) return { update() {}, increment() {}, stop() {} };
  const bytes = options.unit === 'bytes';
  const bar = new SingleBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      format: `{label} [{bar}] {percentage}% | {value_h}/{total_h}${bytes ? ' | {speed}' : ''} | ETA {eta_formatted}`,
      formatValue: (v, _o, type) => (bytes && (type === 'value' || type === 'total') ? humanBytes(v) : String(v)),
    },
    Presets.shades_classic,
  );
  const started = Date.now();
  const payload = (done: number, label = options.label ?? '') => ({
    label,
    value_h: bytes ? humanBytes(done) : String(done),
    total_h: bytes ? humanBytes(bar.getTotal()) : String(bar.getTotal()),
    speed: `${humanBytes(done / Math.max(0.001, (Date.now() - started) / 1000))}/s`,
  });
  bar.start(total, 0, payload(0));
  return {
    update(done, extra = {}) {
      if (extra.total !== undefined) bar.setTotal(extra.total);
      bar.update(done, payload(done, extra.label));
    },
    increment(by = 1) {
      bar.increment(by);
    },
    stop() {
      bar.stop();
    },
  };
}

export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)} ${u[i]}`;
}
