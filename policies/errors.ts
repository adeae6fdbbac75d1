import { SluiceError } from '../core/errors.ts';
import type { PolicyHook } from './types.ts';

export type PolicyErrorCode =
  /** The VO's package could not be loaded (import failed, wrong shape, incompatible apiVersion). */
  | 'PolicyLoadFailed'
  /** A hook ran over its time budget; its worker was restarted. */
  | 'PolicyTimeout'
  /** A hook threw (or its worker died). */
  | 'PolicyHookFailed'
  /** A hook returned something Sluice cannot use (absolute path, unknown RSE, wrong type, ...). */
  | 'PolicyInvalidResult';

/**
 * A VO's policy package failed the current request. Only that request fails: the caller gets the
 * code, the package and the hook, and nothing was written. 5xx because the client did nothing
 * wrong; a timeout or a load failure may pass after the VO's admin fixes the package (503).
 */
export class PolicyError extends SluiceError {
  readonly package: string;
  readonly hook: PolicyHook | 'load';
  readonly vo?: string;

  constructor(code: PolicyErrorCode, message: string, where: { package: string; hook: PolicyHook | 'load'; vo?: string; cause?: unknown; reason?: string }) {
    const status = code === 'PolicyTimeout' || code === 'PolicyLoadFailed' ? 503 : 500;
    super(code, message, {
      status,
      retryable: code === 'PolicyTimeout',
      cause: where.cause,
      details: { package: where.package, hook: where.hook, ...(where.vo ? { vo: where.vo } : {}), ...(where.reason ? { reason: where.reason } : {}) },
    });
    this.package = where.package;
    this.hook = where.hook;
    this.vo = where.vo;
  }
}

export function isPolicyError(e: unknown): e is PolicyError {
  return e instanceof PolicyError;
}
