/**
 * `sluice download`: every file below a DID into a local directory, verified. The download plan
 * (GET /v1/dids/{scope}/{name}/download-plan) lists each file's AVAILABLE replicas on readable
 * RSEs, best first (closest to `from` when given). Each file streams into a hidden temporary file
 * next to its destination while size and adler32 are computed; only a file whose size and adler32
 * match the catalogue is renamed into place. Anything else is removed and the next replica is
 * tried, so an interrupted or corrupted download never leaves a file under the final name.
 *
 * Layout: DIR/scope/name (names cannot collide across scopes), or DIR/name with `flat`.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { ChecksumStream } from './checksum.ts';
import type { ApiLike, DidKey } from './upload.ts';

export interface DownloadSource {
  rse: string;
  kind: 'http' | 's3';
  distance: number | null;
  url: string;
  headers: Record<string, string>;
}

export interface DownloadPlanFile {
  scope: string;
  name: string;
  bytes: number;
  adler32: string;
  md5: string | null;
  sources: DownloadSource[];
}

export type DownloadStatus = 'downloaded' | 'present' | 'failed';

export interface DownloadFileResult {
  scope: string;
  name: string;
  bytes: number;
  path: string;
  status: DownloadStatus;
  rse?: string;
  /** Sources that were tried and failed, with why. */
  attempts: Array<{ rse: string; error: string }>;
  error?: string;
}

export type DownloadEvent =
  | { type: 'start'; did: string; bytes: number }
  | { type: 'progress'; did: string; bytes: number }
  | { type: 'retry'; did: string; rse: string; error: string }
  | { type: 'end'; did: string; result: DownloadFileResult };

export interface DownloadOptions {
  dids: DidKey[];
  dir: string;
  /** Prefer replicas close to this RSE (by the VO's distances). */
  from?: string;
  /** DIR/name instead of DIR/scope/name. */
  flat?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: (e: DownloadEvent) => void;
}

const enc = encodeURIComponent;

/** A file name from the catalogue as one safe path segment (no separators, no dot-names). */
function segment(s: string, what: string): string {
  if (!s || s === '.' || s === '..' || /[/\\\u0000]/.test(s)) throw new Error(`${what} '${s}' cannot be used as a local file name`);
  return s;
}

async function localMatches(path: string, f: DownloadPlanFile): Promise<boolean> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile() || st.size !== f.bytes) return false;
  const tap = new ChecksumStream();
  tap.resume();
  await pipeline(createReadStream(path), tap);
  return tap.result().adler32 === f.adler32;
}

/** Streams one source into `tmp`, verifying size and adler32 against the catalogue. */
async function fetchVerified(src: DownloadSource, f: DownloadPlanFile, tmp: string, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const res = await request(src.url, { method: 'GET', headers: src.headers, signal, headersTimeout: 60_000, bodyTimeout: 120_000 });
  if (res.statusCode !== 200) {
    const text = await res.body.text().catch(() => '');
    throw new Error(`HTTP ${res.statusCode}${text ? ` ${text.trim().slice(0, 120)}` : ''}`);
  }
  const tap = new ChecksumStream({ onData: onBytes });
  await pipeline(res.body, tap, createWriteStream(tmp, { flags: 'wx' }), { signal });
  const got = tap.result();
  if (got.size !== f.bytes) throw new Error(`got ${got.size} bytes, the catalogue says ${f.bytes}`);
  if (got.adler32 !== f.adler32) throw new Error(`adler32 ${got.adler32}, the catalogue says ${f.adler32}`);
}

async function downloadOne(f: DownloadPlanFile, opts: DownloadOptions, emit: (e: DownloadEvent) => void): Promise<DownloadFileResult> {
  const did = `${f.scope}:${f.name}`;
  const path = opts.flat ? join(opts.dir, segment(f.name, 'name')) : join(opts.dir, segment(f.scope, 'scope'), segment(f.name, 'name'));
  const result: DownloadFileResult = { scope: f.scope, name: f.name, bytes: f.bytes, path, status: 'failed', attempts: [] };
  const end = () => {
    emit({ type: 'end', did, result });
    return result;
  };
  emit({ type: 'start', did, bytes: f.bytes });
  if (await localMatches(path, f)) {
    result.status = 'present';
    return end();
  }
  await mkdir(dirname(path), { recursive: true });
  if (!f.sources.length) {
    result.error = 'no AVAILABLE replica on a readable RSE';
    return end();
  }
  for (const src of f.sources) {
    if (opts.signal?.aborted) break;
    const tmp = join(dirname(path), `.${f.name}.sluice-${randomBytes(4).toString('hex')}.part`);
    try {
      await fetchVerified(src, f, tmp, (n) => emit({ type: 'progress', did, bytes: n }), opts.signal);
      await rename(tmp, path);
      result.status = 'downloaded';
      result.rse = src.rse;
      return end();
    } catch (e) {
      await unlink(tmp).catch(() => {});
      const error = (e as Error).message;
      result.attempts.push({ rse: src.rse, error });
      emit({ type: 'retry', did, rse: src.rse, error });
    }
  }
  result.error = opts.signal?.aborted ? 'interrupted' : `every replica failed (${result.attempts.map((a) => `${a.rse}: ${a.error}`).join('; ')})`;
  return end();
}

/** Pages through the download plan of each DID and fetches its files, `concurrency` at a time. */
export async function downloadDids(api: ApiLike, opts: DownloadOptions): Promise<DownloadFileResult[]> {
  const emit = opts.onEvent ?? (() => {});
  const results: DownloadFileResult[] = [];
  const seen = new Set<string>();
  for (const did of opts.dids) {
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ limit: '500' });
      if (opts.from) q.set('from', opts.from);
      if (cursor) q.set('cursor', cursor);
      const page: { items: DownloadPlanFile[]; next: string | null } = await api.request('GET', `/v1/dids/${enc(did.scope)}/${enc(did.name)}/download-plan?${q}`);
      const todo = page.items.filter((f) => !seen.has(`${f.scope}:${f.name}`));
      for (const f of todo) seen.add(`${f.scope}:${f.name}`);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 2, todo.length)) }, async () => {
          while (next < todo.length) results.push(await downloadOne(todo[next++], opts, emit));
        }),
      );
      cursor = page.next;
    } while (cursor);
  }
  return results;
}
