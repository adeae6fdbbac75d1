import { posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Dispatcher } from 'undici';
import { normalizeAdler32 } from '../../core/checksum.ts';
import { Deadline } from '../deadline.ts';
import { tapUploadBody } from '../body.ts';
import { TransferError, codeForStatus, statusError, type TransferCode, type TransferPhase } from '../errors.ts';
import { joinUrlPath, relativePath, splitPath } from '../paths.ts';
import type {
  CallOptions,
  ListEntry,
  ReadOptions,
  ReadResult,
  StatOptions,
  StatResult,
  StorageClient,
  StorageConfig,
  TpcCapability,
  TpcEndpoint,
  TpcOptions,
  TpcResult,
  WriteOptions,
  WriteResult,
} from '../types.ts';
import { parseDigestHeader, parseMultistatus } from './dav.ts';
import { PerfMarkerParser } from './perf-markers.ts';
import { acquireDispatcher, nodeAgentFor, releaseDispatcher } from './pool.ts';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

const DEFAULT_METADATA_TIMEOUT_MS = 60_000;
// XRootD and dCache send a perf marker every 5 s; several missed markers mean a hung transfer.
const DEFAULT_STALL_MS = 120_000;
// A directory we created (or saw) is trusted for this long, so 1,000 files into one directory
// cost one MKCOL, not 1,000. If it vanishes meanwhile, the PUT/COPY fails with ParentMissing,
// the cache entry is dropped and copyFile retries once.
const DIR_CACHE_MS = 30_000;
const CLEANUP_TIMEOUT_MS = 15_000;

type Response = Dispatcher.ResponseData;

/** HTTP/WebDAV storage with WLCG HTTP-TPC (XRootD, dCache, EOS, StoRM, Apache mod_dav). */
export class HttpStorageClient implements StorageClient {
  readonly kind = 'http';
  readonly tpc: TpcCapability;
  private readonly origin: string;
  private readonly prefix: string[];
  private readonly dispatcher: Dispatcher;
  private readonly token?: string;
  private readonly timeoutMs?: number;
  private readonly metadataTimeoutMs: number;
  private readonly stallMs: number;
  private readonly knownDirs = new Map<string, number>();
  private closed = false;

  constructor(config: StorageConfig) {
    const u = new URL(config.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new TransferError('UnsupportedScheme', 'transfer', `the http protocol cannot serve '${u.protocol}' URLs (${config.url})`);
    }
    this.origin = u.origin;
    this.prefix = splitPath(`${u.pathname}/${config.prefix ?? ''}`);
    this.tpc = config.tpc ?? 'none';
    const s = config.settings ?? {};
    this.token = s.token;
    this.timeoutMs = s.timeoutMs;
    this.metadataTimeoutMs = s.timeoutMs ?? DEFAULT_METADATA_TIMEOUT_MS;
    this.stallMs = s.stallTimeoutMs ?? DEFAULT_STALL_MS;
    this.dispatcher = acquireDispatcher(this.origin, { connections: s.connections, connectTimeoutMs: s.connectTimeoutMs });
  }

  url(path: string): string {
    return this.origin + joinUrlPath([...this.prefix, ...splitPath(path)]);
  }

  private urlPath(path: string, dirSlash = false): string {
    const p = joinUrlPath([...this.prefix, ...splitPath(path)]);
    return dirSlash && !p.endsWith('/') ? `${p}/` : p;
  }

  // Header names are sent in canonical case throughout: XRootD 5.5's XrdHttp matches some of them
  // case-sensitively and silently ignores a lower-case "content-length" (a PUT then stores 0 bytes).
  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}`, ...extra } : extra;
  }

  private async send(
    d: Deadline,
    method: string,
    path: string,
    init: {
      headers?: Record<string, string>;
      body?: Dispatcher.DispatchOptions['body'];
      phase?: TransferPhase;
      bodyTimeout?: number;
      headersTimeout?: number;
      redirects?: boolean;
    } = {},
  ): Promise<Response> {
    this.assertOpen();
    try {
      return await this.dispatcher.request({
        origin: this.origin,
        path,
        method: method as Dispatcher.HttpMethod,
        headers: this.headers(init.headers),
        body: init.body,
        signal: d.signal,
        headersTimeout: init.headersTimeout ?? this.stallMs,
        bodyTimeout: init.bodyTimeout ?? this.stallMs,
        // undici closes the socket after every HEAD: that would cost a TCP handshake per stat.
        // Storage doors do not send bodies on HEAD, so keep the connection. (PROPFIND goes without
        // a body, i.e. allprop: XRootD 5.5 leaves a PROPFIND body unread on the connection and
        // answers the next request on it with 400 "Request unknown".)
        reset: false,
        ...(init.redirects === false ? { maxRedirections: 0 } : {}),
      } as Dispatcher.RequestOptions);
    } catch (e) {
      throw d.fail(e, init.phase);
    }
  }

  async stat(path: string, opts: StatOptions = {}): Promise<StatResult> {
    const url = this.url(path);
    const d = new Deadline(this.metaOpts(opts), 'source', `stat ${url}`);
    try {
      const head = await this.send(d, 'HEAD', this.urlPath(path), {
        headers: opts.checksum === false ? {} : { 'Want-Digest': 'adler32' },
      });
      await head.body.dump();
      const type = String(head.headers['content-type'] ?? '');
      const len = head.headers['content-length'];
      if (head.statusCode === 200 && len !== undefined && !type.includes('directory')) {
        return { size: Number(len), isDirectory: false, ...parseDigestHeader(head.headers['digest']), ...mtimeOf(head) };
      }
      if (head.statusCode === 401 || head.statusCode === 403) throw statusError(head.statusCode, 'source', `stat ${url}`);
      // Directories, and servers whose HEAD says little (no length, 404 or 403 on collections):
      // PROPFIND is the authoritative WebDAV answer.
      const res = await this.send(d, 'PROPFIND', this.urlPath(path), {
        headers: { Depth: '0' },
      });
      const text = await readText(res);
      // HEAD's 404 is only believed once PROPFIND agrees: Apache answers a collection's HEAD
      // with 301 to the slash form and then 404 (no index page).
      if (res.statusCode !== 207) throw statusError(head.statusCode === 404 ? 404 : res.statusCode, 'source', `stat ${url}`, { body: text });
      const entry = parseMultistatus(text)[0];
      if (!entry) throw new TransferError('ProtocolError', 'source', `stat ${url}: empty PROPFIND reply`);
      return { size: entry.size ?? 0, isDirectory: entry.isDirectory, ...(entry.mtime ? { mtime: entry.mtime } : {}) };
    } catch (e) {
      throw d.fail(e);
    } finally {
      d.dispose();
    }
  }

  async read(path: string, opts: ReadOptions = {}): Promise<ReadResult> {
    const url = this.url(path);
    const d = new Deadline({ signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.timeoutMs }, 'source', `GET ${url}`);
    const stall = opts.stallTimeoutMs ?? this.stallMs;
    const headers: Record<string, string> = {};
    if (opts.offset !== undefined || opts.length !== undefined) {
      const from = opts.offset ?? 0;
      headers.Range = `bytes=${from}-${opts.length !== undefined ? from + opts.length - 1 : ''}`;
    }
    let res: Response;
    try {
      res = await this.send(d, 'GET', this.urlPath(path), { headers, headersTimeout: stall, bodyTimeout: stall });
      if (res.statusCode !== 200 && res.statusCode !== 206) {
        throw statusError(res.statusCode, 'source', `GET ${url}`, { body: await readText(res) });
      }
    } catch (e) {
      d.dispose();
      throw d.fail(e);
    }
    const lenHeader = res.headers['content-length'];
    const size = lenHeader === undefined ? undefined : Number(lenHeader);
    let seen = 0;
    const body = res.body;
    // A server that closes early without an error (or a proxy that eats the reset) would
    // otherwise hand the caller a silently short file.
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        cb(null, chunk);
      },
      flush(cb) {
        if (size !== undefined && seen !== size) {
          cb(new TransferError('SizeMismatch', 'source', `GET ${url}: got ${seen} of ${size} bytes`));
        } else cb();
      },
    });
    body.on('error', (e) => out.destroy(d.fail(e)));
    body.pipe(out);
    out.on('close', () => {
      d.dispose();
      if (!body.readableEnded) body.destroy();
    });
    return { stream: out, ...(size !== undefined && !Number.isNaN(size) ? { size } : {}) };
  }

  async write(path: string, body: Readable | Uint8Array | string, opts: WriteOptions = {}): Promise<WriteResult> {
    const url = this.url(path);
    const d = new Deadline({ signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.timeoutMs }, 'destination', `PUT ${url}`);
    let sent = false;
    try {
      if (opts.createParents !== false) await this.ensureParent(path, d);
      const { tap, sourceError, release } = tapUploadBody(body, opts, d);
      // Who stalled: bytes waiting in our buffer mean the server stopped reading; an empty
      // buffer means the source stopped sending.
      d.watchStall(opts.stallTimeoutMs ?? this.stallMs, () =>
        tap.readableLength > 0 || tap.writableLength > 0 ? 'destination' : 'source',
      );
      sent = true;
      let res: { statusCode: number; text: string };
      try {
        const knownSize = opts.size ?? (body instanceof Readable ? undefined : Buffer.byteLength(body));
        if (knownSize !== undefined) {
          res = await this.putWithLength(path, tap, knownSize, d);
        } else {
          // Unknown length: chunked. No redirects: a streamed body cannot be replayed.
          const r = await this.send(d, 'PUT', this.urlPath(path), { body: tap, headersTimeout: 0, bodyTimeout: 0, redirects: false });
          res = { statusCode: r.statusCode, text: await readText(r) };
        }
      } catch (e) {
        if (sourceError() !== undefined && !d.aborted) throw toSourceError(sourceError(), url);
        throw e;
      } finally {
        release();
      }
      const text = res.text;
      if (res.statusCode === 409 || (res.statusCode === 404 && opts.createParents !== false)) {
        this.forgetDir(posix.dirname(splitPath(path).join('/')));
        throw statusError(res.statusCode, 'destination', `PUT ${url}`, { body: text, code: 'ParentMissing' });
      }
      if (res.statusCode >= 300) throw statusError(res.statusCode, 'destination', `PUT ${url}`, { body: text });
      const r = tap.result();
      if (opts.size !== undefined && r.size !== opts.size) {
        throw new TransferError('SizeMismatch', 'source', `PUT ${url}: sent ${r.size} bytes, expected ${opts.size}`);
      }
      if (opts.adler32 && normalizeAdler32(opts.adler32) !== r.adler32) {
        throw new TransferError('ChecksumMismatch', 'source', `PUT ${url}: adler32 of the bytes sent is ${r.adler32}, expected ${normalizeAdler32(opts.adler32)}`);
      }
      return r;
    } catch (e) {
      const err = d.fail(e);
      if (sent && !NOTHING_WRITTEN.has(err.code)) await this.cleanup(path);
      throw err;
    } finally {
      d.dispose();
    }
  }

  /**
   * PUT with a known length through node:http, which keeps the header's case: undici always
   * writes "content-length", and XRootD 5.5.3 ignores it in lower case, answers 200 and stores
   * an empty file. Chunked is no way out either: XRootD intermittently answers 400 to it.
   */
  private putWithLength(path: string, body: Readable, size: number, d: Deadline): Promise<{ statusCode: number; text: string }> {
    this.assertOpen();
    const u = new URL(this.origin);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send({
        host: u.hostname,
        port: u.port,
        method: 'PUT',
        path: this.urlPath(path),
        agent: nodeAgentFor(this.origin),
        headers: this.headers({ 'Content-Length': String(size) }),
        signal: d.signal,
      });
      const fail = (e: unknown) => {
        body.unpipe(req);
        reject(d.fail(e, 'destination'));
      };
      // A body shorter or longer than declared must fail here, not leave the server waiting.
      let count = 0;
      const wrongSize = () => {
        body.unpipe(req);
        req.destroy();
        reject(new TransferError('SizeMismatch', 'source', `PUT ${this.url(path)}: the body is not ${size} bytes long (${count}+)`));
      };
      body.on('data', (c: Buffer) => {
        count += c.length;
        if (count > size) wrongSize();
      });
      body.on('end', () => (count === size ? req.end() : wrongSize()));
      req.on('error', fail);
      body.on('error', (e) => {
        req.destroy();
        reject(e);
      });
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (chunks.length < 64) chunks.push(c);
        });
        res.on('error', fail);
        res.on('end', () => {
          // The server answered before taking all bytes (an error status): stop sending.
          if (!body.readableEnded) body.unpipe(req);
          resolve({ statusCode: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      body.pipe(req, { end: false });
    });
  }

  async delete(path: string, opts: CallOptions = {}): Promise<void> {
    const url = this.url(path);
    const d = new Deadline(this.metaOpts(opts), 'destination', `DELETE ${url}`);
    try {
      const res = await this.send(d, 'DELETE', this.urlPath(path));
      const text = await readText(res);
      if (res.statusCode === 404 || (res.statusCode >= 200 && res.statusCode < 300)) return;
      throw statusError(res.statusCode, 'destination', `DELETE ${url}`, { body: text });
    } catch (e) {
      throw d.fail(e);
    } finally {
      d.dispose();
    }
  }

  async mkdir(path: string, opts: CallOptions = {}): Promise<void> {
    const d = new Deadline(this.metaOpts(opts), 'destination', `MKCOL ${this.url(path)}`);
    try {
      await this.mkcol(splitPath(path), d);
    } catch (e) {
      throw d.fail(e);
    } finally {
      d.dispose();
    }
  }

  async list(path: string, opts: CallOptions = {}): Promise<ListEntry[]> {
    const url = this.url(path);
    const d = new Deadline(this.metaOpts(opts), 'source', `PROPFIND ${url}`);
    try {
      const res = await this.send(d, 'PROPFIND', this.urlPath(path, true), {
        headers: { Depth: '1' },
      });
      const text = await readText(res, 64 * 1024 * 1024);
      if (res.statusCode !== 207) throw statusError(res.statusCode, 'source', `PROPFIND ${url}`, { body: text });
      const self = splitPath(path).join('/');
      const out: ListEntry[] = [];
      for (const e of parseMultistatus(text)) {
        const rel = relativePath(hrefPath(e.href), this.prefix);
        if (rel === undefined || rel === self) continue;
        out.push({
          path: rel,
          name: posix.basename(rel),
          isDirectory: e.isDirectory,
          ...(e.size !== undefined && !e.isDirectory ? { size: e.size } : {}),
          ...(e.mtime ? { mtime: e.mtime } : {}),
        });
      }
      return out;
    } catch (e) {
      throw d.fail(e);
    } finally {
      d.dispose();
    }
  }

  async tpcSource(path: string): Promise<TpcEndpoint> {
    return { url: this.url(path), headers: this.token ? { Authorization: `Bearer ${this.token}` } : {} };
  }

  async tpcDestination(path: string): Promise<TpcEndpoint> {
    return this.tpcSource(path);
  }

  /** COPY with `Source:` sent to this (destination) endpoint, which pulls. */
  async tpcPull(path: string, source: TpcEndpoint, opts: TpcOptions = {}): Promise<TpcResult> {
    return this.copy(path, 'pull', { Source: source.url }, source.headers, opts);
  }

  /** COPY with `Destination:` sent to this (source) endpoint, which pushes. */
  async tpcPush(path: string, destination: TpcEndpoint, opts: TpcOptions = {}): Promise<TpcResult> {
    return this.copy(path, 'push', { Destination: destination.url }, destination.headers, opts);
  }

  private async copy(
    path: string,
    direction: 'pull' | 'push',
    remote: Record<string, string>,
    passiveHeaders: Record<string, string>,
    opts: TpcOptions,
  ): Promise<TpcResult> {
    const url = this.url(path);
    const what = `TPC ${direction} COPY ${url}`;
    const self: TransferPhase = direction === 'pull' ? 'destination' : 'source';
    const d = new Deadline({ signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.timeoutMs }, 'transfer', what);
    // Canonical capitalisation on purpose: XRootD 5.5 matches these header names case-sensitively
    // (a lower-case "source" gets 400 "No Source or Destination specified").
    const headers: Record<string, string> = {
      ...remote,
      // No X.509 delegation: credentials for the passive side travel as TransferHeader*.
      Credential: 'none',
      'X-Number-Of-Streams': '1',
    };
    for (const [k, v] of Object.entries(passiveHeaders)) headers[`TransferHeader${canonicalHeader(k)}`] = v;
    if (opts.overwrite === false) headers.Overwrite = 'F';
    try {
      d.watchStall(opts.stallTimeoutMs ?? this.stallMs);
      const res = await this.send(d, 'COPY', this.urlPath(path), { headers, phase: self, headersTimeout: 0, bodyTimeout: 0 });
      if (res.statusCode !== 200 && res.statusCode !== 201 && res.statusCode !== 202) {
        throw classifyCopyStatus(res.statusCode, await readText(res), direction, what);
      }
      const parser = new PerfMarkerParser((m) => opts.onProgress?.(m.totalBytes));
      const decoder = new StringDecoder('utf8');
      for await (const chunk of res.body) {
        d.progress();
        parser.feed(decoder.write(chunk as Buffer));
      }
      parser.feed(decoder.end());
      const out = parser.end();
      if (out.outcome === 'success') return { bytes: out.bytes, markers: out.markers };
      if (out.outcome === 'incomplete') {
        throw new TransferError('TpcIncomplete', 'transfer', `${what}: ${out.message}`, { details: { bytes: out.bytes } });
      }
      throw classifyTpcFailure(out.message, direction, what);
    } catch (e) {
      throw d.fail(e, 'transfer');
    } finally {
      d.dispose();
    }
  }

  /** Drops the directory cache entry for `dir` (after a ParentMissing) so the next call MKCOLs again. */
  forgetDir(dir: string): void {
    const key = this.dirKey([...this.prefix, ...splitPath(dir)]);
    for (const k of [...this.knownDirs.keys()]) {
      if (k === key || k.startsWith(`${key}/`)) this.knownDirs.delete(k);
    }
  }

  async ensureParent(path: string, d: Deadline): Promise<void> {
    const parts = splitPath(path);
    await this.mkcol(parts.slice(0, -1), d);
  }

  /** Makes the collection at `parts` below the RSE root, creating missing ancestors first. */
  private async mkcol(parts: string[], d: Deadline): Promise<void> {
    await this.mkcolAbsolute([...this.prefix, ...parts], d);
  }

  // Works on the absolute path so that a missing RSE prefix (a fresh site, a new VO area) is
  // created too; the server root itself is never MKCOLed.
  private async mkcolAbsolute(full: string[], d: Deadline): Promise<void> {
    if (full.length === 0) return;
    const key = this.dirKey(full);
    const known = this.knownDirs.get(key);
    if (known !== undefined && known > Date.now()) return;
    const path = joinUrlPath(full);
    for (let attempt = 0; ; attempt++) {
      const res = await this.send(d, 'MKCOL', path, { phase: 'destination' });
      const text = await readText(res);
      // 201 created (XRootD also answers 201 for an existing one); 405 = already exists (RFC 4918).
      if (res.statusCode === 201 || res.statusCode === 200 || res.statusCode === 204 || res.statusCode === 405) {
        this.knownDirs.set(key, Date.now() + DIR_CACHE_MS);
        return;
      }
      // 409 (RFC 4918; rclone says 404) = an intermediate collection is missing.
      if ((res.statusCode === 409 || res.statusCode === 404) && attempt === 0 && full.length > 1) {
        await this.mkcolAbsolute(full.slice(0, -1), d);
        continue;
      }
      throw statusError(res.statusCode, 'destination', `MKCOL ${this.origin}${path}`, {
        body: text,
        ...(res.statusCode === 409 ? { code: 'ParentMissing' as const } : {}),
      });
    }
  }

  private dirKey(full: string[]): string {
    return full.join('/');
  }

  private async cleanup(path: string): Promise<void> {
    try {
      await this.delete(path, { timeoutMs: CLEANUP_TIMEOUT_MS });
    } catch {
      // Best effort: the transfer error is what the caller must see; a leftover partial file is
      // overwritten by the next attempt and removed by the reaper otherwise.
    }
  }

  private metaOpts(opts: CallOptions): { signal?: AbortSignal; timeoutMs?: number } {
    return { signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.metadataTimeoutMs };
  }

  private assertOpen(): void {
    if (this.closed) throw new TransferError('InvalidConfig', 'transfer', `client for ${this.origin} is closed`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await releaseDispatcher(this.dispatcher);
  }
}

const NOTHING_WRITTEN = new Set<TransferCode>(['ParentMissing', 'Unauthorized', 'PermissionDenied', 'Unreachable', 'Conflict']);

function toSourceError(e: unknown, url: string): TransferError {
  if (e instanceof TransferError) return e;
  return new TransferError('ConnectionReset', 'source', `reading the source for PUT ${url}: ${(e as Error)?.message ?? e}`, { cause: e });
}

function canonicalHeader(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

function mtimeOf(res: Response): { mtime?: Date } {
  const lm = res.headers['last-modified'];
  if (typeof lm !== 'string') return {};
  const d = new Date(lm);
  return Number.isNaN(d.getTime()) ? {} : { mtime: d };
}

function hrefPath(href: string): string {
  try {
    return decodeURIComponent(new URL(href, 'http://x').pathname);
  } catch {
    return href;
  }
}

/** Reads a (small) body as text, bounded, so an error page cannot balloon memory. */
export async function readText(res: Response, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    if (n < limit) chunks.push(c as Buffer);
    n += (c as Buffer).length;
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit);
}

/** A COPY refused before the transfer started: the status is real, the body says why. */
export function classifyCopyStatus(status: number, body: string, direction: 'pull' | 'push', what: string): TransferError {
  const self: TransferPhase = direction === 'pull' ? 'destination' : 'source';
  const text = body.trim().slice(0, 300);
  const details = { httpStatus: status, body: text };
  if (status === 405 || status === 501 || /unsupported credential|request unknown|not supported|not implemented/i.test(text)) {
    return new TransferError('TpcUnsupported', self, `${what}: this endpoint cannot do TPC ${direction} (HTTP ${status}: ${text})`, { details });
  }
  if (status === 412) return new TransferError('Exists', 'destination', `${what}: destination exists and overwrite is off`, { details });
  if (/unable to create|parent/i.test(text) && (status === 400 || status === 409 || status === 404)) {
    return new TransferError('ParentMissing', 'destination', `${what}: destination directory missing (HTTP ${status}: ${text})`, { details });
  }
  if (direction === 'push' && (status === 404 || (status === 400 && /no such file|unable to open/i.test(text)))) {
    return new TransferError('NotFound', 'source', `${what}: source not found (HTTP ${status}: ${text})`, { details });
  }
  return statusError(status, self, what, { body: text });
}

/** A `failure:` line after a 2xx: the transfer started and then failed. */
export function classifyTpcFailure(message: string, direction: 'pull' | 'push', what: string): TransferError {
  const remote: TransferPhase = direction === 'pull' ? 'source' : 'destination';
  const details = { tpcMessage: message };
  const msg = `${what}: ${message}`;
  const m = /status code (\d{3})/i.exec(message);
  if (m) {
    const status = Number(m[1]);
    let code: TransferCode = codeForStatus(status);
    if (direction === 'push' && (status === 409 || status === 404)) code = 'ParentMissing';
    return new TransferError(code, remote, msg, { details: { ...details, httpStatus: status } });
  }
  if (/couldn'?t connect|could not connect|connection refused|resolve host|could not resolve/i.test(message)) {
    return new TransferError('Unreachable', remote, msg, { details });
  }
  if (/timed? ?out|timeout/i.test(message)) return new TransferError('Timeout', 'transfer', msg, { details });
  if (/checksum/i.test(message)) return new TransferError('ChecksumMismatch', 'transfer', msg, { details });
  if (/no such file|not found/i.test(message)) return new TransferError('NotFound', remote, msg, { details });
  if (/permission denied|forbidden/i.test(message)) return new TransferError('PermissionDenied', remote, msg, { details });
  return new TransferError('TpcFailed', 'transfer', msg, { details });
}
