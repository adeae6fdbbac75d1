import type { Readable } from 'node:stream';

/**
 * Every call takes these. `timeoutMs` bounds the whole operation (for `read`, until the returned
 * stream has ended); `stallTimeoutMs` bounds the time without any progress (no bytes, no perf
 * marker), which is what catches a hung server long before a generous overall timeout.
 */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  stallTimeoutMs?: number;
}

export interface StatResult {
  size: number;
  /** 8 lower-case hex digits, when the server offers it (Want-Digest, S3 metadata). */
  adler32?: string;
  /** lower-case hex. */
  md5?: string;
  isDirectory?: boolean;
  mtime?: Date;
}

export interface StatOptions extends CallOptions {
  /** Ask for a checksum (HTTP: Want-Digest). Defaults to true; false saves the server a checksum run. */
  checksum?: boolean;
}

export interface ReadResult {
  stream: Readable;
  /** From Content-Length; undefined if the server did not say. */
  size?: number;
}

export interface ReadOptions extends CallOptions {
  offset?: number;
  length?: number;
}

export interface WriteOptions extends CallOptions {
  /** Known length: sent as Content-Length and checked; unknown: chunked / multipart. */
  size?: number;
  /** Expected adler32 of the body; stored where the backend can (S3 metadata) and checked. */
  adler32?: string;
  md5?: boolean;
  /** Create missing parent directories first (default true). */
  createParents?: boolean;
  onProgress?: (bytes: number) => void;
}

export interface WriteResult {
  size: number;
  /** adler32 of the bytes sent, computed while they flowed. */
  adler32: string;
  md5?: string;
}

export interface ListEntry {
  /** Path relative to the RSE root, like the paths given to the client. */
  path: string;
  name: string;
  size?: number;
  isDirectory: boolean;
  mtime?: Date;
}

/** Where the active party of a TPC reads from or writes to, and the headers it must send there. */
export interface TpcEndpoint {
  url: string;
  headers: Record<string, string>;
}

export interface TpcOptions extends CallOptions {
  onProgress?: (bytes: number) => void;
  /** false: fail with Exists instead of overwriting (HTTP `Overwrite: F`). */
  overwrite?: boolean;
  /** What the copy expects; only the null protocol uses it (it has no bytes to move). */
  expected?: { size?: number; adler32?: string };
}

export interface TpcResult {
  /** Bytes the active party reported in its last perf marker (0 when it sent none). */
  bytes: number;
  markers: number;
}

export type TpcCapability = 'pull' | 'push' | 'both' | 'none';

export interface StorageClient {
  readonly kind: string;
  /** What this endpoint can do as the active party of a third-party copy. */
  readonly tpc: TpcCapability;

  stat(path: string, opts?: StatOptions): Promise<StatResult>;
  read(path: string, opts?: ReadOptions): Promise<ReadResult>;
  write(path: string, body: Readable | Uint8Array | string, opts?: WriteOptions): Promise<WriteResult>;
  /** Idempotent: a missing file is success. */
  delete(path: string, opts?: CallOptions): Promise<void>;
  /** Recursive and idempotent. */
  mkdir(path: string, opts?: CallOptions): Promise<void>;
  list(path: string, opts?: CallOptions): Promise<ListEntry[]>;
  /** Public URL of a path (no credentials in it). */
  url(path: string): string;

  /** URL + headers a remote TPC engine uses to read `path` (presigned on S3; bearer token on HTTP). */
  tpcSource(path: string, opts?: { expiresInSeconds?: number }): Promise<TpcEndpoint>;
  /** URL + headers a remote TPC engine uses to write `path`. */
  tpcDestination(path: string, opts?: { expiresInSeconds?: number }): Promise<TpcEndpoint>;
  /** This endpoint pulls `source` into `path` (HTTP COPY with Source:). */
  tpcPull?(path: string, source: TpcEndpoint, opts?: TpcOptions): Promise<TpcResult>;
  /** This endpoint pushes `path` to `destination` (HTTP COPY with Destination:). */
  tpcPush?(path: string, destination: TpcEndpoint, opts?: TpcOptions): Promise<TpcResult>;

  /** Forget cached knowledge that `dir` exists (after the server said the parent is missing). */
  forgetDir?(dir: string): void;

  /** Releases pooled connections once no client of the same endpoint uses them. */
  close(): Promise<void>;
}

export type StorageKind = 'http' | 's3' | 'null';

export interface StorageSettings {
  // S3
  bucket?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
  /** s3rver and some Ceph versions store aws-chunked framing as data: keep 'when_required' there. */
  checksumMode?: 'when_required' | 'when_supported';
  /** Objects above this (or of unknown size) go multipart; each part is buffered, so memory ~ partSize x queueSize. */
  multipartThresholdBytes?: number;
  partSizeBytes?: number;
  multipartQueueSize?: number;
  // HTTP
  /** Bearer token sent to this endpoint, and forwarded as TransferHeaderAuthorization in TPC. */
  token?: string;
  /** Keep-alive connections per origin. */
  connections?: number;
  // Timeouts (defaults for calls that do not pass their own)
  timeoutMs?: number;
  stallTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Null protocol: artificial latency per call. */
  delayMs?: number;
}

export interface StorageConfig {
  kind: StorageKind;
  /** scheme://host:port */
  url: string;
  /** Path prefix of the RSE on the endpoint ('/' for none). */
  prefix: string;
  tpc?: TpcCapability;
  settings?: StorageSettings;
}
