/**
 * `sluice upload`: local files -> an RSE -> the catalogue, in the order that keeps the catalogue
 * true. For each file:
 *
 *   1. the upload plan (POST /v1/rses/{rse}/upload-plan) gives its path and where to PUT it;
 *   2. the bytes stream to storage while adler32 (and, for S3, md5) is computed on the way;
 *   3. storage is asked what it now holds (size, and adler32 via Want-Digest on HTTP or md5 via
 *      the ETag on S3) and must agree with what was sent;
 *   4. only then are the DID (bytes, adler32) and its replica registered through the API;
 *   5. if registration fails, the bytes are removed again (or the report says what is left).
 *
 * A DID that already exists is never overwritten: its catalogue size and adler32 must match the
 * local file (then only a missing replica is added), else the file is refused.
 *
 * Runs in the client (no database); talks to the API through `ApiLike` and to storage through
 * protocols/ (HTTP/WebDAV) or presigned URLs (S3).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { ChecksumStream } from './checksum.ts';
import { createStorageClient, type StorageClient } from '../protocols/index.ts';

/** The part of the CLI's API client this module uses; errors carry the HTTP `status` and `code`. */
export interface ApiLike {
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

export interface DidKey {
  scope: string;
  name: string;
}

interface Access {
  url: string;
  headers: Record<string, string>;
}

export interface UploadPlanFile {
  scope: string;
  name: string;
  path: string;
  url: string;
  did: { type: string; bytes: number | null; adler32: string | null } | null;
  replica: string | null;
  put: Access | null;
  get: Access;
  delete: Access | null;
}

export interface UploadPlan {
  rse: string;
  kind: 'http' | 's3';
  expires_at: string;
  storage: { url: string; prefix: string; headers: Record<string, string> } | null;
  files: UploadPlanFile[];
}

export type UploadStatus = 'uploaded' | 'replica-added' | 'skipped' | 'failed';

export interface UploadFileResult {
  file: string;
  scope: string;
  name: string;
  bytes: number;
  adler32?: string;
  status: UploadStatus;
  url?: string;
  error?: string;
  /** What remains on storage or in the catalogue after a failure that could not be undone. */
  leftover?: string;
}

export type UploadEvent =
  | { type: 'start'; file: string; did: string; bytes: number }
  | { type: 'progress'; file: string; did: string; bytes: number }
  | { type: 'end'; file: string; did: string; result: UploadFileResult };

export interface UploadOptions {
  rse: string;
  scope: string;
  /** `scope:name` of a dataset to attach the files to; created (open) if missing. */
  dataset?: DidKey;
  files: string[];
  /** Files in flight at once (default 2). */
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: (e: UploadEvent) => void;
}

export interface UploadReport {
  rse: string;
  dataset?: string;
  files: UploadFileResult[];
  attached: number;
}

const enc = encodeURIComponent;
const didPath = (d: DidKey) => `/v1/dids/${enc(d.scope)}/${enc(d.name)}`;
const statusOf = (e: unknown) => (e as { status?: number }).status;
const message = (e: unknown) => {
  const err = e as { code?: string; message?: string };
  return err.code && !String(err.message).startsWith(err.code) ? `${err.code}: ${err.message}` : String(err.message ?? e);
};

/** adler32 and size of a local file. */
export async function checksumFile(file: string, signal?: AbortSignal): Promise<{ size: number; adler32: string }> {
  const tap = new ChecksumStream();
  tap.resume();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), tap, { signal });
  const r = tap.result();
  return { size: r.size, adler32: r.adler32 };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

/** Storage access for one plan: the protocol layer for HTTP/WebDAV, presigned URLs for S3. */
interface Uploader {
  put(f: UploadPlanFile, file: string, size: number, onBytes: (n: number) => void, signal?: AbortSignal): Promise<{ size: number; adler32: string }>;
  /** Size and checksum as storage reports them now; throws when they disagree with what was sent. */
  verify(f: UploadPlanFile, sent: { size: number; adler32: string }, signal?: AbortSignal): Promise<void>;
  remove(f: UploadPlanFile): Promise<void>;
  close(): Promise<void>;
}

function httpUploader(plan: UploadPlan): Uploader {
  const s = plan.storage!;
  const token = /^Bearer\s+(.+)$/i.exec(s.headers.Authorization ?? s.headers.authorization ?? '')?.[1];
  const client: StorageClient = createStorageClient({ kind: 'http', url: s.url, prefix: s.prefix, settings: token ? { token } : {} });
  return {
    async put(f, file, size, onBytes, signal) {
      const w = await client.write(f.path, createReadStream(file, { highWaterMark: 1 << 20 }), { size, onProgress: onBytes, signal });
      return { size: w.size, adler32: w.adler32 };
    },
    async verify(f, sent, signal) {
      const st = await client.stat(f.path, { checksum: true, signal });
      if (st.size !== sent.size) throw new Error(`storage holds ${st.size} bytes at ${f.url}, ${sent.size} were sent`);
      if (st.adler32 && st.adler32 !== sent.adler32) throw new Error(`storage reports adler32 ${st.adler32} at ${f.url}, the bytes sent have ${sent.adler32}`);
    },
    async remove(f) {
      await client.delete(f.path, { timeoutMs: 15_000 });
    },
    close: () => client.close(),
  };
}

function presignedUploader(): Uploader {
  const md5s = new Map<string, string>();
  return {
    async put(f, file, size, onBytes, signal) {
      const tap = new ChecksumStream({ md5: true, onData: onBytes });
      const body = createReadStream(file, { highWaterMark: 1 << 20 }).pipe(tap);
      // S3 refuses chunked PUTs to a presigned URL: the length goes in the header.
      const res = await request(f.put!.url, { method: 'PUT', headers: { ...f.put!.headers, 'content-length': String(size) }, body, signal });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`PUT ${f.url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      const r = tap.result();
      if (r.size !== size) throw new Error(`${file} changed while it was uploaded (${r.size} bytes sent, ${size} expected)`);
      md5s.set(f.path, r.md5!);
      return { size: r.size, adler32: r.adler32 };
    },
    async verify(f, sent, signal) {
      // One byte through the presigned GET: the total size is in Content-Range, the md5 in the ETag.
      const res = await request(f.get.url, { method: 'GET', headers: { ...f.get.headers, range: 'bytes=0-0' }, signal });
      await res.body.dump();
      if (res.statusCode !== 206 && res.statusCode !== 200) throw new Error(`reading back ${f.url}: HTTP ${res.statusCode}`);
      const range = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
      const size = range ? Number(range[1]) : Number(res.headers['content-length']);
      if (size !== sent.size) throw new Error(`storage holds ${size} bytes at ${f.url}, ${sent.size} were sent`);
      const etag = String(res.headers.etag ?? '').replace(/"/g, '');
      // A multipart ETag ("...-N") is not an md5 of the object; single PUTs' are.
      if (/^[0-9a-f]{32}$/i.test(etag) && etag.toLowerCase() !== md5s.get(f.path)) {
        throw new Error(`storage reports md5 ${etag} at ${f.url}, the bytes sent have ${md5s.get(f.path)}`);
      }
    },
    async remove(f) {
      if (!f.delete) return;
      const res = await request(f.delete.url, { method: 'DELETE', headers: f.delete.headers });
      await res.body.dump();
      if (res.statusCode >= 300 && res.statusCode !== 404) throw new Error(`DELETE ${f.url}: HTTP ${res.statusCode}`);
    },
    close: async () => {},
  };
}

/** Checks the dataset before any byte moves: it must be an open dataset, or not exist yet. */
async function checkDataset(api: ApiLike, dataset: DidKey): Promise<boolean> {
  try {
    const d = await api.request<{ type: string; open: boolean }>('GET', didPath(dataset));
    if (d.type !== 'DATASET') throw new Error(`${dataset.scope}:${dataset.name} is a ${d.type.toLowerCase()}, not a dataset`);
    if (!d.open) throw new Error(`dataset ${dataset.scope}:${dataset.name} is closed; nothing can be attached to it`);
    return true;
  } catch (e) {
    if (statusOf(e) === 404) return false;
    throw e;
  }
}

async function attachMissing(api: ApiLike, dataset: DidKey, exists: boolean, files: DidKey[]): Promise<number> {
  if (!files.length) return 0;
  if (!exists) await api.request('POST', '/v1/dids', { dids: [{ scope: dataset.scope, name: dataset.name, type: 'DATASET' }] });
  const have = new Set<string>();
  if (exists) {
    let cursor: string | null = null;
    do {
      const page: { items: DidKey[]; next: string | null } = await api.request('GET', `${didPath(dataset)}/children?limit=10000${cursor ? `&cursor=${enc(cursor)}` : ''}`);
      for (const c of page.items) have.add(`${c.scope}:${c.name}`);
      cursor = page.next;
    } while (cursor);
  }
  const todo = files.filter((f) => !have.has(`${f.scope}:${f.name}`));
  for (let i = 0; i < todo.length; i += 10_000) {
    await api.request('POST', `${didPath(dataset)}/children`, { children: todo.slice(i, i + 10_000) });
  }
  return todo.length;
}

export async function uploadFiles(api: ApiLike, opts: UploadOptions): Promise<UploadReport> {
  const emit = opts.onEvent ?? (() => {});
  const locals = await Promise.all(
    opts.files.map(async (file) => {
      const st = await stat(file).catch(() => undefined);
      if (!st?.isFile()) throw new Error(`${file} is not a readable file`);
      return { file, name: basename(file), size: st.size };
    }),
  );
  const names = new Set<string>();
  for (const l of locals) {
    if (names.has(l.name)) throw new Error(`two files are named '${l.name}'; DID names come from file names and must be unique`);
    names.add(l.name);
  }
  const datasetExists = opts.dataset ? await checkDataset(api, opts.dataset) : false;

  const results: UploadFileResult[] = [];
  for (let i = 0; i < locals.length; i += 1000) {
    const chunk = locals.slice(i, i + 1000);
    const plan = await api.request<UploadPlan>('POST', `/v1/rses/${enc(opts.rse)}/upload-plan`, { files: chunk.map((l) => ({ scope: opts.scope, name: l.name })) });
    const uploader = plan.kind === 'http' ? httpUploader(plan) : presignedUploader();
    try {
      results.push(...(await mapLimit(chunk, opts.concurrency ?? 2, (l, j) => uploadOne(api, opts, uploader, plan, plan.files[j], l, emit))));
    } finally {
      await uploader.close();
    }
  }

  let attached = 0;
  if (opts.dataset) {
    const done = results.filter((r) => r.status !== 'failed').map((r) => ({ scope: r.scope, name: r.name }));
    attached = await attachMissing(api, opts.dataset, datasetExists, done);
  }
  return { rse: opts.rse, ...(opts.dataset ? { dataset: `${opts.dataset.scope}:${opts.dataset.name}` } : {}), files: results, attached };
}

async function uploadOne(
  api: ApiLike,
  opts: UploadOptions,
  uploader: Uploader,
  plan: UploadPlan,
  f: UploadPlanFile,
  local: { file: string; name: string; size: number },
  emit: (e: UploadEvent) => void,
): Promise<UploadFileResult> {
  const did = `${f.scope}:${f.name}`;
  const base = { file: local.file, scope: f.scope, name: f.name, bytes: local.size, url: f.url };
  const end = (r: UploadFileResult) => {
    emit({ type: 'end', file: local.file, did, result: r });
    return r;
  };
  emit({ type: 'start', file: local.file, did, bytes: local.size });
  try {
    if (f.did) {
      // An existing DID is only ever confirmed, never replaced.
      if (f.did.type !== 'FILE') return end({ ...base, status: 'failed', error: `${did} exists as a ${f.did.type.toLowerCase()}` });
      const sum = await checksumFile(local.file, opts.signal);
      if (sum.size !== f.did.bytes || sum.adler32 !== f.did.adler32) {
        return end({
          ...base,
          adler32: sum.adler32,
          status: 'failed',
          error: `${did} already exists with ${f.did.bytes} bytes and adler32 ${f.did.adler32}; this file has ${sum.size} bytes and adler32 ${sum.adler32} (choose another name)`,
        });
      }
      if (f.replica !== null) return end({ ...base, adler32: sum.adler32, status: 'skipped', error: f.replica === 'AVAILABLE' ? undefined : `replica on ${plan.rse} is ${f.replica}` });
    }
    if (!f.put) return end({ ...base, status: 'failed', error: `the plan gives no upload URL for ${did}` });

    let sent: { size: number; adler32: string };
    try {
      sent = await uploader.put(f, local.file, local.size, (n) => emit({ type: 'progress', file: local.file, did, bytes: n }), opts.signal);
      await uploader.verify(f, sent, opts.signal);
    } catch (e) {
      // Partial or wrong bytes: nothing is registered, and what reached storage goes again.
      const leftover = await uploader.remove(f).then(() => undefined, () => `a partial file may remain at ${f.url}`);
      return end({ ...base, status: 'failed', error: `upload: ${message(e)}`, ...(leftover ? { leftover } : {}) });
    }

    let didRegistered = false;
    try {
      if (!f.did) {
        await api.request('POST', '/v1/dids', { dids: [{ scope: f.scope, name: f.name, type: 'FILE', bytes: sent.size, adler32: sent.adler32 }] });
        didRegistered = true;
      }
      await api.request('POST', '/v1/replicas', { rse: plan.rse, replicas: [{ scope: f.scope, name: f.name, bytes: sent.size, adler32: sent.adler32 }] });
    } catch (e) {
      const removed = await uploader.remove(f).then(() => true, () => false);
      const left = [removed ? undefined : `the uploaded file remains at ${f.url}`, didRegistered ? `DID ${did} is registered without a replica` : undefined].filter(Boolean).join('; ');
      return end({ ...base, adler32: sent.adler32, status: 'failed', error: `registration: ${message(e)}`, ...(left ? { leftover: left } : {}) });
    }
    return end({ ...base, adler32: sent.adler32, status: f.did ? 'replica-added' : 'uploaded' });
  } catch (e) {
    return end({ ...base, status: 'failed', error: message(e) });
  }
}
