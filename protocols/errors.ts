import { SluiceError } from '../core/errors.ts';

/** Which side of a transfer a failure belongs to; the conveyor uses it to pick another source. */
export type TransferPhase = 'source' | 'destination' | 'transfer';

/**
 * Stable codes. `retryable` says whether the same attempt might succeed later without anyone
 * changing anything (a reset, a 503, a stall); a 404 or 403 will not fix itself.
 */
export const TransferCodes = {
  UnsupportedScheme: false,
  InvalidConfig: false,
  BadRequest: false,
  Unauthorized: false,
  PermissionDenied: false,
  NotFound: false,
  ParentMissing: false,
  Conflict: false,
  Exists: false,
  MethodNotAllowed: false,
  NoSpace: true,
  Busy: true,
  ServerError: true,
  Unreachable: true,
  ConnectionReset: true,
  Timeout: true,
  Stalled: true,
  SizeMismatch: true,
  ChecksumMismatch: true,
  TpcUnsupported: false,
  TpcFailed: true,
  TpcIncomplete: true,
  ProtocolError: true,
  Aborted: true,
} as const satisfies Record<string, boolean>;

export type TransferCode = keyof typeof TransferCodes;

export class TransferError extends SluiceError {
  declare readonly code: TransferCode;
  readonly phase: TransferPhase;

  constructor(
    code: TransferCode,
    phase: TransferPhase,
    message: string,
    options: { status?: number; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(code, message, {
      // The HTTP status of the storage reply, if any, is in details.httpStatus; `status` is what
      // the Sluice API would answer, and a storage failure is a bad gateway from its point of view.
      status: options.status ?? 502,
      retryable: options.retryable ?? TransferCodes[code],
      details: options.details,
      cause: options.cause,
    });
    this.phase = phase;
  }

  /** Same error, attributed to another phase (e.g. a remote 404 inside a TPC is the source's). */
  withPhase(phase: TransferPhase): TransferError {
    if (phase === this.phase) return this;
    return new TransferError(this.code, phase, this.message, {
      status: this.status,
      retryable: this.retryable,
      details: this.details,
      cause: this.cause,
    });
  }
}

export function isTransferError(e: unknown): e is TransferError {
  return e instanceof TransferError;
}

/** Maps an HTTP status of a storage reply to a code. */
export function codeForStatus(status: number): TransferCode {
  switch (status) {
    case 400:
      return 'BadRequest';
    case 401:
      return 'Unauthorized';
    case 403:
      return 'PermissionDenied';
    case 404:
    case 410:
      return 'NotFound';
    case 405:
    case 501:
      return 'MethodNotAllowed';
    case 408:
      return 'Timeout';
    case 409:
      return 'Conflict';
    case 412:
      return 'Exists';
    case 413:
    case 507:
      return 'NoSpace';
    case 423:
    case 429:
      return 'Busy';
    default:
      return status >= 500 ? 'ServerError' : 'ProtocolError';
  }
}

export function statusError(
  status: number,
  phase: TransferPhase,
  what: string,
  extra: { body?: string; url?: string; code?: TransferCode } = {},
): TransferError {
  const code = extra.code ?? codeForStatus(status);
  const body = extra.body?.trim().slice(0, 300);
  return new TransferError(code, phase, `${what}: HTTP ${status}${body ? ` (${body})` : ''}`, {
    details: { httpStatus: status, ...(extra.url ? { url: extra.url } : {}) },
  });
}

const RESET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);

/**
 * Classifies anything thrown by a network stack (undici, node:net, the AWS SDK's handler) into a
 * TransferError. Already-typed errors pass through untouched so that the first, most specific
 * classification wins.
 */
export function toTransferError(e: unknown, phase: TransferPhase, what: string): TransferError {
  if (e instanceof TransferError) return e;
  const err = e as { code?: string; name?: string; message?: string; cause?: unknown } | undefined;
  const code = err?.code ?? (err?.cause as { code?: string } | undefined)?.code;
  const msg = `${what}: ${err?.message ?? String(e)}`;
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new TransferError('Stalled', phase, `${what}: no data from the server in time (${code})`, { cause: e });
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    // We declared a length and the body we were given was shorter or longer: the source's fault.
    return new TransferError('SizeMismatch', 'source', `${what}: the body does not match the declared length`, { cause: e });
  }
  if (code && UNREACHABLE_CODES.has(code)) return new TransferError('Unreachable', phase, msg, { cause: e });
  if (code && RESET_CODES.has(code)) return new TransferError('ConnectionReset', phase, msg, { cause: e });
  if (err?.name === 'AbortError' || code === 'ABORT_ERR' || code === 'UND_ERR_ABORTED') {
    return new TransferError('Aborted', phase, msg, { cause: e });
  }
  return new TransferError('ProtocolError', phase, msg, { cause: e });
}
