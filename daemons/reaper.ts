/**
 * Reaper: deletes replicas nobody needs (no lock, tombstone passed) from storage through the
 * protocol layer, then from the catalogue. Per RSE, oldest tombstone first; only while the RSE
 * needs space (its quota_bytes minus a free margin), or everything due when greedy. Never a
 * replica with a lock or a live transfer request.
 *
 *   per RSE: claim a batch -> BEING_DELETED (SKIP LOCKED) -> storage delete (bounded concurrency)
 *   -> success: row deleted (only if still unlocked) | failure: state restored, error recorded,
 *   tombstone pushed back so it is retried later
 *
 * A rule that locks a BEING_DELETED replica meanwhile leaves it BEING_DELETED with a waiting
 * transfer request (core/locks.ts); when the storage delete is over, this daemon hands it over
 * as COPYING instead of deleting the row, and only then may the transfer run.
 */
import pLimit from 'p-limit';
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { storageConfigFor } from '../core/storage.ts';
import { createStorageClient, type StorageClient, type StorageConfig } from '../protocols/index.ts';
import { runLoop, type Daemon } from './loop.ts';

export interface ReaperOptions {
  intervalMs?: number;
  /** Delete every due replica, not only while an RSE needs space. */
  greedy?: boolean;
  /** Free fraction of quota_bytes the reaper keeps when not greedy (default 0.1). */
  freeRatio?: number;
  /** Replicas per RSE per runOnce. */
  batch?: number;
  /** Concurrent storage deletes per RSE. */
  concurrency?: number;
  deleteTimeoutMs?: number;
  /** After a failed storage delete, wait this long before trying again. */
  retryDelaySeconds?: number;
  /** A BEING_DELETED replica untouched this long belongs to a reaper that died: take it over. */
  staleSeconds?: number;
  /** Only these VOs (default all). */
  vos?: string[];
}

export interface ReaperDeps {
  sql: Sql;
  log: Logger;
  /** Storage client for an RSE; default protocols/createStorageClient. Tests may inject one. */
  storage?: (config: StorageConfig) => StorageClient;
}

interface RseRow {
  id: number;
  vo: string;
  name: string;
  prefix: string;
  quota_bytes: number | null;
  url: string;
  kind: 'http' | 's3';
  tpc: 'pull' | 'push' | 'both' | 'none';
  protocol_settings: Record<string, unknown>;
  settings: Record<string, unknown>;
}

export function createReaper(deps: ReaperDeps, options: ReaperOptions = {}): Daemon {
  const { sql, log } = deps;
  const makeClient = deps.storage ?? createStorageClient;
  const batch = options.batch ?? 1000;
  const freeRatio = options.freeRatio ?? 0.1;
  const retryDelay = options.retryDelaySeconds ?? 600;
  const stale = options.staleSeconds ?? 3600;

  /** Bytes to free on an RSE now (Infinity when greedy, 0 when it has room). */
  async function bytesToFree(rse: RseRow): Promise<number> {
    if (options.greedy) return Number.POSITIVE_INFINITY;
    if (rse.quota_bytes === null) return 0;
    const [{ used }] = await sql<{ used: number }[]>`
      select coalesce(sum(d.bytes), 0)::bigint as used from replicas r
      join dids d on d.vo = r.vo and d.scope = r.scope and d.name = r.name
      where r.rse_id = ${rse.id}`;
    return Math.max(0, used - rse.quota_bytes * (1 - freeRatio));
  }

  async function reapRse(rse: RseRow, signal?: AbortSignal): Promise<number> {
    const need = await bytesToFree(rse);
    if (need <= 0) return 0;
    // Before claiming: a client that cannot be built must not leave replicas BEING_DELETED.
    const client = makeClient(storageConfigFor(rse));
    type Claimed = { scope: string; name: string; path: string; old_state: string; bytes: number };
    const claimed = await sql<Claimed[]>`
      with locked as (
        select r.vo, r.scope, r.name, r.rse_id, r.state as old_state, r.path, r.tombstone
        from replicas r
        where r.rse_id = ${rse.id} and r.tombstone <= now() and r.lock_cnt = 0
          and (r.state <> 'BEING_DELETED' or r.updated_at < now() - make_interval(secs => ${stale}))
          and not exists (select 1 from requests q where q.vo = r.vo and q.scope = r.scope and q.name = r.name
                          and q.dest_rse_id = r.rse_id and q.state in ('QUEUED', 'ACTIVE'))
        order by r.tombstone, r.scope, r.name
        limit ${batch}
        for update of r skip locked
      ), due as (
        -- oldest first, only as many as free the bytes needed
        select l.*, d.bytes, sum(d.bytes) over (order by l.tombstone, l.scope, l.name) - d.bytes as before
        from locked l join dids d on d.vo = l.vo and d.scope = l.scope and d.name = l.name
      )
      update replicas r set state = 'BEING_DELETED', updated_at = now()
      from due
      where r.vo = due.vo and r.scope = due.scope and r.name = due.name and r.rse_id = due.rse_id
        and due.before < ${Number.isFinite(need) ? need : Number.MAX_SAFE_INTEGER}
      returning r.scope, r.name, r.path,
                case when due.old_state = 'BEING_DELETED' then 'AVAILABLE' else due.old_state end as old_state, due.bytes`;
    if (!claimed.length) {
      await client.close().catch(() => {});
      return 0;
    }
    const limit = pLimit(options.concurrency ?? 8);
    const deleted: Claimed[] = [];
    const failed: Array<Claimed & { error: string }> = [];
    try {
      await Promise.all(
        claimed.map((c) =>
          limit(async () => {
            try {
              // Idempotent in the protocol layer: a file already gone (404) counts as deleted.
              await client.delete(c.path, { signal, timeoutMs: options.deleteTimeoutMs ?? 60_000 });
              deleted.push(c);
            } catch (err) {
              failed.push({ ...c, error: (err as Error).message.slice(0, 2000) });
            }
          }),
        ),
      );
    } finally {
      await client.close().catch(() => {});
    }
    if (deleted.length) {
      const scopes = deleted.map((d) => d.scope);
      const names = deleted.map((d) => d.name);
      await sql.begin(async (tx) => {
        await tx`
          delete from replicas r
          using unnest(${scopes}::text[], ${names}::text[]) as t(scope, name)
          where r.vo = ${rse.vo} and r.rse_id = ${rse.id} and r.scope = t.scope and r.name = t.name
            and r.state = 'BEING_DELETED' and r.lock_cnt = 0`;
        // A rule locked some of these while their bytes were being deleted: the bytes are gone
        // now, and the transfer its lock asked for may start (it waited for this).
        await tx`
          update replicas r set state = 'COPYING', deletion_error = null, updated_at = now()
          from unnest(${scopes}::text[], ${names}::text[]) as t(scope, name)
          where r.vo = ${rse.vo} and r.rse_id = ${rse.id} and r.scope = t.scope and r.name = t.name
            and r.state = 'BEING_DELETED' and r.lock_cnt > 0`;
      });
    }
    if (failed.length) {
      log.warn({ rse: rse.name, failed: failed.length, first: failed[0].error }, 'storage deletes failed; replicas kept for a retry');
      await sql`
        -- The delete may have removed the bytes before it failed (a timeout, a reset): a replica
        -- locked meanwhile is copied again rather than trusted.
        update replicas r set state = case when r.lock_cnt > 0 then 'COPYING' else t.old_state end,
               deletion_error = t.error, deletion_attempts = r.deletion_attempts + 1,
               tombstone = now() + make_interval(secs => ${retryDelay}), updated_at = now()
        from unnest(${failed.map((d) => d.scope)}::text[], ${failed.map((d) => d.name)}::text[], ${failed.map((d) => d.old_state)}::text[],
                    ${failed.map((d) => d.error)}::text[]) as t(scope, name, old_state, error)
        where r.vo = ${rse.vo} and r.rse_id = ${rse.id} and r.scope = t.scope and r.name = t.name and r.state = 'BEING_DELETED'`;
    }
    if (deleted.length) log.info({ rse: rse.name, deleted: deleted.length, bytes: deleted.reduce((s, d) => s + d.bytes, 0) }, 'replicas reaped');
    return deleted.length + failed.length;
  }

  async function runOnce(signal?: AbortSignal): Promise<number> {
    const rses = await sql<RseRow[]>`
      select r.id, r.vo, r.name, r.prefix, r.quota_bytes, e.url, e.kind, e.tpc, r.protocol_settings, e.settings
      from rses r join storage_endpoints e on e.id = r.endpoint_id
      where r.availability_delete and r.deleted_at is null
        ${options.vos ? sql`and r.vo = any(${options.vos}::text[])` : sql``}
        and exists (select 1 from replicas x where x.rse_id = r.id and x.tombstone <= now() and x.lock_cnt = 0)
      order by r.id`;
    let work = 0;
    for (const rse of rses) {
      if (signal?.aborted) break;
      try {
        work += await reapRse(rse, signal);
      } catch (err) {
        // One RSE's trouble (storage down, bad settings) must not stop the others.
        log.error({ err, rse: rse.name, vo: rse.vo }, 'reaping an RSE failed');
      }
    }
    return work;
  }

  return {
    runOnce,
    run: (signal) => runLoop('reaper', log, runOnce, signal, { intervalMs: options.intervalMs ?? 60_000 }),
  };
}
