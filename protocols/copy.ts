import { posix } from 'node:path';
import { createAdler32, normalizeAdler32 } from '../core/checksum.ts';
import { Deadline } from './deadline.ts';
import { TransferError, type TransferCode } from './errors.ts';
import { splitPath } from './paths.ts';
import type { StorageClient } from './types.ts';

export type CopyMode = 'tpc-pull' | 'tpc-push' | 'stream';

export interface CopyRequest {
  source: { client: StorageClient; path: string };
  destination: { client: StorageClient; path: string };
  /** Expected size and adler32 (from the catalogue); the destination is verified against them. */
  size?: number;
  adler32?: string;
  /** Allowed modes, tried in this order when the endpoints can do them. Default: pull, push, stream. */
  modes?: CopyMode[];
  signal?: AbortSignal;
  /** Bounds the whole copy, every fallback and the verification included. */
  timeoutMs?: number;
  /** No progress (bytes or perf markers) for this long fails the attempt as Stalled. */
  stallTimeoutMs?: number;
  /** false: never replace an existing destination file (fails with Exists). Default true. */
  overwrite?: boolean;
  onProgress?: (bytes: number, mode: CopyMode) => void;
}

export interface CopyAttempt {
  mode: CopyMode;
  code?: TransferCode;
  message?: string;
}

export interface CopyResult {
  mode: CopyMode;
  bytes: number;
  durationMs: number;
  adler32?: string;
  /** Modes tried before the one that worked, with why they failed. */
  attempts: CopyAttempt[];
}

const DEFAULT_MODES: CopyMode[] = ['tpc-pull', 'tpc-push', 'stream'];
const CLEANUP_TIMEOUT_MS = 15_000;

// Failures that another mode cannot fix: the file is not there, the caller gave up, the deadline
// passed, or the destination must not be replaced.
const NO_FALLBACK = new Set<TransferCode>(['Aborted', 'Timeout', 'Exists', 'InvalidConfig', 'BadRequest']);

/** The modes this pair of endpoints can do, in the caller's order. */
export function plannedModes(source: StorageClient, destination: StorageClient, modes: CopyMode[] = DEFAULT_MODES): CopyMode[] {
  return modes.filter((m) => {
    if (m === 'tpc-pull') return !!destination.tpcPull && (destination.tpc === 'pull' || destination.tpc === 'both');
    if (m === 'tpc-push') return !!source.tpcPush && (source.tpc === 'push' || source.tpc === 'both');
    return true;
  });
}

/**
 * Copies one file: HTTP-TPC pull, then push, then streaming through this process (each only if
 * allowed and possible), creating the destination's parent first, verifying size and adler32 at
 * the destination, and removing a partial or wrong destination file after any failed attempt.
 * Throws TransferError; its details.attempts lists every mode tried.
 */
export async function copyFile(req: CopyRequest): Promise<CopyResult> {
  const { source, destination } = req;
  const started = performance.now();
  const expectedAdler = req.adler32 ? normalizeAdler32(req.adler32) : undefined;
  const plan = plannedModes(source.client, destination.client, req.modes);
  if (plan.length === 0) {
    throw new TransferError('TpcUnsupported', 'transfer', `none of the modes [${(req.modes ?? []).join(', ')}] is possible between these endpoints`);
  }
  const d = new Deadline({ signal: req.signal, timeoutMs: req.timeoutMs }, 'transfer', `copy ${source.client.url(source.path)} -> ${destination.client.url(destination.path)}`);
  const attempts: CopyAttempt[] = [];
  // '' is the RSE root itself, which may not exist yet on a fresh endpoint.
  const dir = posix.dirname(splitPath(destination.path).join('/')).replace(/^\.$/, '');
  try {
    await destination.client.mkdir(dir, { signal: d.signal });
    for (let i = 0; i < plan.length; i++) {
      const mode = plan[i];
      let parentRetried = false;
      for (;;) {
        try {
          const moved = await attempt(mode, req, d, expectedAdler);
          const verified = await verify(req, d, mode, moved.adler32, expectedAdler);
          return { mode, bytes: verified.size, durationMs: performance.now() - started, adler32: verified.adler32, attempts };
        } catch (e) {
          const err = d.fail(e);
          if (err.code !== 'Exists') await removeQuietly(destination.client, destination.path);
          // The directory cache said the parent exists but someone removed it: recreate once.
          if (err.code === 'ParentMissing' && !parentRetried && !d.aborted) {
            parentRetried = true;
            destination.client.forgetDir?.(dir);
            await destination.client.mkdir(dir, { signal: d.signal });
            continue;
          }
          attempts.push({ mode, code: err.code, message: err.message });
          const last = i === plan.length - 1;
          const hopeless = NO_FALLBACK.has(err.code) || (err.code === 'NotFound' && err.phase === 'source') || d.aborted;
          if (last || hopeless) {
            throw new TransferError(err.code, err.phase, err.message, {
              retryable: err.retryable,
              cause: err,
              details: { ...err.details, attempts },
            });
          }
          break;
        }
      }
    }
    throw new Error('unreachable');
  } catch (e) {
    throw d.fail(e);
  } finally {
    d.dispose();
  }
}

async function attempt(mode: CopyMode, req: CopyRequest, d: Deadline, expectedAdler?: string): Promise<{ adler32?: string }> {
  const { source, destination } = req;
  const common = {
    signal: d.signal,
    stallTimeoutMs: req.stallTimeoutMs,
    overwrite: req.overwrite,
    onProgress: req.onProgress ? (n: number) => req.onProgress!(n, mode) : undefined,
    expected: { size: req.size, adler32: expectedAdler },
  };
  if (mode === 'tpc-pull') {
    const from = await source.client.tpcSource(source.path);
    await destination.client.tpcPull!(destination.path, from, common);
    return {};
  }
  if (mode === 'tpc-push') {
    const to = await destination.client.tpcDestination(destination.path);
    await source.client.tpcPush!(source.path, to, common);
    return {};
  }
  if (req.overwrite === false) {
    const exists = await destination.client.stat(destination.path, { signal: d.signal, checksum: false }).then(
      () => true,
      (e: unknown) => (e instanceof TransferError && e.code === 'NotFound' ? false : Promise.reject(e)),
    );
    if (exists) throw new TransferError('Exists', 'destination', `${destination.client.url(destination.path)} exists and overwrite is off`);
  }
  const r = await source.client.read(source.path, { signal: d.signal, stallTimeoutMs: req.stallTimeoutMs });
  if (req.size !== undefined && r.size !== undefined && r.size !== req.size) {
    r.stream.destroy();
    throw new TransferError('SizeMismatch', 'source', `${source.client.url(source.path)} is ${r.size} bytes, expected ${req.size}`);
  }
  try {
    const w = await destination.client.write(destination.path, r.stream, {
      size: req.size ?? r.size,
      adler32: expectedAdler,
      signal: d.signal,
      stallTimeoutMs: req.stallTimeoutMs,
      createParents: false,
      onProgress: common.onProgress,
    });
    return { adler32: w.adler32 };
  } finally {
    if (!r.stream.destroyed) r.stream.destroy();
  }
}

/**
 * Size and adler32 as the destination reports them. When it cannot report a checksum (plain
 * WebDAV, S3 without our metadata): after a stream copy, the checksum of the bytes we sent,
 * whose size the destination confirmed; after a TPC, nobody saw the bytes, so read them back.
 */
async function verify(
  req: CopyRequest,
  d: Deadline,
  mode: CopyMode,
  streamed: string | undefined,
  expectedAdler?: string,
): Promise<{ size: number; adler32?: string }> {
  const dst = req.destination;
  const st = await dst.client.stat(dst.path, { signal: d.signal, checksum: true }).catch((e: unknown) => {
    throw e instanceof TransferError ? e.withPhase('destination') : e;
  });
  if (req.size !== undefined && st.size !== req.size) {
    throw new TransferError('SizeMismatch', 'destination', `${dst.client.url(dst.path)} is ${st.size} bytes after the copy, expected ${req.size}`);
  }
  let adler = st.adler32 ?? (mode === 'stream' ? streamed : undefined);
  if (!adler && expectedAdler) adler = await readBackAdler32(dst.client, dst.path, d);
  if (expectedAdler && adler !== expectedAdler) {
    throw new TransferError('ChecksumMismatch', 'destination', `${dst.client.url(dst.path)} has adler32 ${adler}, expected ${expectedAdler}`, {
      details: { expected: expectedAdler, actual: adler },
    });
  }
  return { size: st.size, ...(adler ? { adler32: adler } : {}) };
}

async function readBackAdler32(client: StorageClient, path: string, d: Deadline): Promise<string> {
  const r = await client.read(path, { signal: d.signal });
  const a = createAdler32();
  try {
    for await (const chunk of r.stream) a.update(chunk as Buffer);
  } catch (e) {
    throw e instanceof TransferError ? e.withPhase('destination') : e;
  }
  return a.hex();
}

async function removeQuietly(client: StorageClient, path: string): Promise<void> {
  try {
    await client.delete(path, { timeoutMs: CLEANUP_TIMEOUT_MS });
  } catch {
    // The attempt's error is what matters; a leftover is overwritten by the next attempt.
  }
}
