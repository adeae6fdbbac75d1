import { Readable } from 'node:stream';
import { ChecksumStream } from '../core/checksum.ts';
import type { Deadline } from './deadline.ts';

/**
 * The bytes of an upload, checksummed as they flow (adler32, and md5 when asked), counting as
 * progress for the deadline's stall detection. A failing source destroys the tap and is kept in
 * `sourceError()`, so the writer can blame the source rather than the destination.
 */
export function tapUploadBody(
  body: Readable | Uint8Array | string,
  opts: { md5?: boolean; onProgress?: (bytes: number) => void },
  d: Deadline,
): { tap: ChecksumStream; sourceError(): unknown; release(): void } {
  let srcError: unknown;
  const tap = new ChecksumStream({
    md5: opts.md5,
    onData: (n) => {
      d.progress();
      opts.onProgress?.(n);
    },
  });
  const src = body instanceof Readable ? body : Readable.from([typeof body === 'string' ? Buffer.from(body) : body]);
  src.on('error', (e) => {
    srcError = e;
    tap.destroy(e);
  });
  // Errors reach the caller through the request or sourceError(); this keeps a late write after
  // destroy from becoming an unhandled 'error' event.
  tap.on('error', () => {});
  src.pipe(tap);
  return {
    tap,
    sourceError: () => srcError,
    /** Detach an unfinished source (the request failed or ended early). */
    release: () => {
      if (!src.readableEnded) src.unpipe(tap);
    },
  };
}
