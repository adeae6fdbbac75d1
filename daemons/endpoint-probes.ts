/**
 * Endpoint prober: every `everySeconds`, on every storage endpoint, for every RSE on it: write a
 * small file, read it back, compare checksums (the bytes read, and the server's own adler32 when
 * it offers one), delete it. Results go to endpoint_probes; the endpoint's status follows
 * (core/probes.ts nextStatus: exclusion after consecutive failed rounds, readmission after good
 * ones).
 *
 *   claim due endpoints (conditional UPDATE with a lease: one probe at a time per endpoint,
 *   whatever the number of probers) -> probe their RSEs (bounded concurrency) -> record round
 *
 * A prober that dies leaves a lease that expires; the endpoint is probed again after it.
 */
import pLimit from 'p-limit';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { adler32Hex } from '../core/checksum.ts';
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { recordProbeRound, type ProbeResult, type StatusPolicy } from '../core/probes.ts';
import { createStorageClient, isTransferError, type StorageClient, type StorageConfig } from '../protocols/index.ts';
import { storageConfigFor } from '../core/storage.ts';
import { runLoop, type Daemon } from './loop.ts';

export interface EndpointProberOptions {
  /** Loop tick: how often to look for due endpoints (default 5 s). */
  intervalMs?: number;
  /** Probe each endpoint this often (default 300 s). */
  everySeconds?: number;
  excludeAfter?: number;
  readmitAfter?: number;
  /** Size of the probe file (default 1 KiB). */
  fileBytes?: number;
  /** Bound of each storage call (default 30 s). */
  timeoutMs?: number;
  /** Endpoints probed at once (default 4); RSEs of one endpoint are probed one after another. */
  concurrency?: number;
  /** How long a claim holds before another prober may take the endpoint over (default 300 s). */
  leaseSeconds?: number;
  owner?: string;
}

export interface EndpointProberDeps {
  sql: Sql;
  log: Logger;
  /** Storage client for an RSE; default protocols/createStorageClient. */
  storage?: (config: StorageConfig) => StorageClient;
}

type Claimed = { id: number; name: string };
type RseRow = { id: number; name: string; prefix: string; url: string; kind: 'http' | 's3'; tpc: 'pull' | 'push' | 'both' | 'none'; protocol_settings: Record<string, unknown> };

/** Where probe files go, under each RSE's prefix (never a path lfn2pfn produces: it starts with a dot). */
export const PROBE_DIR = '.sluice-probes';

export function createEndpointProber(deps: EndpointProberDeps, options: EndpointProberOptions = {}): Daemon {
  const { sql, log } = deps;
  const makeClient = deps.storage ?? createStorageClient;
  const every = options.everySeconds ?? 300;
  const lease = options.leaseSeconds ?? 300;
  const owner = options.owner ?? `${hostname()}:${process.pid}:probes`;
  const policy: StatusPolicy = { excludeAfter: options.excludeAfter ?? 3, readmitAfter: options.readmitAfter ?? 2 };
  const size = options.fileBytes ?? 1024;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const limit = pLimit(options.concurrency ?? 4);

  async function probeRse(rse: RseRow, signal?: AbortSignal): Promise<ProbeResult> {
    const started = performance.now();
    const result = (ok: boolean, extra: Partial<ProbeResult> = {}): ProbeResult => ({ rseId: rse.id, rse: rse.name, ok, durationMs: performance.now() - started, ...extra });
    let phase: ProbeResult['phase'] = 'setup';
    let client: StorageClient | undefined;
    const path = `${PROBE_DIR}/probe-${Date.now()}-${randomBytes(4).toString('hex')}`;
    try {
      client = makeClient(storageConfigFor(rse));
      const body = randomBytes(size);
      const expected = adler32Hex(body);
      phase = 'write';
      await client.write(path, body, { size, adler32: expected, signal, timeoutMs });
      phase = 'read';
      const { stream } = await client.read(path, { signal, timeoutMs });
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
      const got = Buffer.concat(chunks);
      phase = 'checksum';
      if (got.length !== size || adler32Hex(got) !== expected) {
        throw Object.assign(new Error(`read back ${got.length} bytes with adler32 ${adler32Hex(got)}; wrote ${size} bytes with ${expected}`), { code: 'ChecksumMismatch' });
      }
      const st = await client.stat(path, { signal, timeoutMs, checksum: true });
      if (st.size !== size) throw Object.assign(new Error(`server reports ${st.size} bytes; wrote ${size}`), { code: 'SizeMismatch' });
      if (st.adler32 && st.adler32 !== expected) throw Object.assign(new Error(`server reports adler32 ${st.adler32}; wrote ${expected}`), { code: 'ChecksumMismatch' });
      phase = 'delete';
      await client.delete(path, { signal, timeoutMs });
      return result(true);
    } catch (err) {
      const e = err as Error & { code?: unknown };
      const code = isTransferError(err) ? err.code : typeof e.code === 'string' ? e.code : 'ProbeFailed';
      // Best effort: a probe that failed after writing must not leave its file behind.
      if (client && phase !== 'write' && phase !== 'setup' && phase !== 'delete') await client.delete(path, { timeoutMs }).catch(() => {});
      return result(false, { phase, errorCode: code, message: e.message });
    } finally {
      await client?.close().catch(() => {});
    }
  }

  async function probeEndpoint(ep: Claimed, signal?: AbortSignal): Promise<void> {
    const startedAt = new Date();
    const rses = await sql<RseRow[]>`
      select r.id, r.name, r.prefix, e.url, e.kind, e.tpc, r.protocol_settings
      from rses r join storage_endpoints e on e.id = r.endpoint_id
      where r.endpoint_id = ${ep.id} and r.deleted_at is null order by r.id`;
    const results: ProbeResult[] = [];
    for (const rse of rses) {
      if (signal?.aborted) break;
      results.push(await probeRse(rse, signal));
    }
    if (signal?.aborted) return; // the lease expires; the round was not complete
    const next = await recordProbeRound(sql, ep.id, owner, startedAt, results, policy);
    const failed = results.filter((r) => !r.ok);
    if (failed.length) log.warn({ endpoint: ep.name, status: next?.status, failed: failed.map((f) => ({ rse: f.rse, phase: f.phase, code: f.errorCode })) }, 'endpoint probe failed');
    else log.debug({ endpoint: ep.name, status: next?.status, rses: results.length }, 'endpoint probe ok');
  }

  async function runOnce(signal?: AbortSignal): Promise<number> {
    // One statement: only endpoints whose last probe is due and whose claim is free or expired.
    const claimed = await sql<Claimed[]>`
      update storage_endpoints e set probe_owner = ${owner}, probe_lease_until = now() + make_interval(secs => ${lease})
      where e.id in (
        select id from storage_endpoints
        where (last_probe_at is null or last_probe_at <= now() - make_interval(secs => ${every}))
          and (probe_lease_until is null or probe_lease_until < now())
        order by last_probe_at nulls first
        limit 50
        for update skip locked)
      returning e.id, e.name`;
    await Promise.all(
      claimed.map((ep) =>
        limit(async () => {
          try {
            await probeEndpoint(ep, signal);
          } catch (err) {
            log.error({ err, endpoint: ep.name }, 'probing an endpoint failed');
            await sql`update storage_endpoints set probe_owner = null, probe_lease_until = now() + interval '30 seconds' where id = ${ep.id} and probe_owner = ${owner}`.catch(() => {});
          }
        }),
      ),
    );
    return claimed.length;
  }

  return {
    runOnce,
    run: (signal) => runLoop('endpoint-probes', log, runOnce, signal, { intervalMs: options.intervalMs ?? 5000 }),
  };
}
