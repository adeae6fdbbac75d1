/**
 * One error type for the whole code base. Callers branch on `code` (stable, CamelCase, part of
 * the API contract) and on `retryable`, never on the message. The API maps these to
 * `{error: {code, message}}` with `status` in one place (api/app.ts).
 */
export class SluiceError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(
    code: string,
    message: string,
    options: { status?: number; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

type Extra = { details?: Record<string, unknown>; cause?: unknown };

/** 400: the request is malformed or a value is out of its allowed domain. */
export class InvalidInput extends SluiceError {
  constructor(code: string, message: string, extra: Extra = {}) {
    super(code, message, { status: 400, ...extra });
  }
}

/** 401: no credentials, or credentials that do not verify. */
export class Unauthorized extends SluiceError {
  constructor(message: string, code = 'Unauthorized', extra: Extra = {}) {
    super(code, message, { status: 401, ...extra });
  }
}

/** 403: the caller is known but may not do this. */
export class Forbidden extends SluiceError {
  constructor(message: string, code = 'Forbidden', extra: Extra = {}) {
    super(code, message, { status: 403, ...extra });
  }
}

/** 404: the named thing does not exist in the caller's VO (or exists only in another VO). */
export class NotFound extends SluiceError {
  constructor(code: string, message: string, extra: Extra = {}) {
    super(code, message, { status: 404, ...extra });
  }
}

/** 409: the request conflicts with the current state (duplicates, closed datasets, cycles). */
export class Conflict extends SluiceError {
  constructor(code: string, message: string, extra: Extra = {}) {
    super(code, message, { status: 409, ...extra });
  }
}

/** 503: a dependency (database, storage) is unavailable; retrying later may help. */
export class Unavailable extends SluiceError {
  constructor(code: string, message: string, extra: Extra = {}) {
    super(code, message, { status: 503, retryable: true, ...extra });
  }
}

export function isSluiceError(e: unknown): e is SluiceError {
  return e instanceof SluiceError;
}

/** Postgres SQLSTATE of a driver error, if any (branch on codes, never on message text). */
export function pgCode(e: unknown): string | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    const code = (e as { code: string }).code;
    return /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  }
  return undefined;
}

export const PG = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
} as const;
