import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChecksumStream, normalizeAdler32 } from '../core/checksum.ts';
import { TransferError } from './errors.ts';
import { joinUrlPath, splitPath } from './paths.ts';
import type {
  CallOptions,
  ListEntry,
  ReadResult,
  StatResult,
  StorageClient,
  StorageConfig,
  TpcEndpoint,
  TpcOptions,
  TpcResult,
  WriteOptions,
  WriteResult,
} from './types.ts';

/**
 * A storage that moves no bytes, for benchmarking the dispatch path (conveyor, optimizer) without
 * storage noise. A TPC "copies" by recording the size/adler32 the copy expects, so copyFile's
 * verification passes; `delayMs` simulates per-call latency. State is per process, keyed by URL,
 * so two null endpoints see each other's files.
 */
const files = new Map<string, { size: number; adler32: string }>();
const ZERO = Buffer.alloc(64 * 1024);

export class NullStorageClient implements StorageClient {
  readonly kind = 'null';
  readonly tpc;
  private readonly base: string;
  private readonly prefix: string[];
  private readonly delayMs: number;

  constructor(config: StorageConfig) {
    this.base = config.url.replace(/\/+$/, '');
    this.prefix = splitPath(config.prefix ?? '');
    this.tpc = config.tpc ?? 'both';
    this.delayMs = config.settings?.delayMs ?? 0;
  }

  url(path: string): string {
    return this.base + joinUrlPath([...this.prefix, ...splitPath(path)]);
  }

  /** Plants a file (tests, benchmarks). */
  seed(path: string, entry: { size: number; adler32: string }): void {
    files.set(this.url(path), { size: entry.size, adler32: normalizeAdler32(entry.adler32) });
  }

  private async wait(opts: CallOptions): Promise<void> {
    if (this.delayMs > 0) await sleep(this.delayMs, undefined, { signal: opts.signal }).catch(() => {});
    if (opts.signal?.aborted) throw new TransferError('Aborted', 'transfer', 'null storage call aborted by the caller');
  }

  async stat(path: string, opts: CallOptions = {}): Promise<StatResult> {
    await this.wait(opts);
    const f = files.get(this.url(path));
    if (!f) throw new TransferError('NotFound', 'source', `${this.url(path)} does not exist`);
    return { size: f.size, adler32: f.adler32, isDirectory: false };
  }

  async read(path: string, opts: CallOptions = {}): Promise<ReadResult> {
    const f = await this.stat(path, opts);
    let left = f.size;
    const stream = Readable.from(
      (function* () {
        while (left > 0) {
          const n = Math.min(left, ZERO.length);
          left -= n;
          yield ZERO.subarray(0, n);
        }
      })(),
    );
    return { stream, size: f.size };
  }

  async write(path: string, body: Readable | Uint8Array | string, opts: WriteOptions = {}): Promise<WriteResult> {
    await this.wait(opts);
    const tap = new ChecksumStream();
    const src = body instanceof Readable ? body : Readable.from([typeof body === 'string' ? Buffer.from(body) : body]);
    for await (const chunk of src.pipe(tap)) void chunk;
    const r = tap.result();
    files.set(this.url(path), { size: r.size, adler32: r.adler32 });
    return r;
  }

  async delete(path: string, opts: CallOptions = {}): Promise<void> {
    await this.wait(opts);
    files.delete(this.url(path));
  }

  async mkdir(_path: string, opts: CallOptions = {}): Promise<void> {
    await this.wait(opts);
  }

  async list(path: string, opts: CallOptions = {}): Promise<ListEntry[]> {
    await this.wait(opts);
    const dir = `${this.url(path).replace(/\/$/, '')}/`;
    const out: ListEntry[] = [];
    for (const [url, f] of files) {
      if (!url.startsWith(dir) || url.slice(dir.length).includes('/')) continue;
      const rel = [...splitPath(path), url.slice(dir.length)].join('/');
      out.push({ path: rel, name: url.slice(dir.length), size: f.size, isDirectory: false });
    }
    return out;
  }

  async tpcSource(path: string): Promise<TpcEndpoint> {
    return { url: this.url(path), headers: {} };
  }

  async tpcDestination(path: string): Promise<TpcEndpoint> {
    return { url: this.url(path), headers: {} };
  }

  async tpcPull(path: string, source: TpcEndpoint, opts: TpcOptions = {}): Promise<TpcResult> {
    return this.record(this.url(path), source.url, opts);
  }

  async tpcPush(path: string, destination: TpcEndpoint, opts: TpcOptions = {}): Promise<TpcResult> {
    return this.record(destination.url, this.url(path), opts);
  }

  private async record(to: string, from: string, opts: TpcOptions): Promise<TpcResult> {
    await this.wait(opts);
    const known = files.get(from);
    const size = opts.expected?.size ?? known?.size;
    const adler32 = opts.expected?.adler32 ?? known?.adler32;
    if (size === undefined || adler32 === undefined) {
      throw new TransferError('NotFound', 'source', `${from} does not exist and the copy gave no expected size/adler32`);
    }
    files.set(to, { size, adler32: normalizeAdler32(adler32) });
    opts.onProgress?.(size);
    return { bytes: size, markers: 1 };
  }

  async close(): Promise<void> {}
}
