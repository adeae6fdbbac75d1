/**
 * Link statistics per link, VO and minute (kept a day) or hour (kept 30 days), from
 * transfer_attempts: bytes and mean duration of successful attempts, files done, files failed by
 * error class. Rolled up set-based by daemons/link-stats.ts; read by GET /v1/links/{id}/stats.
 *
 * The rollup recomputes whole minutes from their source and replaces them (idempotent: running
 * it twice, or in two processes, gives the same rows). Minutes the rollup has not completed (at
 * least the last two) are read live from transfer_attempts, so throughput on the dashboard moves
 * as attempts finish, not only when the daemon has run.
 */
import type { Sql, TransactionSql } from './db.ts';
import { InvalidInput, NotFound } from './errors.ts';

export const MINUTE_RETENTION_HOURS = 24;
export const HOUR_RETENTION_DAYS = 30;

/** Recomputes every minute in [from, to) (from is rounded down to its minute). Returns rows written. */
export async function rollupMinutes(sql: Sql | TransactionSql, from: Date, to: Date): Promise<number> {
  const rows = await sql`
    with src as (
      select a.link_id, a.vo, date_trunc('minute', a.finished_at) as minute, a.error_code, a.bytes, a.duration_ms
      from links l cross join lateral (
        -- per link: a range scan of transfer_attempts_link (link_id, finished_at)
        select t.link_id, t.vo, t.finished_at, t.error_code, t.bytes, t.duration_ms from transfer_attempts t
        where t.link_id = l.id and t.finished_at >= date_trunc('minute', ${from}::timestamptz) and t.finished_at < ${to}::timestamptz) a
    ), by_class as (
      select link_id, vo, minute, jsonb_object_agg(error_code, n) as failed_by_class
      from (select link_id, vo, minute, error_code, count(*) as n from src where error_code is not null group by 1, 2, 3, 4) x
      group by 1, 2, 3
    ), agg as (
      select link_id, vo, minute,
             coalesce(sum(bytes) filter (where error_code is null), 0) as bytes,
             count(*) filter (where error_code is null) as files_done,
             count(*) filter (where error_code is not null) as files_failed,
             coalesce(sum(duration_ms) filter (where error_code is null), 0) as duration_ms_sum
      from src group by 1, 2, 3
    ), stale as (
      -- minutes of the window whose attempts are gone (request deleted): no row, not an old one
      delete from link_stats_minute m
      where m.minute >= date_trunc('minute', ${from}::timestamptz) and m.minute < ${to}::timestamptz
        and not exists (select 1 from agg where agg.link_id = m.link_id and agg.vo = m.vo and agg.minute = m.minute)
    )
    insert into link_stats_minute as s (link_id, vo, minute, bytes, files_done, files_failed, failed_by_class, duration_ms_sum)
    select a.link_id, a.vo, a.minute, a.bytes, a.files_done, a.files_failed, coalesce(b.failed_by_class, '{}'::jsonb), a.duration_ms_sum
    from agg a left join by_class b using (link_id, vo, minute)
    order by a.link_id, a.minute, a.vo
    on conflict (link_id, minute, vo) do update set
      bytes = excluded.bytes, files_done = excluded.files_done, files_failed = excluded.files_failed,
      failed_by_class = excluded.failed_by_class, duration_ms_sum = excluded.duration_ms_sum
    returning 1`;
  return rows.length;
}

/** Recomputes every hour from `from` (rounded down to its hour) on from the minute rows. */
export async function rollupHours(sql: Sql | TransactionSql, from: Date): Promise<number> {
  const rows = await sql`
    with m as (
      select link_id, vo, date_trunc('hour', minute) as hour, bytes, files_done, files_failed, failed_by_class, duration_ms_sum
      from link_stats_minute where minute >= date_trunc('hour', ${from}::timestamptz)
    ), by_class as (
      select link_id, vo, hour, jsonb_object_agg(k, n) as failed_by_class
      from (select link_id, vo, hour, e.key as k, sum(e.value::bigint) as n
            from m cross join lateral jsonb_each_text(m.failed_by_class) e group by 1, 2, 3, 4) x
      group by 1, 2, 3
    ), agg as (
      select link_id, vo, hour, sum(bytes) as bytes, sum(files_done) as files_done, sum(files_failed) as files_failed,
             sum(duration_ms_sum) as duration_ms_sum
      from m group by 1, 2, 3
    )
    insert into link_stats_hour as s (link_id, vo, hour, bytes, files_done, files_failed, failed_by_class, duration_ms_sum)
    select a.link_id, a.vo, a.hour, a.bytes, a.files_done, a.files_failed, coalesce(b.failed_by_class, '{}'::jsonb), a.duration_ms_sum
    from agg a left join by_class b using (link_id, vo, hour)
    order by a.link_id, a.hour, a.vo
    on conflict (link_id, hour, vo) do update set
      bytes = excluded.bytes, files_done = excluded.files_done, files_failed = excluded.files_failed,
      failed_by_class = excluded.failed_by_class, duration_ms_sum = excluded.duration_ms_sum
    returning 1`;
  return rows.length;
}

/** Deletes minute rows older than a day and hour rows older than 30 days: the tables stay bounded. */
export async function pruneLinkStats(sql: Sql | TransactionSql, opts: { minuteHours?: number; hourDays?: number } = {}): Promise<number> {
  const a = await sql`delete from link_stats_minute where minute < now() - make_interval(hours => ${opts.minuteHours ?? MINUTE_RETENTION_HOURS})`;
  const b = await sql`delete from link_stats_hour where hour < now() - make_interval(days => ${opts.hourDays ?? HOUR_RETENTION_DAYS})`;
  return a.count + b.count;
}

// ---- reading ----------------------------------------------------------------------------------

export interface StatsPoint {
  t: Date;
  bytes: number;
  bytes_per_second: number;
  files_done: number;
  files_failed: number;
  failed_by_class: Record<string, number>;
  mean_duration_ms: number | null;
}

export interface LinkStats {
  link_id: number;
  step: number;
  from: Date;
  to: Date;
  /** Totals over the VOs the caller may see, one point per step (zeros where nothing happened). */
  points: StatsPoint[];
  /** The same per VO (only buckets with data). */
  by_vo: Array<StatsPoint & { vo: string }>;
}

export const MAX_POINTS = 2000;

/**
 * Statistics of one link in [from, to) by `step` seconds (a multiple of 60; steps of an hour or
 * more read the hourly table, which reaches back 30 days; shorter steps the minute table, a day).
 * `vo`: only that VO's figures.
 */
export async function linkStats(sql: Sql, linkId: number, q: { from: Date; to: Date; step: number; vo?: string }): Promise<LinkStats> {
  const { from, to, step } = q;
  if (step % 60 !== 0) throw new InvalidInput('InvalidStep', `step must be a multiple of 60 seconds, got ${step}`);
  if (to <= from) throw new InvalidInput('InvalidRange', "'to' must be after 'from'");
  if ((to.getTime() - from.getTime()) / 1000 / step > MAX_POINTS) {
    throw new InvalidInput('TooManyPoints', `from..to by step ${step}s gives more than ${MAX_POINTS} points; widen the step or narrow the range`);
  }
  const [link] = await sql`select 1 from links where id = ${linkId}`;
  if (!link) throw new NotFound('LinkNotFound', `link ${linkId} does not exist`);
  const hourly = step >= 3600 && step % 3600 === 0;
  const voCond = q.vo === undefined ? sql`` : sql`and vo = ${q.vo}`;
  const stepInterval = `${step} seconds`;
  // Rows per (bucket, vo): from the rollup table, with the last two minutes live from the attempts.
  const source = hourly
    ? sql`select hour as at, vo, bytes, files_done, files_failed, failed_by_class, duration_ms_sum
          from link_stats_hour where link_id = ${linkId} and hour >= date_trunc('hour', ${from}::timestamptz) and hour < ${to}::timestamptz ${voCond}`
    : sql`select minute as at, vo, bytes, files_done, files_failed, failed_by_class, duration_ms_sum
          from link_stats_minute where link_id = ${linkId} and minute >= ${from}::timestamptz and minute < ${to}::timestamptz
            and minute < (select live_from from live) ${voCond}
          union all
          select date_trunc('minute', finished_at), vo,
                 coalesce(sum(bytes) filter (where error_code is null), 0), count(*) filter (where error_code is null),
                 count(*) filter (where error_code is not null),
                 case when error_code is null then '{}'::jsonb else jsonb_build_object(error_code, count(*)) end,
                 coalesce(sum(duration_ms) filter (where error_code is null), 0)
          from transfer_attempts
          where link_id = ${linkId} and finished_at >= greatest(${from}::timestamptz, (select live_from from live))
            and finished_at < ${to}::timestamptz ${voCond}
          group by 1, 2, error_code`;
  type Row = { t: Date; vo: string; bytes: number; files_done: number; files_failed: number; failed_by_class: Record<string, number>; duration_ms_sum: number };
  const rows = await sql<Row[]>`
    with live as (
      -- minutes the rollup has not completed yet (or all of them if it never ran) are read live
      select date_trunc('minute', least(coalesce((select done_until from rollup_watermarks where name = 'link_stats_minute'), '-infinity'::timestamptz),
                                        now() - interval '1 minute')) as live_from
    ),
    src as (${source}),
    binned as (
      select date_bin(${stepInterval}::interval, at, 'epoch'::timestamptz) as t, vo, bytes, files_done, files_failed, failed_by_class, duration_ms_sum from src
    ), cls as (
      select t, vo, jsonb_object_agg(k, n) as failed_by_class
      from (select t, vo, e.key as k, sum(e.value::bigint) as n from binned cross join lateral jsonb_each_text(binned.failed_by_class) e group by 1, 2, 3) x
      group by 1, 2
    )
    select b.t, b.vo, sum(b.bytes)::bigint as bytes, sum(b.files_done)::int as files_done, sum(b.files_failed)::int as files_failed,
           coalesce(c.failed_by_class, '{}'::jsonb) as failed_by_class, sum(b.duration_ms_sum)::bigint as duration_ms_sum
    from binned b left join cls c using (t, vo)
    group by b.t, b.vo, c.failed_by_class
    order by b.t, b.vo`;
  const nowMs = Date.now();
  // The bucket still in progress is divided by the time elapsed in it, not by the whole step.
  const seconds = (t: Date) => Math.max(1, Math.min(step, (nowMs - t.getTime()) / 1000));
  const point = (t: Date, r: Omit<Row, 't' | 'vo'>): StatsPoint => ({
    t,
    bytes: r.bytes,
    bytes_per_second: Math.round((r.bytes / seconds(t)) * 100) / 100,
    files_done: r.files_done,
    files_failed: r.files_failed,
    failed_by_class: r.failed_by_class,
    mean_duration_ms: r.files_done ? Math.round(r.duration_ms_sum / r.files_done) : null,
  });
  const by_vo = rows.map((r) => ({ vo: r.vo, ...point(r.t, r) }));
  // Totals with zero buckets, so that charts show quiet time as quiet.
  const totals = new Map<number, Omit<Row, 't' | 'vo'>>();
  for (const r of rows) {
    const k = r.t.getTime();
    const cur = totals.get(k) ?? { bytes: 0, files_done: 0, files_failed: 0, failed_by_class: {}, duration_ms_sum: 0 };
    cur.bytes += r.bytes;
    cur.files_done += r.files_done;
    cur.files_failed += r.files_failed;
    cur.duration_ms_sum += r.duration_ms_sum;
    for (const [c, n] of Object.entries(r.failed_by_class)) cur.failed_by_class[c] = (cur.failed_by_class[c] ?? 0) + Number(n);
    totals.set(k, cur);
  }
  const points: StatsPoint[] = [];
  const stepMs = step * 1000;
  for (let t = Math.floor(from.getTime() / stepMs) * stepMs; t < to.getTime(); t += stepMs) {
    points.push(point(new Date(t), totals.get(t) ?? { bytes: 0, files_done: 0, files_failed: 0, failed_by_class: {}, duration_ms_sum: 0 }));
  }
  return { link_id: linkId, step, from, to, points, by_vo };
}
