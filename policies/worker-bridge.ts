/**
 * One custom policy package running in its own worker thread. A synchronous hook that never
 * returns cannot be interrupted on the main thread, so untrusted package code never runs there:
 * every call is a message with a time budget, and a call over budget terminates the worker (the
 * next call starts a fresh one). Calls are sent one at a time, so a budget measures the hook, not
 * the queue in front of it.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../core/log.ts';
import { PolicyError } from './errors.ts';
import type { PolicyHook } from './types.ts';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker-main.ts';

const WORKER_ENTRY = new URL('./worker.mjs', import.meta.url);

export interface WorkerPolicyOptions {
  /** What the VO named (for messages). */
  source: string;
  /** file: URL or bare module name to import in the worker. */
  url: string;
  vo?: string;
  /** Import + shape check, per (re)start. */
  loadTimeoutMs: number;
  /** Heap cap of the worker: a runaway package hits it, not the server. */
  maxHeapMb: number;
  log?: Logger;
}

type Call = { hook: PolicyHook; message: Omit<WorkerRequest, 'id'> };

export interface LoadedShape {
  name: string;
  apiVersion: number;
  hooks: PolicyHook[];
}

export class PolicyWorker {
  private worker?: Worker;
  private starting?: Promise<LoadedShape>;
  private pending?: { id: number; resolve: (v: unknown) => void; reject: (e: Error) => void; hook: PolicyHook; timer: NodeJS.Timeout };
  private nextId = 1;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  shape?: LoadedShape;
  restarts = 0;

  constructor(private readonly opts: WorkerPolicyOptions) {}

  get packageName(): string {
    return this.shape?.name ?? this.opts.source;
  }

  /** Starts the worker and checks the package; throws PolicyError PolicyLoadFailed. */
  start(): Promise<LoadedShape> {
    if (this.closed) return Promise.reject(this.loadError('the policy registry is closed'));
    if (this.worker && this.shape) return Promise.resolve(this.shape);
    this.starting ??= this.spawn().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private loadError(message: string, reason?: string): PolicyError {
    return new PolicyError('PolicyLoadFailed', `policy package ${message}`, { package: this.opts.source, hook: 'load', vo: this.opts.vo, reason });
  }

  private spawn(): Promise<LoadedShape> {
    return new Promise<LoadedShape>((resolve, reject) => {
      const worker = new Worker(WORKER_ENTRY, {
        workerData: { url: this.opts.url, source: this.opts.source } satisfies WorkerInit,
        resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb },
        // The package's own console output still reaches the server's stdout/stderr.
        stdout: false,
        stderr: false,
      });
      let settled = false;
      const fail = (e: PolicyError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        void worker.terminate();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(this.loadError(`'${this.opts.source}' did not load within ${this.opts.loadTimeoutMs} ms (a top-level loop, or a slow import?)`, 'timeout')),
        this.opts.loadTimeoutMs,
      );
      timer.unref();
      worker.on('message', (m: WorkerReply) => {
        if (m.type === 'ready' && !settled) {
          settled = true;
          clearTimeout(timer);
          // Idle workers do not keep the process alive (a CLI or benchmark that is done exits);
          // exec() refs the worker while a call is outstanding. (unref only after the listeners:
          // adding a 'message' listener refs a worker again.)
          worker.unref();
          this.worker = worker;
          this.shape = { name: m.name, apiVersion: m.apiVersion, hooks: m.hooks as PolicyHook[] };
          resolve(this.shape);
        } else if (m.type === 'load-error') {
          fail(this.loadError(m.message, m.code));
        } else if (m.type === 'result') {
          this.settle(m);
        }
      });
      worker.on('error', (e) => {
        if (!settled) fail(this.loadError(`'${this.opts.source}' failed to load: ${e.message}`, 'crash'));
        else this.died(worker, `its worker crashed: ${e.message}`);
      });
      worker.on('exit', (code) => {
        if (!settled) fail(this.loadError(`'${this.opts.source}' worker exited (code ${code}) while loading`, 'crash'));
        else this.died(worker, `its worker exited (code ${code})`);
      });
    });
  }

  private died(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      clearTimeout(p.timer);
      this.opts.log?.error({ vo: this.opts.vo, package: this.packageName, hook: p.hook }, `policy package ${why}`);
      p.reject(new PolicyError('PolicyHookFailed', `policy '${this.packageName}' ${p.hook} failed: ${why}; it is restarted for the next call`, { package: this.packageName, hook: p.hook, vo: this.opts.vo }));
    }
  }

  private settle(m: Extract<WorkerReply, { type: 'result' }>): void {
    const p = this.pending;
    if (!p || p.id !== m.id) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else {
      const code = m.invalid ? 'PolicyInvalidResult' : 'PolicyHookFailed';
      const item = m.item === undefined ? '' : ` (item ${m.item})`;
      p.reject(new PolicyError(code, `policy '${this.packageName}' ${p.hook}${item} ${m.invalid ? '' : 'threw: '}${m.message}`, { package: this.packageName, hook: p.hook, vo: this.opts.vo }));
    }
  }

  /** One hook call (a whole batch for the batch hooks), after the calls before it. */
  call(call: Call, budgetMs: number): Promise<unknown> {
    const run = this.tail.then(() => this.exec(call, budgetMs));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async exec(call: Call, budgetMs: number): Promise<unknown> {
    if (!this.worker) {
      if (this.shape) this.restarts++;
      await this.start();
    }
    const worker = this.worker!;
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        if (this.pending?.id !== id) return;
        this.pending = undefined;
        worker.unref();
        // The only way to stop a synchronous loop: end the thread. The next call restarts it.
        this.worker = undefined;
        void worker.terminate();
        this.opts.log?.error({ vo: this.opts.vo, package: this.packageName, hook: call.hook, budgetMs }, 'policy hook ran over its time budget; worker terminated');
        reject(
          new PolicyError('PolicyTimeout', `policy '${this.packageName}' ${call.hook} did not answer within ${budgetMs} ms; it was stopped and is restarted for the next call`, {
            package: this.packageName,
            hook: call.hook,
            vo: this.opts.vo,
          }),
        );
      }, budgetMs);
      timer.unref();
      const done = <T,>(f: (v: T) => void) => (v: T) => {
        worker.unref();
        f(v);
      };
      this.pending = { id, resolve: done(resolve), reject: done(reject), hook: call.hook, timer };
      worker.ref();
      worker.postMessage({ ...call.message, id } as WorkerRequest);
    });
  }

  /** Resolves when the calls queued so far are done (each is bounded by its budget). */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }

  async terminate(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (this.pending) {
      clearTimeout(this.pending.timer);
      this.pending.reject(new PolicyError('PolicyHookFailed', `policy '${this.packageName}' was unloaded`, { package: this.packageName, hook: this.pending.hook, vo: this.opts.vo }));
      this.pending = undefined;
    }
    if (w) await w.terminate();
  }
}
