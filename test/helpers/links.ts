import type { Sql } from '../../core/db.ts';

/**
 * A link between two endpoints with requests and finished attempts on it, written straight into
 * the tables the conveyor fills, so link views and the optimizer can be tested without moving bytes.
 */
export async function seedLink(sql: Sql, opts: { vo: string; src: string; dst: string; dstRse: string; limit?: number }) {
  const [link] = await sql<{ id: number }[]>`
    insert into links (src_endpoint_id, dst_endpoint_id, limit_active)
    select s.id, d.id, ${opts.limit ?? 10} from storage_endpoints s, storage_endpoints d where s.name = ${opts.src} and d.name = ${opts.dst}
    on conflict (src_endpoint_id, dst_endpoint_id) do update set limit_active = excluded.limit_active
    returning id`;
  const [rse] = await sql<{ id: number }[]>`select id from rses where vo = ${opts.vo} and name = ${opts.dstRse}`;
  return { linkId: link.id, rseId: rse.id };
}

let serial = 0;

/** n requests on the link in `state`, for files created on the fly in scope `data`. */
export async function addRequests(sql: Sql, opts: { vo: string; linkId: number; rseId: number; n: number; state: 'QUEUED' | 'ACTIVE'; bytes?: number; activity?: string }) {
  const base = serial;
  serial += opts.n;
  await sql`
    insert into dids (vo, scope, name, type, account, bytes, adler32)
    select ${opts.vo}, 'data', 'lf.' || i, 'FILE', 'admin', ${opts.bytes ?? 1000}, '00000001'
    from generate_series(${base}::int, ${base + opts.n - 1}::int) i`;
  const rows = await sql<{ id: number }[]>`
    insert into requests (vo, scope, name, dest_rse_id, state, bytes, adler32, activity, link_id, source_rse_id, lease_owner, lease_expires_at, started_at)
    select ${opts.vo}, 'data', 'lf.' || i, ${opts.rseId}, ${opts.state}, ${opts.bytes ?? 1000}, '00000001', ${opts.activity ?? 'default'},
           ${opts.linkId}, ${opts.rseId},
           case when ${opts.state} = 'ACTIVE' then 'test' end, case when ${opts.state} = 'ACTIVE' then now() + interval '1 hour' end,
           case when ${opts.state} = 'ACTIVE' then now() end
    from generate_series(${base}::int, ${base + opts.n - 1}::int) i
    returning id`;
  return rows.map((r) => r.id);
}

/**
 * Finished attempts on the link within the last few seconds: `ok` successes of `bytes` each,
 * `failed` failures, each having taken `durationMs` (default 1 s).
 */
export async function addAttempts(sql: Sql, opts: { vo: string; linkId: number; rseId: number; requestIds: number[]; ok: number; failed?: number; bytes: number; durationMs?: number }) {
  const duration = opts.durationMs ?? 1000;
  const ids = opts.requestIds;
  const n = opts.ok + (opts.failed ?? 0);
  await sql`
    insert into transfer_attempts (request_id, vo, attempt, source_rse_id, dest_rse_id, link_id, mode, bytes, duration_ms, error_code, retryable, started_at, finished_at)
    select (${ids}::bigint[])[1 + (i % ${ids.length}::int)], ${opts.vo}, 1, ${opts.rseId}, ${opts.rseId}, ${opts.linkId}, 'tpc-pull',
           case when i < ${opts.ok} then ${opts.bytes} else 0 end, ${duration},
           case when i < ${opts.ok} then null else 'ServerError' end, case when i < ${opts.ok} then null else true end,
           now() - make_interval(secs => (i % 5) + ${duration / 1000}), now() - make_interval(secs => (i % 5))
    from generate_series(0, ${n - 1}::int) i`;
}
