import { Readable, Transform } from 'node:stream';
import { createRequire } from 'node:module';
import type { S3Client } from '@aws-sdk/client-s3';
import { normalizeAdler32 } from '../../core/checksum.ts';
import { Deadline } from '../deadline.ts';
import { tapUploadBody } from '../body.ts';
import { TransferError, codeForStatus, toTransferError, type TransferCode, type TransferPhase } from '../errors.ts';
import { splitPath } from '../paths.ts';
import type {
  CallOptions,
  ListEntry,
  ReadOptions,
  ReadResult,
  StatOptions,
  StatResult,
  StorageClient,
  StorageConfig,
  TpcEndpoint,
  WriteOptions,
  WriteResult,
} from '../types.ts';

// The AWS SDK is loaded on first use, not at import: it adds ~40 MB of RSS and a noticeable
// start-up cost to every process that imports protocols/, most of which only speak HTTP.
const requireCjs = createRequire(import.meta.url);
type S3Sdk = typeof import('@aws-sdk/client-s3');
let sdkCache: { s3: S3Sdk; storage: typeof import('@aws-sdk/lib-storage'); presigner: typeof import('@aws-sdk/s3-request-presigner') } | undefined;
function sdk() {
  return (sdkCache ??= {
    s3: requireCjs('@aws-sdk/client-s3') as S3Sdk,
    storage: requireCjs('@aws-sdk/lib-storage') as typeof import('@aws-sdk/lib-storage'),
    presigner: requireCjs('@aws-sdk/s3-request-presigner') as typeof import('@aws-sdk/s3-request-presigner'),
  });
}

const DEFAULT_METADATA_TIMEOUT_MS = 60_000;
const DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const DEFAULT_QUEUE_SIZE = 2;
const CLEANUP_TIMEOUT_MS = 15_000;

/** S3 has no adler32; we keep the one we computed in user metadata, as Rucio's S3 RSEs do. */
const ADLER_META = 'adler32';

interface SharedClient {
  client: S3Client;
  refs: number;
}
// One SDK client (and so one keep-alive socket pool) per endpoint + identity, shared by RSEs.
const shared = new Map<string, SharedClient>();

/**
 * S3 (Ceph RGW, MinIO, AWS, s3rver). S3 cannot be the active party of a third-party copy, but it
 * can be the passive one: `tpcSource`/`tpcDestination` hand out presigned GET/PUT URLs that an
 * HTTP-TPC endpoint pulls from or pushes to.
 */
export class S3StorageClient implements StorageClient {
  readonly kind = 's3';
  readonly tpc = 'none' as const;
  readonly bucket: string;
  private readonly prefix: string[];
  private readonly endpoint: URL;
  private readonly pathStyle: boolean;
  private readonly key: string;
  private readonly s3: S3Client;
  private readonly timeoutMs?: number;
  private readonly metadataTimeoutMs: number;
  private readonly stallMs?: number;
  private readonly threshold: number;
  private readonly partSize: number;
  private readonly queueSize: number;
  private closed = false;

  constructor(config: StorageConfig) {
    const s = config.settings ?? {};
    const u = new URL(config.url.replace(/^s3:/, 'https:'));
    this.endpoint = new URL(u.origin);
    const parts = splitPath(config.prefix ?? '');
    const bucket = s.bucket ?? parts.shift();
    if (!bucket) {
      throw new TransferError('InvalidConfig', 'transfer', `S3 RSE at ${config.url} needs settings.bucket (or the bucket as the first prefix segment)`);
    }
    this.bucket = bucket;
    this.prefix = parts;
    this.pathStyle = s.forcePathStyle ?? true;
    this.timeoutMs = s.timeoutMs;
    this.metadataTimeoutMs = s.timeoutMs ?? DEFAULT_METADATA_TIMEOUT_MS;
    this.stallMs = s.stallTimeoutMs;
    this.threshold = s.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD;
    this.partSize = Math.max(5 * 1024 * 1024, s.partSizeBytes ?? DEFAULT_PART_SIZE);
    this.queueSize = s.multipartQueueSize ?? DEFAULT_QUEUE_SIZE;
    // WHEN_SUPPORTED makes the SDK send stream bodies as aws-chunked with a trailing CRC32, which
    // s3rver (and some older Ceph RGW) store verbatim as object data: silent corruption.
    // WHEN_REQUIRED is the safe default; we verify with our own adler32 anyway.
    const mode = s.checksumMode === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
    this.key = [this.endpoint.origin, s.region, s.accessKeyId, this.pathStyle, mode].join('|');
    let entry = shared.get(this.key);
    if (!entry) {
      entry = {
        refs: 0,
        client: new (sdk().s3.S3Client)({
          endpoint: this.endpoint.origin,
          region: s.region ?? 'us-east-1',
          forcePathStyle: this.pathStyle,
          requestChecksumCalculation: mode,
          responseChecksumValidation: mode,
          ...(s.accessKeyId && s.secretAccessKey
            ? { credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } }
            : {}),
          // The SDK's own retries would hide failures from the conveyor, which owns retry policy.
          maxAttempts: 1,
        }),
      };
      shared.set(this.key, entry);
    }
    entry.refs++;
    this.s3 = entry.client;
  }

  private objectKey(path: string): string {
    return [...this.prefix, ...splitPath(path)].join('/');
  }

  url(path: string): string {
    const key = this.objectKey(path).split('/').map(encodeURIComponent).join('/');
    if (this.pathStyle) return `${this.endpoint.origin}/${this.bucket}/${key}`;
    return `${this.endpoint.protocol}//${this.bucket}.${this.endpoint.host}/${key}`;
  }

  /** Creates the bucket if it is missing (tests and the demo; production buckets are provisioned). */
  async ensureBucket(opts: CallOptions = {}): Promise<void> {
    const d = new Deadline(this.meta(opts), 'destination', `create bucket ${this.bucket}`);
    try {
      try {
        await this.s3.send(new (sdk().s3.HeadBucketCommand)({ Bucket: this.bucket }), { abortSignal: d.signal });
      } catch {
        await this.s3.send(new (sdk().s3.CreateBucketCommand)({ Bucket: this.bucket }), { abortSignal: d.signal });
      }
    } catch (e) {
      throw this.fail(d, e, 'destination', `create bucket ${this.bucket}`);
    } finally {
      d.dispose();
    }
  }

  async stat(path: string, opts: StatOptions = {}): Promise<StatResult> {
    const key = this.objectKey(path);
    const what = `stat s3://${this.bucket}/${key}`;
    const d = new Deadline(this.meta(opts), 'source', what);
    try {
      try {
        const h = await this.s3.send(new (sdk().s3.HeadObjectCommand)({ Bucket: this.bucket, Key: key }), { abortSignal: d.signal });
        const etag = h.ETag?.replace(/"/g, '');
        const adler = h.Metadata?.[ADLER_META];
        return {
          size: h.ContentLength ?? 0,
          isDirectory: false,
          ...(adler ? { adler32: normalizeAdler32(adler) } : {}),
          // A multipart ETag ("...-N") is not an md5 of the object.
          ...(etag && /^[0-9a-f]{32}$/.test(etag) ? { md5: etag } : {}),
          ...(h.LastModified ? { mtime: h.LastModified } : {}),
        };
      } catch (e) {
        const err = this.fail(d, e, 'source', what);
        if (err.code !== 'NotFound' || d.aborted) throw err;
        // S3 has no directories; a key prefix with objects under it is the closest thing.
        const l = await this.s3.send(
          // With a delimiter: s3rver 3.7 fails (500) on MaxKeys smaller than the nested key count.
          new (sdk().s3.ListObjectsV2Command)({ Bucket: this.bucket, Prefix: `${key}/`, Delimiter: '/', MaxKeys: 1 }),
          { abortSignal: d.signal },
        );
        if ((l.KeyCount ?? 0) > 0 || (l.CommonPrefixes?.length ?? 0) > 0) return { size: 0, isDirectory: true };
        throw err;
      }
    } catch (e) {
      throw this.fail(d, e, 'source', what);
    } finally {
      d.dispose();
    }
  }

  async read(path: string, opts: ReadOptions = {}): Promise<ReadResult> {
    const key = this.objectKey(path);
    const what = `GET s3://${this.bucket}/${key}`;
    const d = new Deadline({ signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.timeoutMs }, 'source', what);
    let range: string | undefined;
    if (opts.offset !== undefined || opts.length !== undefined) {
      const from = opts.offset ?? 0;
      range = `bytes=${from}-${opts.length !== undefined ? from + opts.length - 1 : ''}`;
    }
    let body: Readable;
    let size: number | undefined;
    try {
      const r = await this.s3.send(new (sdk().s3.GetObjectCommand)({ Bucket: this.bucket, Key: key, Range: range }), { abortSignal: d.signal });
      body = r.Body as Readable;
      size = r.ContentLength;
    } catch (e) {
      d.dispose();
      throw this.fail(d, e, 'source', what);
    }
    d.watchStall(opts.stallTimeoutMs ?? this.stallMs);
    let seen = 0;
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        d.progress();
        cb(null, chunk);
      },
      flush(cb) {
        if (size !== undefined && seen !== size) cb(new TransferError('SizeMismatch', 'source', `${what}: got ${seen} of ${size} bytes`));
        else cb();
      },
    });
    body.on('error', (e) => out.destroy(this.fail(d, e, 'source', what)));
    d.signal.addEventListener('abort', () => out.destroy(d.signal.reason as Error), { once: true });
    body.pipe(out);
    out.on('close', () => {
      d.dispose();
      if (!body.readableEnded) body.destroy();
    });
    return { stream: out, ...(size !== undefined ? { size } : {}) };
  }

  async write(path: string, body: Readable | Uint8Array | string, opts: WriteOptions = {}): Promise<WriteResult> {
    const key = this.objectKey(path);
    const what = `PUT s3://${this.bucket}/${key}`;
    const d = new Deadline({ signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.timeoutMs }, 'destination', what);
    const { tap, sourceError, release } = tapUploadBody(body, opts, d);
    d.watchStall(opts.stallTimeoutMs ?? this.stallMs, () => (tap.readableLength > 0 || tap.writableLength > 0 ? 'destination' : 'source'));
    const expected = opts.adler32 ? normalizeAdler32(opts.adler32) : undefined;
    const Metadata = expected ? { [ADLER_META]: expected } : undefined;
    try {
      try {
        if (opts.size !== undefined && opts.size <= this.threshold) {
          await this.s3.send(
            new (sdk().s3.PutObjectCommand)({ Bucket: this.bucket, Key: key, Body: tap, ContentLength: opts.size, Metadata }),
            { abortSignal: d.signal },
          );
        } else {
          // Unknown or large: multipart, holding at most partSize x queueSize bytes in memory.
          const upload = new (sdk().storage.Upload)({
            client: this.s3,
            params: { Bucket: this.bucket, Key: key, Body: tap, Metadata },
            partSize: this.partSize,
            queueSize: this.queueSize,
            leavePartsOnError: false,
          });
          const onAbort = () => void upload.abort().catch(() => {});
          d.signal.addEventListener('abort', onAbort, { once: true });
          try {
            await upload.done();
          } finally {
            d.signal.removeEventListener('abort', onAbort);
          }
        }
      } catch (e) {
        const srcError = sourceError();
        if (srcError !== undefined && !d.aborted) {
          throw srcError instanceof TransferError ? srcError : toTransferError(srcError, 'source', `reading the source for ${what}`);
        }
        throw e;
      }
      const r = tap.result();
      if (opts.size !== undefined && r.size !== opts.size) {
        throw new TransferError('SizeMismatch', 'source', `${what}: sent ${r.size} bytes, expected ${opts.size}`);
      }
      if (expected && expected !== r.adler32) {
        throw new TransferError('ChecksumMismatch', 'source', `${what}: adler32 of the bytes sent is ${r.adler32}, expected ${expected}`);
      }
      return r;
    } catch (e) {
      const err = this.fail(d, e, 'destination', what);
      if (err.code !== 'PermissionDenied' && err.code !== 'Unauthorized' && err.code !== 'Unreachable') {
        await this.delete(path, { timeoutMs: CLEANUP_TIMEOUT_MS }).catch(() => {});
      }
      throw err;
    } finally {
      release();
      d.dispose();
    }
  }

  async delete(path: string, opts: CallOptions = {}): Promise<void> {
    const key = this.objectKey(path);
    const what = `DELETE s3://${this.bucket}/${key}`;
    const d = new Deadline(this.meta(opts), 'destination', what);
    try {
      await this.s3.send(new (sdk().s3.DeleteObjectCommand)({ Bucket: this.bucket, Key: key }), { abortSignal: d.signal });
    } catch (e) {
      const err = this.fail(d, e, 'destination', what);
      if (err.code !== 'NotFound' || d.aborted) throw err;
    } finally {
      d.dispose();
    }
  }

  /** S3 has no directories: keys with slashes are enough. */
  async mkdir(_path: string, opts: CallOptions = {}): Promise<void> {
    if (opts.signal?.aborted) throw new TransferError('Aborted', 'destination', 'mkdir aborted by the caller');
  }

  async list(path: string, opts: CallOptions = {}): Promise<ListEntry[]> {
    const base = this.objectKey(path);
    const prefix = base ? `${base}/` : '';
    const what = `list s3://${this.bucket}/${prefix}`;
    const d = new Deadline(this.meta(opts), 'source', what);
    const rel = (k: string) => k.split('/').slice(this.prefix.length).join('/');
    const out: ListEntry[] = [];
    try {
      let token: string | undefined;
      do {
        const r = await this.s3.send(
          new (sdk().s3.ListObjectsV2Command)({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }),
          { abortSignal: d.signal },
        );
        for (const p of r.CommonPrefixes ?? []) {
          const k = (p.Prefix ?? '').replace(/\/$/, '');
          out.push({ path: rel(k), name: k.split('/').pop()!, isDirectory: true });
        }
        for (const o of r.Contents ?? []) {
          if (!o.Key) continue;
          out.push({
            path: rel(o.Key),
            name: o.Key.split('/').pop()!,
            isDirectory: false,
            size: o.Size ?? 0,
            ...(o.LastModified ? { mtime: o.LastModified } : {}),
          });
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out;
    } catch (e) {
      throw this.fail(d, e, 'source', what);
    } finally {
      d.dispose();
    }
  }

  /** A presigned GET URL: the active TPC party needs no S3 credentials. */
  async tpcSource(path: string, opts: { expiresInSeconds?: number } = {}): Promise<TpcEndpoint> {
    const url = await sdk().presigner.getSignedUrl(this.s3, new (sdk().s3.GetObjectCommand)({ Bucket: this.bucket, Key: this.objectKey(path) }), {
      expiresIn: opts.expiresInSeconds ?? 3600,
    });
    return { url, headers: {} };
  }

  /** A presigned PUT URL for the active TPC party to push to. */
  async tpcDestination(path: string, opts: { expiresInSeconds?: number } = {}): Promise<TpcEndpoint> {
    const url = await sdk().presigner.getSignedUrl(this.s3, new (sdk().s3.PutObjectCommand)({ Bucket: this.bucket, Key: this.objectKey(path) }), {
      expiresIn: opts.expiresInSeconds ?? 3600,
    });
    return { url, headers: {} };
  }

  private meta(opts: CallOptions): { signal?: AbortSignal; timeoutMs?: number } {
    return { signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.metadataTimeoutMs };
  }

  private fail(d: Deadline, e: unknown, phase: TransferPhase, what: string): TransferError {
    if (d.aborted) return d.signal.reason as TransferError;
    return s3Error(e, phase, what);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const entry = shared.get(this.key);
    if (entry && --entry.refs <= 0) {
      shared.delete(this.key);
      entry.client.destroy();
    }
  }
}

const S3_CODES: Record<string, TransferCode> = {
  NotFound: 'NotFound',
  NoSuchKey: 'NotFound',
  NoSuchBucket: 'NotFound',
  AccessDenied: 'PermissionDenied',
  InvalidAccessKeyId: 'Unauthorized',
  SignatureDoesNotMatch: 'Unauthorized',
  SlowDown: 'Busy',
  ServiceUnavailable: 'Busy',
  InternalError: 'ServerError',
  RequestTimeout: 'Timeout',
  EntityTooLarge: 'NoSpace',
  BadDigest: 'ChecksumMismatch',
  IncompleteBody: 'SizeMismatch',
};

/** SDK errors carry a service error name and the HTTP status; network errors a node code. */
export function s3Error(e: unknown, phase: TransferPhase, what: string): TransferError {
  if (e instanceof TransferError) return e;
  const err = e as { name?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = err?.$metadata?.httpStatusCode;
  const name = err?.Code ?? err?.name;
  const mapped = name ? S3_CODES[name] : undefined;
  if (mapped || status) {
    const code = mapped ?? codeForStatus(status!);
    return new TransferError(code, phase, `${what}: ${name ?? ''} ${err?.message ?? ''}`.trim(), {
      cause: e,
      details: { ...(status ? { httpStatus: status } : {}), ...(name ? { s3Code: name } : {}) },
    });
  }
  return toTransferError(e, phase, what);
}
