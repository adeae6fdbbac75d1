/**
 * Endpoint status: probe results, automatic exclusion and readmission, manual bans, and daily
 * availability/reliability (what EGI's ARGO/SAM tests do for sites).
 *
 * Status of a storage endpoint (storage_endpoints.status):
 *   ok        every RSE on it passed its last probe
 *   degraded  some RSE failed, or the endpoint failed fewer than `excludeAfter` rounds in a row:
 *             still used
 *   excluded  `excludeAfter` consecutive failed rounds: no new transfers from or to it, until
 *             `readmitAfter` consecutive good rounds
 *   banned    by root, by hand, with a reason; only root lifts it (probes go on, for the record)
 *
 * Transfer selection reads the SQL view `usable_endpoints` (status ok or degraded) or calls
 * excludedEndpointIds() below.
 */
import type { Sql, TransactionSql } from './db.ts';
import { Conflict, NotFound } from './errors.ts';

export type EndpointStatus = 'ok' | 'degraded' | 'excluded' | 'banned';

/** Ids of endpoints that must not be a transfer's source or destination now (excluded or banned). */
export async function excludedEndpointIds(sql: Sql | TransactionSql): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`select id from storage_endpoints where status in ('excluded', 'banned') order by id`;
  return rows.map((r) => r.id);
}

// ---- the decision (pure) ----------------------------------------------------------------------

export interface ProbeResult {
  rseId: number;
  rse: string;
  ok: boolean;
  phase?: 'setup' | 'write' | 'read' | 'checksum' | 'delete';
  errorCode?: string;
  message?: string;
  durationMs: number;
}

export interface StatusState {
  status: EndpointStatus;
  status_reason: string | null;
  probe_failures: number;
  probe_successes: number;
}

export interface StatusPolicy {
  /** Consecutive failed rounds before exclusion (default 3). */
  excludeAfter: number;
  /** Consecutive good rounds before an excluded endpoint is used again (default 2). */
  readmitAfter: number;
}

function describeFailure(r: ProbeResult): string {
  return `${r.phase ?? 'probe'} on ${r.rse} failed${r.errorCode ? ` (${r.errorCode})` : ''}: ${(r.message ?? '').slice(0, 300)}`;
}

/**
 * The endpoint's next state after one probe round (one probe per RSE on it). A round fails when
 * every RSE failed: that is the endpoint (down, full, broken), not one VO's credentials or path.
 */
export function nextStatus(current: StatusState, results: ProbeResult[], policy: StatusPolicy): StatusState {
  const failed = results.filter((r) => !r.ok);
  const roundOk = failed.length < results.length;
  const failures = roundOk ? 0 : current.probe_failures + 1;
  const successes = roundOk ? current.probe_successes + 1 : 0;
  const keep = (status: EndpointStatus, status_reason: string | null): StatusState => ({ status, status_reason, probe_failures: failures, probe_successes: successes });
  if (current.status === 'banned') return keep('banned', current.status_reason);
  if (!roundOk) {
    const why = describeFailure(failed[0]);
    if (failures >= policy.excludeAfter) return keep('excluded', `${failures} consecutive probe rounds failed; last: ${why}`);
    if (current.status === 'excluded') return keep('excluded', `still failing probes; last: ${why}`);
    return keep('degraded', `probe round ${failures} of ${policy.excludeAfter} before exclusion failed: ${why}`);
  }
  if (current.status === 'excluded' && successes < policy.readmitAfter) {
    return keep('excluded', `recovering: ${successes} of ${policy.readmitAfter} good probe rounds before readmission; ${current.status_reason ?? ''}`.trim());
  }
  if (failed.length) return keep('degraded', `${failed.length} of ${results.length} RSEs fail probes: ${failed.map(describeFailure).join('; ')}`.slice(0, 2000));
  return keep('ok', current.status === 'excluded' ? `readmitted after ${successes} good probe rounds` : null);
}

// ---- recording --------------------------------------------------------------------------------

/** Stores a round's results and the endpoint's new status in one transaction; releases the probe claim. */
export async function recordProbeRound(
  sql: Sql,
  endpointId: number,
  owner: string,
  startedAt: Date,
  results: ProbeResult[],
  policy: StatusPolicy,
): Promise<StatusState | undefined> {
  return sql.begin(async (tx) => {
    const [current] = await tx<StatusState[]>`
      select status, status_reason, probe_failures, probe_successes from storage_endpoints where id = ${endpointId} for update`;
    if (!current) return undefined; // deleted meanwhile
    if (results.length) {
      await tx`
        insert into endpoint_probes (endpoint_id, rse_id, ok, phase, error_code, message, duration_ms, owner, started_at)
        select ${endpointId}, x.rse_id, x.ok, x.phase, x.error_code, x.message, x.duration_ms, ${owner}, ${startedAt}
        from jsonb_to_recordset(${tx.json(results.map((r) => ({ rse_id: r.rseId, ok: r.ok, phase: r.ok ? null : (r.phase ?? null), error_code: r.errorCode ?? null, message: r.message?.slice(0, 2000) ?? null, duration_ms: Math.round(r.durationMs) }))  as never)})
          as x(rse_id bigint, ok boolean, phase text, error_code text, message text, duration_ms integer)`;
    }
    const next = results.length ? nextStatus(current, results, policy) : current;
    await tx`
      update storage_endpoints set status = ${next.status}, status_reason = ${next.status_reason},
             probe_failures = ${next.probe_failures}, probe_successes = ${next.probe_successes},
             last_probe_at = now(), probe_owner = null, probe_lease_until = null
      where id = ${endpointId}`;
    return next;
  }) as Promise<StatusState | undefined>;
}

// ---- bans -------------------------------------------------------------------------------------

export async function banEndpoint(sql: Sql, name: string, reason: string, by: string): Promise<EndpointStatusView> {
  const rows = await sql`
    update storage_endpoints set status = 'banned', status_reason = ${reason}, banned_by = ${by}, banned_at = now()
    where name = ${name} returning id`;
  if (!rows.length) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  return getEndpointStatus(sql, name);
}

/** Lifts a ban: the endpoint is 'ok' again and the next probe rounds decide. */
export async function unbanEndpoint(sql: Sql, name: string): Promise<EndpointStatusView> {
  const [row] = await sql<{ status: string }[]>`select status from storage_endpoints where name = ${name}`;
  if (!row) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  if (row.status !== 'banned') throw new Conflict('EndpointNotBanned', `storage endpoint '${name}' is not banned (it is ${row.status})`);
  await sql`
    update storage_endpoints set status = 'ok', status_reason = 'ban lifted', banned_by = null, banned_at = null,
           probe_failures = 0, probe_successes = 0
    where name = ${name} and status = 'banned'`;
  return getEndpointStatus(sql, name);
}

// ---- views ------------------------------------------------------------------------------------

export interface EndpointStatusView {
  name: string;
  url: string;
  status: EndpointStatus;
  reason: string | null;
  since: Date;
  consecutive_failures: number;
  consecutive_successes: number;
  last_probe_at: Date | null;
  banned_by: string | null;
  last_probes: Array<{ rse: string | null; ok: boolean; phase: string | null; error_code: string | null; message: string | null; duration_ms: number; at: string }>;
}

function statusQuery(sql: Sql, name?: string) {
  return sql<EndpointStatusView[]>`
    select e.name, e.url, e.status, e.status_reason as reason, e.status_since as since,
           e.probe_failures as consecutive_failures, e.probe_successes as consecutive_successes,
           e.last_probe_at, e.banned_by,
           coalesce((select jsonb_agg(jsonb_build_object('rse', r.name, 'ok', p.ok, 'phase', p.phase, 'error_code', p.error_code,
                                                         'message', p.message, 'duration_ms', p.duration_ms, 'at', p.finished_at) order by p.id desc)
                     from (select * from endpoint_probes p where p.endpoint_id = e.id order by p.id desc limit 10) p
                     left join rses r on r.id = p.rse_id), '[]'::jsonb) as last_probes
    from storage_endpoints e
    ${name === undefined ? sql`` : sql`where e.name = ${name}`}
    order by e.name`;
}

export async function listEndpointStatus(sql: Sql): Promise<EndpointStatusView[]> {
  return statusQuery(sql);
}

export async function getEndpointStatus(sql: Sql, name: string): Promise<EndpointStatusView> {
  const [row] = await statusQuery(sql, name);
  if (!row) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  return row;
}

export interface DailyAvailability {
  day: string;
  /** Fraction of the day's observed time the endpoint was usable (ok or degraded); null: no data. */
  availability: number | null;
  /**
   * up / (time - scheduled downtime). Sluice keeps no downtime calendar, so scheduled downtime is
   * 0 and reliability equals availability.
   */
  reliability: number | null;
  observed_seconds: number;
  up_seconds: number;
  probes: number;
  probes_failed: number;
}

/**
 * Per UTC day, the last `days` days (today included, up to now): availability from the
 * endpoint's status timeline (endpoint_status_log), plus the day's probe counts.
 */
export async function endpointAvailability(sql: Sql, name: string, days: number): Promise<DailyAvailability[]> {
  const [ep] = await sql<{ id: number }[]>`select id from storage_endpoints where name = ${name}`;
  if (!ep) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  return sql<DailyAvailability[]>`
    with days as (
      -- timestamptz throughout; days are UTC days whatever the session's time zone
      select d as day, d + interval '24 hours' as day_end
      from generate_series(date_trunc('day', now(), 'UTC') - make_interval(hours => 24 * (${days}::int - 1)),
                           date_trunc('day', now(), 'UTC'), interval '24 hours') d
    ), seg as (
      select status, at as s, coalesce(lead(at) over (order by at, id), now()) as e
      from endpoint_status_log where endpoint_id = ${ep.id}
    ), per_day as (
      select d.day,
             -- filter: least/greatest skip nulls, so a day with no segment would count whole
             coalesce(sum(extract(epoch from least(s.e, d.day_end) - greatest(s.s, d.day))) filter (where s.s is not null), 0) as observed,
             coalesce(sum(extract(epoch from least(s.e, d.day_end) - greatest(s.s, d.day))) filter (where s.status in ('ok', 'degraded')), 0) as up
      from days d left join seg s on s.s < d.day_end and s.e > d.day
      group by d.day
    ), probes as (
      select date_trunc('day', finished_at, 'UTC') as day, count(*)::int as n, (count(*) filter (where not ok))::int as failed
      from endpoint_probes
      where endpoint_id = ${ep.id} and finished_at >= date_trunc('day', now(), 'UTC') - make_interval(hours => 24 * (${days}::int - 1))
      group by 1
    )
    select to_char(p.day at time zone 'UTC', 'YYYY-MM-DD') as day,
           case when p.observed > 0 then round((p.up / p.observed)::numeric, 6)::float8 end as availability,
           case when p.observed > 0 then round((p.up / p.observed)::numeric, 6)::float8 end as reliability,
           round(p.observed)::int as observed_seconds, round(p.up)::int as up_seconds,
           coalesce(pr.n, 0) as probes, coalesce(pr.failed, 0) as probes_failed
    from per_day p left join probes pr on pr.day = p.day
    order by p.day`;
}
