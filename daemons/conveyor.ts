/**
 * Conveyor: executes the transfer requests that rules create.
 *
 *   runOnce:  recoverExpired (leases nobody extended -> Lost attempt, QUEUED)
 *             -> prepareRequests (source + link, or a waiting reason)
 *             -> per link with queued work: claimForLink (free slots: link limit, endpoint
 *                inbound/outbound, fair share; one statement; lease)
 *             -> start each claimed transfer: copyFile under the link's p-limit, timeout from size,
 *                AbortSignal per transfer
 *   meanwhile: heartbeat every lease/3 (extends leases, writes bytes_done; aborts transfers whose
 *              lease another conveyor took) and finishOutcomes in batches (attempt rows;
 *              DONE + replica AVAILABLE + locks OK | retry with backoff | FAILED + locks STUCK)
 *   drain:    stop claiming, let running transfers finish within the grace, then abort them and
 *              put them back in the queue uncounted.
 *
 * Every step's state is in PostgreSQL: a process killed at any moment loses nothing (its leases
 * expire and any conveyor recovers them), and a replica becomes AVAILABLE only in the transaction
 * that records a verified copy.
 */
import type { PolicyRegistry } from '../policies/registry.ts';
import { storageConfigFor } from '../core/storage.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pLimit, { type LimitFunction } from 'p-limit';
import { normalizeAdler32 } from '../core/checksum.ts';
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import {
  claimForLink,
  finishOutcomes,
  heartbeat,
  linksWithQueue,
  prepareRequests,
  recoverExpired,
  type ClaimedRequest,
  type Outcome,
  type TransferMode,
} from '../core/requests.ts';
import { linkHealth } from '../core/sources.ts';
import { classifyFailure, defaultTransferPlan, failureReason, retryDelayMs, transferTimeoutMs, type TransferPlanOptions } from '../core/transfer-plan.ts';
import { copyFile, createStorageClient, isTransferError, type CopyMode, type StorageClient, type StorageConfig } from '../protocols/index.ts';
import { createWaker, runLoop, type Daemon } from './loop.ts';

export interface ConveyorOptions {
  /** Unique per process; default hostname:pid:random. */
  owner?: string;
  /** Polling floor between iterations with nothing to do (LISTEN wakes earlier). */
  intervalMs?: number;
  leaseSeconds?: number;
  /** Heartbeat + progress flush period; default lease / 3. */
  heartbeatMs?: number;
  /** Transfers this process runs at once, over all links. */
  maxActive?: number;
  prepareBatch?: number;
  recoverBatch?: number;
  /** Requests with no source look again after this long. */
  waitRecheckSeconds?: number;
  stallTimeoutMs?: number;
  /** Outcomes recorded per transaction, and transactions at once. */
  finishBatch?: number;
  finishConcurrency?: number;
  /** Links claimed at once. */
  claimConcurrency?: number;
  plan?: Partial<TransferPlanOptions>;
  listen?: boolean;
}

export interface ConveyorDeps {
  sql: Sql;
  log: Logger;
  /** Builds the storage client of an RSE (tests and the dispatch benchmark inject the null protocol). */
  clientFactory?: (config: StorageConfig) => StorageClient;
  /** VO policy packages (rankSources); without them sources are ranked by Sluice alone. */
  policies?: PolicyRegistry;
}

export interface Conveyor extends Daemon {
  readonly owner: string;
  /** Stop claiming; wait up to graceMs for running transfers, then abort them back to the queue. */
  drain(graceMs: number): Promise<void>;
  /** Resolves when no transfer is running and every outcome is recorded (tests). */
  settle(): Promise<void>;
  /** Transfers running in this process. */
  active(): number;
}

interface Running {
  req: ClaimedRequest;
  ctl: AbortController;
  bytes: number;
  mode: TransferMode | null;
  /** Aborted by drain(): back to the queue, uncounted. */
  drained: boolean;
  /** Another conveyor has the lease now: record nothing. */
  lost: boolean;
  /** The copy ended; its outcome is being recorded. */
  finishing: boolean;
}

export function defaultOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export function createConveyor(deps: ConveyorDeps, options: ConveyorOptions = {}): Conveyor {
  const { sql, log } = deps;
  const owner = options.owner ?? defaultOwner();
  const leaseSeconds = options.leaseSeconds ?? 60;
  const heartbeatMs = options.heartbeatMs ?? Math.max(200, (leaseSeconds * 1000) / 3);
  const maxActive = options.maxActive ?? 500;
  const plan: TransferPlanOptions = { ...defaultTransferPlan, ...options.plan };
  const stallTimeoutMs = options.stallTimeoutMs ?? 60_000;
  const finishBatch = options.finishBatch ?? 500;
  const finishConcurrency = options.finishConcurrency ?? 3;
  const claimLimit = pLimit(options.claimConcurrency ?? 4);
  const factory = deps.clientFactory ?? createStorageClient;
  const waker = createWaker();

  const running = new Map<number, Running>();
  const linkLimits = new Map<number, LimitFunction>();
  const pending: Outcome[] = [];
  let flushing = 0;
  let draining = false;
  let lastHeartbeatOk = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let health: { at: number; map: Awaited<ReturnType<typeof linkHealth>> } | undefined;
  const idleWaiters: Array<() => void> = [];

  // ---- the cycle ------------------------------------------------------------------------------
  async function prepare(): Promise<number> {
    const prepared = await prepareRequests(sql, {
      batch: options.prepareBatch ?? 1000,
      recheckSeconds: options.waitRecheckSeconds ?? 30,
      health: await cachedHealth(),
      policies: deps.policies,
    });
    return prepared.assigned;
  }

  // In the running loop, sources are assigned beside claiming rather than before it: with
  // transfers in flight a batch of source choices takes long enough that slots freed meanwhile
  // would sit idle. Each finished batch wakes the loop to claim what it prepared.
  let preparing: Promise<void> | undefined;
  function prepareInBackground(): void {
    if (preparing) return;
    preparing = prepare()
      .then((assigned) => {
        if (assigned > 0) {
          waker.wake();
          // More may be waiting for a source: keep going until a batch comes back empty.
          preparing = undefined;
          prepareInBackground();
        }
      })
      .catch((err: unknown) => log.error({ err }, 'assigning sources failed; retrying next cycle'))
      .finally(() => {
        if (preparing) preparing = undefined;
      });
  }

  /** One cycle. `background`: the running loop's mode, where sources are assigned concurrently. */
  async function cycle(mode: { background?: boolean } = {}): Promise<number> {
    const recovered = await recoverExpired(sql, {
      batch: options.recoverBatch ?? 1000,
      defaultMaxAttempts: plan.maxAttempts,
      delayMs: (n) => retryDelayMs(n, plan),
    });
    if (recovered.requeued + recovered.failed > 0) log.warn({ ...recovered }, 'recovered transfers whose lease expired');
    let prepared = 0;
    if (mode.background) prepareInBackground();
    else prepared = await prepare();
    let claimed = 0;
    if (!draining) {
      const links = await linksWithQueue(sql);
      await Promise.all(
        links.map((linkId) =>
          claimLimit(async () => {
            const room = maxActive - running.size;
            if (room <= 0 || draining) return;
            const slots = await claimForLink(sql, linkId, { owner, leaseSeconds, max: room });
            for (const req of slots.claimed) start(req, slots.limit);
            claimed += slots.claimed.length;
          }),
        ),
      );
    }
    return recovered.requeued + recovered.failed + prepared + claimed;
  }

  async function cachedHealth() {
    if (!health || Date.now() - health.at > 10_000) {
      const ids = (await sql<{ id: number }[]>`select id from links`).map((r) => r.id);
      health = { at: Date.now(), map: await linkHealth(sql, ids, { queueCap: 1000 }) };
    }
    return health.map;
  }

  // ---- execution ------------------------------------------------------------------------------
  function start(req: ClaimedRequest, linkLimit: number): void {
    const t: Running = { req, ctl: new AbortController(), bytes: 0, mode: null, drained: false, lost: false, finishing: false };
    running.set(req.id, t);
    ensureTimer();
    let limit = linkLimits.get(req.link_id);
    if (!limit) linkLimits.set(req.link_id, (limit = pLimit(Math.max(1, linkLimit))));
    else if (limit.concurrency !== Math.max(1, linkLimit)) limit.concurrency = Math.max(1, linkLimit);
    void limit(() => execute(t)).then(
      (outcome) => settleTransfer(t, outcome),
      (err: unknown) => {
        log.error({ err, request: req.id }, 'transfer crashed; its lease will expire and another attempt follows');
        running.delete(req.id);
        notifyIdle();
      },
    );
  }

  async function execute(t: Running): Promise<Outcome | undefined> {
    const { req } = t;
    const began = performance.now();
    const base = () => ({ request: req, mode: t.mode, bytes: t.bytes, durationMs: performance.now() - began });
    const fail = (code: string, phase: string | null, retryable: boolean, message: string): Outcome => {
      const v = classifyFailure({ code, phase: phase ?? undefined, retryable, attempts: req.attempts, maxAttempts: req.max_attempts ?? plan.maxAttempts, otherSourceMayExist: true });
      const reason = failureReason({ code, phase: phase ?? undefined, message, attempts: req.attempts });
      return { ...base(), kind: 'failed', code, phase, retryable, message, verdict: v.action, delayMs: retryDelayMs(req.attempts, plan), reason };
    };
    if (req.dest_path === null) return fail('Cancelled', 'destination', false, 'the destination replica no longer exists (its rule was removed)');
    if (req.source_path === null) return fail('NotFound', 'source', false, 'the source replica was removed from the catalogue before the transfer started');
    let src: Endpoint;
    let dst: Endpoint;
    try {
      [src, dst] = await Promise.all([endpointFor(req.source_rse_id), endpointFor(req.dest_rse_id)]);
    } catch (e) {
      return fail('InvalidConfig', 'transfer', false, `cannot build a storage client: ${(e as Error).message}`);
    }
    const modes = allowedModes(src.modes, dst.modes);
    try {
      const r = await copyFile({
        source: { client: src.client, path: req.source_path },
        destination: { client: dst.client, path: req.dest_path },
        size: req.bytes,
        adler32: req.adler32,
        modes,
        signal: t.ctl.signal,
        timeoutMs: transferTimeoutMs(req.bytes, plan),
        stallTimeoutMs,
        onProgress: (bytes, mode) => {
          t.bytes = bytes;
          t.mode = mode;
        },
      });
      t.mode = r.mode;
      t.bytes = r.bytes;
      // copyFile verified the destination against what we passed; check its answer against the
      // catalogue once more, so that no code path can register bytes nobody compared.
      if (r.bytes !== req.bytes || !r.adler32 || normalizeAdler32(r.adler32) !== normalizeAdler32(req.adler32)) {
        await dst.client.delete(req.dest_path, { timeoutMs: 15_000 }).catch(() => {});
        return fail('ChecksumMismatch', 'destination', false, `destination has ${r.bytes} bytes / adler32 ${r.adler32 ?? 'unknown'}, the catalogue says ${req.bytes} / ${req.adler32}`);
      }
      return { ...base(), kind: 'done' };
    } catch (e) {
      if (t.lost) return undefined;
      if (t.drained) return { ...base(), kind: 'drained' };
      if (isTransferError(e)) {
        const attempts = (e.details?.attempts as Array<{ mode: CopyMode }> | undefined) ?? [];
        t.mode ??= attempts.at(-1)?.mode ?? null;
        return fail(e.code, e.phase, e.retryable, e.message);
      }
      return fail('InternalError', 'transfer', true, (e as Error).message ?? String(e));
    }
  }

  function settleTransfer(t: Running, outcome: Outcome | undefined): void {
    t.finishing = true;
    if (!outcome) {
      running.delete(t.req.id);
      notifyIdle();
      return;
    }
    const level = outcome.kind === 'failed' ? 'info' : 'debug';
    log[level](
      { request: t.req.id, did: `${t.req.scope}:${t.req.name}`, kind: outcome.kind, mode: outcome.mode, ...(outcome.kind === 'failed' ? { code: outcome.code, verdict: outcome.verdict } : {}) },
      outcome.kind === 'failed' ? `transfer failed: ${outcome.message}` : 'transfer finished',
    );
    pending.push(outcome);
    scheduleFlush();
  }

  // ---- finishing: outcomes recorded in batches --------------------------------------------------
  function scheduleFlush(): void {
    if (flushing >= finishConcurrency || pending.length === 0) return;
    flushing++;
    // One tick's worth of outcomes goes into one transaction.
    setImmediate(() => {
      const batch = pending.splice(0, finishBatch);
      flush(batch)
        .catch((err: unknown) => log.error({ err }, 'recording transfer outcomes failed'))
        .finally(() => {
          for (const o of batch) running.delete(o.request.id);
          flushing--;
          waker.wake();
          notifyIdle();
          scheduleFlush();
        });
    });
  }

  async function flush(batch: Outcome[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      await record(batch);
    } catch (err) {
      // One bad row must not keep the others unrecorded: one transaction each. A row that still
      // fails stays ACTIVE; its lease expires and recovery counts a Lost attempt.
      log.warn({ err, n: batch.length }, 'batch of outcomes failed; recording one by one');
      for (const o of batch) await record([o]).catch((e: unknown) => log.error({ err: e, request: o.request.id }, 'recording a transfer outcome failed'));
    }
  }

  async function record(batch: Outcome[]): Promise<void> {
    const { unwanted } = await finishOutcomes(sql, owner, batch);
    for (const r of unwanted) {
      const dst = await endpointFor(r.dest_rse_id).catch(() => undefined);
      await dst?.client.delete(r.dest_path!, { timeoutMs: 15_000 }).catch(() => {});
    }
  }

  // ---- leases ---------------------------------------------------------------------------------
  function ensureTimer(): void {
    if (timer) return;
    timer = setInterval(() => void beat(), heartbeatMs);
    timer.unref();
  }

  async function beat(): Promise<void> {
    if (running.size === 0) {
      clearInterval(timer);
      timer = undefined;
      return;
    }
    const list = [...running.values()];
    try {
      const owned = await heartbeat(sql, owner, leaseSeconds, {
        ids: list.map((t) => t.req.id),
        bytes: list.map((t) => t.bytes),
        modes: list.map((t) => t.mode),
      });
      lastHeartbeatOk = Date.now();
      for (const t of list) {
        // Not ours any more (and not just recorded): another conveyor took the expired lease.
        if (!owned.has(t.req.id) && !t.finishing) abortLost(t);
      }
    } catch (err) {
      log.warn({ err }, 'heartbeat failed');
      // Fence ourselves before the lease can expire: once it has, another conveyor may write the
      // same destination, and our late cleanup could remove its verified file.
      if (Date.now() - lastHeartbeatOk > leaseSeconds * 800) for (const t of list) abortLost(t);
    }
  }

  function abortLost(t: Running): void {
    if (t.lost || t.ctl.signal.aborted) return;
    t.lost = true;
    log.warn({ request: t.req.id }, 'lease lost; aborting the transfer');
    t.ctl.abort(new Error('lease lost'));
  }

  // ---- storage clients ------------------------------------------------------------------------
  interface Endpoint {
    client: StorageClient;
    modes: CopyMode[] | undefined;
  }
  const endpoints = new Map<number, { at: number; p: Promise<Endpoint> }>();

  function endpointFor(rseId: number): Promise<Endpoint> {
    const hit = endpoints.get(rseId);
    if (hit && Date.now() - hit.at < 60_000) return hit.p;
    const p = loadEndpoint(rseId);
    endpoints.set(rseId, { at: Date.now(), p });
    p.catch(() => endpoints.delete(rseId));
    // The client it replaces may still serve running transfers; pooled sockets are per origin.
    return p;
  }

  async function loadEndpoint(rseId: number): Promise<Endpoint> {
    const [row] = await sql<{ prefix: string; protocol_settings: Record<string, unknown>; url: string; kind: 'http' | 's3'; tpc: StorageConfig['tpc']; settings: Record<string, unknown> }[]>`
      select r.prefix, r.protocol_settings, e.url, e.kind, e.tpc, e.settings
      from rses r join storage_endpoints e on e.id = r.endpoint_id where r.id = ${rseId}`;
    if (!row) throw new Error(`RSE ${rseId} does not exist`);
    return { client: factory(storageConfigFor(row)), modes: parseModes(row.settings.modes) };
  }

  function notifyIdle(): void {
    if (running.size === 0 && pending.length === 0 && flushing === 0) for (const w of idleWaiters.splice(0)) w();
  }

  function settle(): Promise<void> {
    if (running.size === 0 && pending.length === 0 && flushing === 0) return Promise.resolve();
    return new Promise((resolve) => idleWaiters.push(resolve));
  }

  return {
    owner,
    // Tests step deterministically: sources are assigned before claiming, in the same call.
    runOnce: () => cycle(),
    settle,
    active: () => running.size,
    async run(signal) {
      let unlisten: (() => Promise<void>) | undefined;
      if (options.listen ?? true) {
        try {
          unlisten = (await sql.listen('sluice_requests', () => waker.wake())).unlisten;
        } catch (err) {
          log.warn({ err }, 'LISTEN failed; the conveyor polls only');
        }
      }
      try {
        await runLoop('conveyor', log, () => cycle({ background: true }), signal, { intervalMs: options.intervalMs ?? 1000 }, waker);
        await preparing;
      } finally {
        await unlisten?.().catch(() => {});
      }
    },
    async drain(graceMs) {
      draining = true;
      const idle = settle();
      const graceOver = await Promise.race([idle.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
      if (graceOver) {
        log.warn({ running: running.size }, 'grace period over: aborting running transfers, they go back to the queue');
        for (const t of running.values()) {
          if (t.lost || t.drained) continue;
          t.drained = true;
          t.ctl.abort(new Error('conveyor shutting down'));
        }
        await Promise.race([idle, new Promise((r) => setTimeout(r, 30_000).unref())]);
      }
      clearInterval(timer);
      timer = undefined;
      for (const e of endpoints.values()) void e.p.then((x) => x.client.close()).catch(() => {});
      endpoints.clear();
    },
  };
}

const ALL_MODES: CopyMode[] = ['tpc-pull', 'tpc-push', 'stream'];

/** Endpoint setting `modes` ("tpc-pull,stream"): the modes this endpoint takes part in. */
export function parseModes(raw: unknown): CopyMode[] | undefined {
  if (typeof raw !== 'string' || !raw.trim()) return undefined;
  const list = raw.split(',').map((s) => s.trim()).filter((s): s is CopyMode => (ALL_MODES as string[]).includes(s));
  return list.length ? list : undefined;
}

/** Pull, else push, else stream, minus what either endpoint's `modes` setting excludes. */
export function allowedModes(src?: CopyMode[], dst?: CopyMode[]): CopyMode[] {
  return ALL_MODES.filter((m) => (!src || src.includes(m)) && (!dst || dst.includes(m)));
}
