/**
 * The one loop every daemon runs: call runOnce, sleep, repeat until the signal aborts.
 * - work done (runOnce > 0): go again at once, there is probably more;
 * - nothing to do: sleep intervalMs +- jitter (so many processes do not poll in step);
 * - an error: log it, back off exponentially up to maxBackoffMs, and go on (a loop never dies
 *   of one bad iteration).
 * A waker (LISTEN/NOTIFY) can cut a sleep short; polling remains the correctness floor.
 */
import type { Logger } from '../core/log.ts';
import { recordDaemonIteration } from '../core/metrics.ts';

export interface Daemon {
  /** One deterministic step; resolves to the amount of work done (0: nothing to do). */
  runOnce(signal?: AbortSignal): Promise<number>;
  /** Loops runOnce until `signal` aborts; never rejects because of an iteration's error. */
  run(signal: AbortSignal): Promise<void>;
}

export interface LoopOptions {
  intervalMs: number;
  /** Fraction of the interval added or removed at random (default 0.2). */
  jitter?: number;
  /** Cap of the error backoff (default 60 s; starts at intervalMs). */
  maxBackoffMs?: number;
  /**
   * Sees every iteration's duration and outcome; default: the Prometheus metrics of
   * core/metrics.ts (sluice_daemon_iteration_duration_seconds, sluice_daemon_errors_total).
   */
  observe?: (daemon: string, seconds: number, outcome: 'work' | 'idle' | 'error') => void;
}

export interface Waker {
  wake(): void;
  /** Resolves after ms, on wake(), or when the signal aborts, whichever comes first. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export function createWaker(): Waker {
  let pending: (() => void) | undefined;
  let woken = false;
  return {
    wake() {
      if (pending) pending();
      else woken = true;
    },
    sleep(ms, signal) {
      if (woken || signal.aborted) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          pending = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
        pending = done;
      });
    },
  };
}

export async function runLoop(
  name: string,
  log: Logger,
  runOnce: (signal: AbortSignal) => Promise<number>,
  signal: AbortSignal,
  options: LoopOptions,
  waker: Waker = createWaker(),
): Promise<void> {
  const jitter = options.jitter ?? 0.2;
  const maxBackoff = options.maxBackoffMs ?? 60_000;
  const observe = options.observe ?? recordDaemonIteration;
  let failures = 0;
  log.info({ daemon: name }, 'daemon started');
  while (!signal.aborted) {
    let delay: number;
    const started = performance.now();
    try {
      const work = await runOnce(signal);
      observe(name, (performance.now() - started) / 1000, work > 0 ? 'work' : 'idle');
      failures = 0;
      delay = work > 0 ? 0 : options.intervalMs * (1 + jitter * (2 * Math.random() - 1));
    } catch (err) {
      if (signal.aborted) break;
      observe(name, (performance.now() - started) / 1000, 'error');
      failures++;
      delay = Math.min(maxBackoff, options.intervalMs * 2 ** Math.min(failures, 20));
      log.error({ daemon: name, err, failures, retryInMs: Math.round(delay) }, 'daemon iteration failed');
    }
    if (delay > 0) await waker.sleep(delay, signal);
  }
  log.info({ daemon: name }, 'daemon stopped');
}
