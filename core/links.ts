/**
 * Links as admins see them: per (source endpoint -> destination endpoint) pair, the limit the
 * optimizer chose, current load, recent throughput and success, and per-VO slots and shares.
 * Root sees every VO's figures; a VO caller sees only its own VO's (the link's limit is shared
 * infrastructure and visible to all).
 */
import type { Sql } from './db.ts';
import { InvalidInput, NotFound } from './errors.ts';

export interface LinkVoView {
  vo: string;
  active: number;
  queued: number;
  share: number;
}

export interface LinkView {
  id: number;
  source: string;
  destination: string;
  limit: number;
  min: number;
  max: number;
  pinned: boolean;
  active: number;
  queued: number;
  bytes_per_second: number;
  success_rate: number | null;
  vos: LinkVoView[];
  updated_at: Date;
}

export interface LinkDecisionView {
  at: Date;
  limit: number;
  previous_limit: number;
  reason: string;
  inputs: Record<string, unknown>;
}

/** Window for the throughput and success figures in the links table. */
export const LINK_VIEW_WINDOW_SECONDS = 60;

export async function listLinks(sql: Sql, opts: { vo?: string; id?: number }): Promise<LinkView[]> {
  const vo = opts.vo ?? null;
  return sql<LinkView[]>`
    with load as (
      select link_id, vo,
             count(*) filter (where state = 'ACTIVE')::int as active,
             count(*) filter (where state = 'QUEUED')::int as queued
      from requests
      where state in ('QUEUED', 'ACTIVE') and link_id is not null
        ${opts.id !== undefined ? sql`and link_id = ${opts.id}` : sql``}
        and (${vo}::text is null or vo = ${vo})
      group by link_id, vo
    ), traffic as (
      select link_id,
             coalesce(sum(bytes) filter (where error_code is null), 0)::float8 / ${LINK_VIEW_WINDOW_SECONDS} as bytes_per_second,
             case when count(*) = 0 then null else (count(*) filter (where error_code is null))::float8 / count(*) end as success_rate
      from transfer_attempts
      where finished_at > now() - make_interval(secs => ${LINK_VIEW_WINDOW_SECONDS}) and link_id is not null
        and error_code is distinct from 'Cancelled'
        ${opts.id !== undefined ? sql`and link_id = ${opts.id}` : sql``}
        and (${vo}::text is null or vo = ${vo})
      group by link_id
    )
    select l.id, s.name as source, d.name as destination, l.limit_active as limit, l.min_active as min,
           l.max_active as max, l.pinned, l.updated_at,
           coalesce((select sum(active) from load where load.link_id = l.id), 0)::int as active,
           coalesce((select sum(queued) from load where load.link_id = l.id), 0)::int as queued,
           coalesce(t.bytes_per_second, 0) as bytes_per_second, t.success_rate,
           coalesce((
             select jsonb_agg(jsonb_build_object('vo', load.vo, 'active', load.active, 'queued', load.queued,
                      'share', coalesce((l.vo_shares ->> load.vo)::int, v.share)) order by load.vo)
             from load join vos v on v.name = load.vo where load.link_id = l.id
           ), '[]'::jsonb) as vos
    from links l
    join storage_endpoints s on s.id = l.src_endpoint_id
    join storage_endpoints d on d.id = l.dst_endpoint_id
    left join traffic t on t.link_id = l.id
    ${opts.id !== undefined ? sql`where l.id = ${opts.id}` : sql``}
    order by s.name, d.name`;
}

export async function getLink(sql: Sql, id: number, opts: { vo?: string }): Promise<LinkView> {
  const [link] = await listLinks(sql, { vo: opts.vo, id });
  if (!link) throw new NotFound('LinkNotFound', `link ${id} does not exist`);
  return link;
}

export interface LinkPatch {
  min?: number;
  max?: number;
  /** With pinned=true: the fixed limit (default: the current one). */
  limit?: number;
  pinned?: boolean;
  /** Per-VO weights on this link; null removes a VO's override (it falls back to the VO's share). */
  vo_shares?: Record<string, number | null>;
}

export async function updateLink(sql: Sql, id: number, patch: LinkPatch): Promise<void> {
  const [cur] = await sql<{ min_active: number; max_active: number; limit_active: number }[]>`
    select min_active, max_active, limit_active from links where id = ${id}`;
  if (!cur) throw new NotFound('LinkNotFound', `link ${id} does not exist`);
  const min = patch.min ?? cur.min_active;
  const max = patch.max ?? cur.max_active;
  if (min > max) throw new InvalidInput('InvalidLimits', `min (${min}) must not exceed max (${max})`);
  const limit = patch.limit ?? Math.max(min, Math.min(max, cur.limit_active));
  if (limit < min || limit > max) throw new InvalidInput('InvalidLimits', `limit ${limit} is outside [${min}, ${max}]`);
  if (patch.limit !== undefined && patch.pinned === false) {
    throw new InvalidInput('InvalidLimits', 'a fixed limit goes with pinned=true; unpinned links are set by the optimizer');
  }
  const shares = patch.vo_shares ?? {};
  const unknown = Object.keys(shares).length
    ? (await sql<{ name: string }[]>`select name from unnest(${Object.keys(shares)}::text[]) as t(name) where name not in (select name from vos)`).map((r) => r.name)
    : [];
  if (unknown.length) throw new NotFound('VoNotFound', `VO '${unknown.join("', '")}' does not exist`);
  const set = Object.fromEntries(Object.entries(shares).filter(([, v]) => v !== null));
  const removed = Object.keys(shares).filter((k) => shares[k] === null);
  await sql`
    update links set
      min_active = ${min}, max_active = ${max},
      pinned = coalesce(${patch.pinned ?? null}::boolean, pinned),
      limit_active = ${limit},
      vo_shares = (vo_shares || ${sql.json(set as never)}) - ${removed}::text[],
      updated_at = now()
    where id = ${id}`;
}

export async function listDecisions(sql: Sql, id: number, opts: { limit: number; before?: Date }): Promise<LinkDecisionView[]> {
  const [exists] = await sql`select 1 from links where id = ${id}`;
  if (!exists) throw new NotFound('LinkNotFound', `link ${id} does not exist`);
  return sql<LinkDecisionView[]>`
    select at, limit_active as limit, previous_limit, reason, inputs from link_decisions
    where link_id = ${id} ${opts.before ? sql`and at < ${opts.before}` : sql``}
    order by at desc limit ${opts.limit}`;
}
