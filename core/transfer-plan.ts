/**
 * Pure transfer policy: how long an attempt may take, how long a retry waits, and whether a
 * failure is worth another attempt. No I/O; the conveyor (daemons/conveyor.ts) applies it.
 */

export interface TransferPlanOptions {
  /** Fixed part of an attempt's timeout (connection, TPC set-up, verification). */
  timeoutBaseMs: number;
  /** Slowest transfer rate tolerated before the size-dependent part of the timeout runs out. */
  minRateBytesPerSecond: number;
  /** Upper bound of the timeout, however large the file. */
  timeoutMaxMs: number;
  /** First retry delay; doubles per failed attempt. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Fraction of the delay drawn at random (0.5: 50 %..100 % of the nominal delay). */
  backoffJitter: number;
  /** Attempts per request before it fails for good (a request may override). */
  maxAttempts: number;
}

export const defaultTransferPlan: TransferPlanOptions = {
  timeoutBaseMs: 60_000,
  minRateBytesPerSecond: 1 << 20,
  timeoutMaxMs: 6 * 3600_000,
  backoffBaseMs: 5_000,
  backoffMaxMs: 3600_000,
  backoffJitter: 0.5,
  maxAttempts: 5,
};

/** Timeout of one attempt: base + size / minimum rate, capped. */
export function transferTimeoutMs(bytes: number, o: TransferPlanOptions = defaultTransferPlan): number {
  const sized = o.timeoutBaseMs + (Math.max(0, bytes) / Math.max(1, o.minRateBytesPerSecond)) * 1000;
  return Math.round(Math.min(o.timeoutMaxMs, sized));
}

/**
 * Delay before attempt `failed + 1`, after `failed` failed attempts: base * 2^(failed-1), capped,
 * with jitter so that a burst of failures on one link does not come back as one burst.
 */
export function retryDelayMs(failed: number, o: TransferPlanOptions = defaultTransferPlan, random: () => number = Math.random): number {
  const nominal = Math.min(o.backoffMaxMs, o.backoffBaseMs * 2 ** Math.max(0, Math.min(failed - 1, 30)));
  const j = Math.min(1, Math.max(0, o.backoffJitter));
  return Math.round(nominal * (1 - j + j * random()));
}

export type FailureVerdict =
  /** Try again after a backoff (same or another source). */
  | { action: 'retry'; preferOtherSource: boolean }
  /** Give up: the locks become STUCK with the reason. */
  | { action: 'fail' };

export interface FailureFacts {
  code: string;
  phase?: string;
  retryable: boolean;
  /** Attempts made so far, this one included. */
  attempts: number;
  maxAttempts: number;
  /** Whether another AVAILABLE source could be tried. */
  otherSourceMayExist?: boolean;
}

/**
 * Retry or fail. A checksum mismatch at the destination is fatal (the bytes arrived and were
 * wrong: retrying the same copy hides corruption); a non-retryable failure on the source side
 * (404, 403 at the source) is worth one more attempt from another source when one may exist;
 * otherwise the error's own retryable flag decides, within the attempt budget.
 */
export function classifyFailure(f: FailureFacts): FailureVerdict {
  if (f.attempts >= f.maxAttempts) return { action: 'fail' };
  if (f.code === 'ChecksumMismatch') return { action: 'fail' };
  if (f.code === 'Aborted' || f.code === 'Lost') return { action: 'retry', preferOtherSource: false };
  if (f.phase === 'source' && !f.retryable) return f.otherSourceMayExist ? { action: 'retry', preferOtherSource: true } : { action: 'fail' };
  if (!f.retryable) return { action: 'fail' };
  return { action: 'retry', preferOtherSource: f.phase === 'source' || f.phase === undefined || f.phase === 'transfer' };
}

/** One line a user can act on, as stored on the request and the STUCK locks. */
export function failureReason(f: { code: string; phase?: string; message: string; attempts: number; source?: string }): string {
  const where = f.phase ? ` (${f.phase})` : '';
  const from = f.source ? ` from ${f.source}` : '';
  return `${f.code}${where} after ${f.attempts} attempt${f.attempts === 1 ? '' : 's'}${from}: ${f.message}`.slice(0, 4000);
}
