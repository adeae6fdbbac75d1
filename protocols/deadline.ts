import { TransferError, toTransferError, type TransferPhase } from './errors.ts';

/**
 * One AbortSignal per operation that fires on the caller's signal, on the overall timeout, or on
 * a stall (no progress for `stallMs`). Its `reason` is always a TransferError, so whatever the
 * network stack throws after an abort, `fail()` turns it into the reason that actually caused it
 * (a timeout is Timeout, not "request aborted").
 */
export class Deadline {
  private readonly controller = new AbortController();
  private timer?: NodeJS.Timeout;
  private stallTimer?: NodeJS.Timeout;
  private stallMs = 0;
  private stallPhase: () => TransferPhase;
  private readonly onCallerAbort: () => void;

  constructor(
    private readonly opts: { signal?: AbortSignal; timeoutMs?: number; stallMs?: number },
    private readonly phase: TransferPhase,
    private readonly what: string,
  ) {
    this.stallPhase = () => phase;
    this.onCallerAbort = () =>
      this.abort(new TransferError('Aborted', phase, `${what}: aborted by the caller`, { cause: opts.signal?.reason }));
    if (opts.signal?.aborted) this.onCallerAbort();
    else opts.signal?.addEventListener('abort', this.onCallerAbort, { once: true });
    if (opts.timeoutMs && opts.timeoutMs > 0 && opts.timeoutMs < 2 ** 31) {
      this.timer = setTimeout(
        () => this.abort(new TransferError('Timeout', phase, `${what}: timed out after ${opts.timeoutMs} ms`)),
        opts.timeoutMs,
      );
      this.timer.unref?.();
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  /** Starts the stall watchdog; `phaseOf` decides who stalled when it fires. */
  watchStall(stallMs: number | undefined, phaseOf?: () => TransferPhase): void {
    if (!stallMs || stallMs <= 0) return;
    this.stallMs = stallMs;
    if (phaseOf) this.stallPhase = phaseOf;
    this.progress();
  }

  /** Call on every sign of life (bytes moved, a perf marker). */
  progress(): void {
    if (!this.stallMs || this.aborted) return;
    if (this.stallTimer) {
      this.stallTimer.refresh();
      return;
    }
    this.stallTimer = setTimeout(() => {
      this.abort(
        new TransferError('Stalled', this.stallPhase(), `${this.what}: no progress for ${this.stallMs} ms`),
      );
    }, this.stallMs);
    this.stallTimer.unref?.();
  }

  abort(reason: TransferError): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** Throws the abort reason if the operation has already been cut off. */
  throwIfAborted(): void {
    if (this.aborted) throw this.controller.signal.reason as TransferError;
  }

  /** The error to surface for `e`: the abort reason wins, then typed errors, then classification. */
  fail(e: unknown, phase: TransferPhase = this.phase, what: string = this.what): TransferError {
    if (this.aborted) return this.controller.signal.reason as TransferError;
    return toTransferError(e, phase, what);
  }

  dispose(): void {
    clearTimeout(this.timer);
    clearTimeout(this.stallTimer);
    this.opts.signal?.removeEventListener('abort', this.onCallerAbort);
  }
}
