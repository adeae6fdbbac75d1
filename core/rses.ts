import type { Sql } from './db.ts';
import { Conflict, InvalidInput, NotFound, PG, pgCode } from './errors.ts';

export interface Rse {
  id: number;
  name: string;
  endpoint: string;
  endpoint_id: number;
  /** Endpoint URL + prefix: where the RSE's files live. */
  url: string;
  kind: 'http' | 's3';
  prefix: string;
  deterministic: boolean;
  availability: { read: boolean; write: boolean; delete: boolean };
  attributes: Record<string, string>;
  protocol_settings: Record<string, unknown>;
  quota_bytes: number | null;
  created_at: Date;
}

/** Keys whose values never leave the server in an API answer. */
const SECRET_KEY = /secret|password|token|credential|private/i;

export function redactSettings(s: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, SECRET_KEY.test(k) && v ? '***' : v]));
}

/** `/a/b/` form: leading and trailing slash, no `..`, no doubled slashes. */
export function normalisePrefix(prefix: string): string {
  const parts = prefix.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..')) {
    throw new InvalidInput('InvalidPrefix', `RSE prefix '${prefix.slice(0, 200)}' must not contain '.' or '..' segments`);
  }
  return parts.length ? `/${parts.join('/')}/` : '/';
}

interface RseRow {
  id: number;
  name: string;
  endpoint: string;
  endpoint_id: number;
  endpoint_url: string;
  kind: 'http' | 's3';
  prefix: string;
  deterministic: boolean;
  availability_read: boolean;
  availability_write: boolean;
  availability_delete: boolean;
  attributes: Record<string, string> | null;
  protocol_settings: Record<string, unknown>;
  quota_bytes: number | null;
  created_at: Date;
}

function toRse(r: RseRow, opts: { secrets?: boolean } = {}): Rse {
  return {
    id: r.id,
    name: r.name,
    endpoint: r.endpoint,
    endpoint_id: r.endpoint_id,
    url: r.endpoint_url + r.prefix,
    kind: r.kind,
    prefix: r.prefix,
    deterministic: r.deterministic,
    availability: { read: r.availability_read, write: r.availability_write, delete: r.availability_delete },
    attributes: r.attributes ?? {},
    protocol_settings: opts.secrets ? r.protocol_settings : redactSettings(r.protocol_settings),
    quota_bytes: r.quota_bytes,
    created_at: r.created_at,
  };
}

function selectRses(sql: Sql, where: ReturnType<Sql>, limit?: number) {
  return sql<RseRow[]>`
    select r.id, r.name, e.name as endpoint, e.id as endpoint_id, e.url as endpoint_url, e.kind, r.prefix,
           r.deterministic, r.availability_read, r.availability_write, r.availability_delete,
           r.protocol_settings, r.quota_bytes, r.created_at,
           (select jsonb_object_agg(a.key, a.value) from rse_attributes a where a.rse_id = r.id) as attributes
    from rses r join storage_endpoints e on e.id = r.endpoint_id
    where r.deleted_at is null and ${where}
    order by r.name
    ${limit ? sql`limit ${limit}` : sql``}`;
}

export interface NewRse {
  name: string;
  endpoint: string;
  prefix?: string;
  deterministic?: boolean;
  availability?: Partial<Rse['availability']>;
  attributes?: Record<string, string>;
  protocol_settings?: Record<string, unknown>;
  quota_bytes?: number | null;
}

export async function addRse(sql: Sql, vo: string, r: NewRse): Promise<Rse> {
  const prefix = normalisePrefix(r.prefix ?? '/');
  const attributes = { ...(r.attributes ?? {}), [r.name]: 'true' };
  try {
    const id = await sql.begin(async (tx) => {
      const [ep] = await tx<{ id: number }[]>`select id from storage_endpoints where name = ${r.endpoint} for share`;
      if (!ep) throw new NotFound('EndpointNotFound', `storage endpoint '${r.endpoint}' does not exist`);
      // Endpoints are shared: an RSE whose area contains, or lies inside, another VO's area would
      // let that VO read, overwrite or reap the other's files. Serialised per endpoint.
      await tx`select pg_advisory_xact_lock(hashtext('sluice.rse-prefix'), ${ep.id}::int)`;
      // On S3 an area is bucket + prefix: VOs with buckets of their own never overlap.
      const bucket = typeof r.protocol_settings?.bucket === 'string' ? r.protocol_settings.bucket : '';
      const [clash] = await tx<{ n: number }[]>`
        select 1 as n from rses
        where endpoint_id = ${ep.id} and vo <> ${vo} and deleted_at is null
          and coalesce(protocol_settings ->> 'bucket', '') = ${bucket}
          and (starts_with(prefix, ${prefix}) or starts_with(${prefix}, prefix))
        limit 1`;
      if (clash) {
        throw new Conflict('PrefixConflict', `prefix '${prefix}' on endpoint '${r.endpoint}' overlaps the area of another VO's RSE; choose a prefix of your own`);
      }
      const [row] = await tx<{ id: number }[]>`
        insert into rses (vo, name, endpoint_id, prefix, deterministic, availability_read, availability_write,
                          availability_delete, protocol_settings, quota_bytes)
        values (${vo}, ${r.name}, ${ep.id}, ${prefix}, ${r.deterministic ?? true},
                ${r.availability?.read ?? true}, ${r.availability?.write ?? true}, ${r.availability?.delete ?? true},
                ${tx.json((r.protocol_settings ?? {}) as never)}, ${r.quota_bytes ?? null})
        returning id`;
      await tx`
        insert into rse_attributes (rse_id, key, value)
        select ${row.id}, k, v from unnest(${Object.keys(attributes)}::text[], ${Object.values(attributes)}::text[]) as t(k, v)`;
      return row.id;
    });
    return getRseById(sql, vo, id);
  } catch (e) {
    if (pgCode(e) === PG.uniqueViolation) throw new Conflict('DuplicateRse', `RSE '${r.name}' already exists in VO '${vo}'`);
    throw e;
  }
}

export async function getRseById(sql: Sql, vo: string, id: number, opts: { secrets?: boolean } = {}): Promise<Rse> {
  const [row] = await selectRses(sql, sql`r.vo = ${vo} and r.id = ${id}`);
  if (!row) throw new NotFound('RseNotFound', `RSE ${id} does not exist in VO '${vo}'`);
  return toRse(row, opts);
}

export async function getRse(sql: Sql, vo: string, name: string, opts: { secrets?: boolean } = {}): Promise<Rse> {
  const [row] = await selectRses(sql, sql`r.vo = ${vo} and r.name = ${name}`);
  if (!row) throw new NotFound('RseNotFound', `RSE '${name}' does not exist in VO '${vo}'`);
  return toRse(row, opts);
}

export async function listRses(sql: Sql, vo: string, opts: { after?: string; limit?: number } = {}): Promise<Rse[]> {
  const rows = await selectRses(
    sql,
    sql`r.vo = ${vo} ${opts.after ? sql`and r.name > ${opts.after}` : sql``}`,
    opts.limit ? opts.limit + 1 : undefined,
  );
  return rows.map((r) => toRse(r));
}

export async function updateRse(
  sql: Sql,
  vo: string,
  name: string,
  patch: {
    availability?: Partial<Rse['availability']>;
    deterministic?: boolean;
    protocol_settings?: Record<string, unknown>;
    quota_bytes?: number | null;
  },
): Promise<Rse> {
  const a = patch.availability ?? {};
  const rows = await sql`
    update rses set
      availability_read = coalesce(${a.read ?? null}::boolean, availability_read),
      availability_write = coalesce(${a.write ?? null}::boolean, availability_write),
      availability_delete = coalesce(${a.delete ?? null}::boolean, availability_delete),
      deterministic = coalesce(${patch.deterministic ?? null}::boolean, deterministic),
      protocol_settings = coalesce(${patch.protocol_settings ? sql.json(patch.protocol_settings as never) : null}::jsonb, protocol_settings),
      quota_bytes = case when ${patch.quota_bytes !== undefined} then ${patch.quota_bytes ?? null}::bigint else quota_bytes end
    where vo = ${vo} and name = ${name} and deleted_at is null
    returning id`;
  if (!rows.length) throw new NotFound('RseNotFound', `RSE '${name}' does not exist in VO '${vo}'`);
  return getRse(sql, vo, name);
}

export async function deleteRse(sql: Sql, vo: string, name: string): Promise<void> {
  try {
    await sql.begin(async (tx) => {
      const [rse] = await tx<{ id: number }[]>`select id from rses where vo = ${vo} and name = ${name} and deleted_at is null for update`;
      if (!rse) throw new NotFound('RseNotFound', `RSE '${name}' does not exist in VO '${vo}'`);
      const [{ n }] = await tx<{ n: number }[]>`select count(*)::int as n from (select 1 from replicas where rse_id = ${rse.id} limit 1) x`;
      if (n > 0) throw new Conflict('RseNotEmpty', `RSE '${name}' still holds replicas; remove them (or let the reaper) first`);
      await tx`delete from rses where id = ${rse.id}`;
    });
  } catch (e) {
    if (pgCode(e) === PG.foreignKeyViolation) throw new Conflict('RseInUse', `RSE '${name}' is still referenced (rules, requests or replicas)`);
    throw e;
  }
}

async function rseId(sql: Sql, vo: string, name: string): Promise<number> {
  const [row] = await sql<{ id: number }[]>`select id from rses where vo = ${vo} and name = ${name} and deleted_at is null`;
  if (!row) throw new NotFound('RseNotFound', `RSE '${name}' does not exist in VO '${vo}'`);
  return row.id;
}

export async function setRseAttribute(sql: Sql, vo: string, name: string, key: string, value: string): Promise<void> {
  if (key === name && value !== 'true') {
    throw new InvalidInput('ProtectedAttribute', `attribute '${key}' names the RSE itself and is always 'true'`);
  }
  const id = await rseId(sql, vo, name);
  await sql`
    insert into rse_attributes (rse_id, key, value) values (${id}, ${key}, ${value})
    on conflict (rse_id, key) do update set value = excluded.value`;
}

export async function deleteRseAttribute(sql: Sql, vo: string, name: string, key: string): Promise<void> {
  if (key === name) throw new InvalidInput('ProtectedAttribute', `attribute '${key}' names the RSE itself and cannot be removed`);
  const id = await rseId(sql, vo, name);
  const rows = await sql`delete from rse_attributes where rse_id = ${id} and key = ${key} returning key`;
  if (!rows.length) throw new NotFound('AttributeNotFound', `RSE '${name}' has no attribute '${key}'`);
}

export interface Distance {
  source: string;
  destination: string;
  distance: number;
}

export async function setDistance(sql: Sql, vo: string, source: string, destination: string, distance: number): Promise<Distance> {
  const [src, dst] = await Promise.all([rseId(sql, vo, source), rseId(sql, vo, destination)]);
  await sql`
    insert into distances (src_rse_id, dst_rse_id, distance) values (${src}, ${dst}, ${distance})
    on conflict (src_rse_id, dst_rse_id) do update set distance = excluded.distance`;
  return { source, destination, distance };
}

export async function listDistances(sql: Sql, vo: string, name: string): Promise<Distance[]> {
  const id = await rseId(sql, vo, name);
  return sql<Distance[]>`
    select s.name as source, d.name as destination, x.distance
    from distances x join rses s on s.id = x.src_rse_id join rses d on d.id = x.dst_rse_id
    where (x.src_rse_id = ${id} or x.dst_rse_id = ${id}) and s.vo = ${vo} and d.vo = ${vo}
    order by s.name, d.name`;
}

/** Resolve RSE names of one VO to ids; unknown names are a 404 naming them all. */
export async function rseIdsByName(sql: Sql, vo: string, names: string[]): Promise<Map<string, number>> {
  const unique = [...new Set(names)];
  const rows = await sql<{ id: number; name: string }[]>`
    select id, name from rses where vo = ${vo} and deleted_at is null and name = any(${unique}::text[])`;
  const map = new Map(rows.map((r) => [r.name, r.id]));
  const missing = unique.filter((n) => !map.has(n));
  if (missing.length) {
    throw new NotFound('RseNotFound', `RSE${missing.length > 1 ? 's' : ''} '${missing.slice(0, 5).join("', '")}' do${missing.length > 1 ? '' : 'es'} not exist in VO '${vo}'`, {
      details: { missing: missing.slice(0, 100) },
    });
  }
  return map;
}
