import type { Sql } from './db.ts';
import { Conflict, InvalidInput, NotFound, PG, pgCode } from './errors.ts';

export type TpcCapability = 'pull' | 'push' | 'both' | 'none';

export interface Endpoint {
  id: number;
  name: string;
  url: string;
  kind: 'http' | 's3';
  tpc: TpcCapability;
  max_inbound: number | null;
  max_outbound: number | null;
  settings: Record<string, unknown>;
  created_at: Date;
}

const COLUMNS = ['id', 'name', 'url', 'kind', 'tpc', 'max_inbound', 'max_outbound', 'settings', 'created_at'] as const;

/** `scheme://host[:port]` with nothing after it: RSEs add their own path prefix. */
export function normaliseEndpointUrl(raw: string, kind: 'http' | 's3'): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new InvalidInput('InvalidUrl', `endpoint url '${raw.slice(0, 200)}' is not a URL; use scheme://host:port`);
  }
  const schemes = kind === 'http' ? ['http:', 'https:', 'dav:', 'davs:'] : ['http:', 'https:', 's3:', 's3s:'];
  if (!schemes.includes(u.protocol)) {
    throw new InvalidInput('InvalidUrl', `scheme '${u.protocol.replace(':', '')}' is not supported for ${kind} endpoints (use ${schemes.map((s) => s.replace(':', '')).join(', ')})`);
  }
  if (u.username || u.password || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw new InvalidInput('InvalidUrl', `endpoint url must be scheme://host:port only (no credentials, path or query): '${raw.slice(0, 200)}'`);
  }
  // Keep a port the operator wrote even when it is the scheme's default (https://host:443):
  // storage URLs in the field are written that way, and users compare them by eye.
  const port = /^[^:]+:\/\/(?:\[[^\]]*\]|[^/:]*):(\d+)\/?$/.exec(raw.trim())?.[1];
  return `${u.protocol}//${u.hostname}${port ? `:${Number(port)}` : u.port ? `:${u.port}` : ''}`;
}

export async function addEndpoint(
  sql: Sql,
  e: { name: string; url: string; kind: 'http' | 's3'; tpc?: TpcCapability; max_inbound?: number; max_outbound?: number; settings?: Record<string, unknown> },
): Promise<Endpoint> {
  const url = normaliseEndpointUrl(e.url, e.kind);
  try {
    const [row] = await sql<Endpoint[]>`
      insert into storage_endpoints (name, url, kind, tpc, max_inbound, max_outbound, settings)
      values (${e.name}, ${url}, ${e.kind}, ${e.tpc ?? (e.kind === 'http' ? 'both' : 'none')},
              ${e.max_inbound ?? null}, ${e.max_outbound ?? null}, ${sql.json((e.settings ?? {}) as never)})
      returning ${sql(COLUMNS)}`;
    return row;
  } catch (err) {
    if (pgCode(err) === PG.uniqueViolation) throw new Conflict('DuplicateEndpoint', `an endpoint named '${e.name}' or at '${url}' already exists`);
    throw err;
  }
}

export async function listEndpoints(sql: Sql): Promise<Endpoint[]> {
  return sql<Endpoint[]>`select ${sql(COLUMNS)} from storage_endpoints order by name`;
}

export async function getEndpoint(sql: Sql, name: string): Promise<Endpoint> {
  const [row] = await sql<Endpoint[]>`select ${sql(COLUMNS)} from storage_endpoints where name = ${name}`;
  if (!row) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  return row;
}

export async function updateEndpoint(
  sql: Sql,
  name: string,
  patch: { tpc?: TpcCapability; max_inbound?: number | null; max_outbound?: number | null; settings?: Record<string, unknown> },
): Promise<Endpoint> {
  const [row] = await sql<Endpoint[]>`
    update storage_endpoints set
      tpc = coalesce(${patch.tpc ?? null}, tpc),
      max_inbound = case when ${patch.max_inbound !== undefined} then ${patch.max_inbound ?? null}::integer else max_inbound end,
      max_outbound = case when ${patch.max_outbound !== undefined} then ${patch.max_outbound ?? null}::integer else max_outbound end,
      settings = coalesce(${patch.settings ? sql.json(patch.settings as never) : null}::jsonb, settings)
    where name = ${name}
    returning ${sql(COLUMNS)}`;
  if (!row) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  return row;
}

export async function deleteEndpoint(sql: Sql, name: string): Promise<void> {
  try {
    const rows = await sql`delete from storage_endpoints where name = ${name} returning id`;
    if (!rows.length) throw new NotFound('EndpointNotFound', `storage endpoint '${name}' does not exist`);
  } catch (e) {
    if (pgCode(e) === PG.foreignKeyViolation) throw new Conflict('EndpointInUse', `storage endpoint '${name}' still has RSEs; delete them first`);
    throw e;
  }
}
