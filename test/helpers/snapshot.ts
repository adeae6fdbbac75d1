import type { Sql } from '../../core/db.ts';

/** The tables test/api/isolation.test.ts watches: the VO-owned catalogue. */
export const CATALOGUE_TABLES = ['vos', 'issuers', 'accounts', 'scopes', 'storage_endpoints', 'rses', 'rse_attributes', 'distances', 'dids', 'did_contents', 'replicas', 'bad_replicas'];

/** Every base table of the current schema except the migration bookkeeping. */
export async function allTables(sql: Sql): Promise<string[]> {
  const rows = await sql<{ t: string }[]>`
    select table_name as t from information_schema.tables
    where table_schema = current_schema() and table_type = 'BASE TABLE' and table_name not like '%migrations%'
    order by table_name`;
  return rows.map((r) => r.t);
}

/**
 * A digest of every row of `tables` (default: all of them): any write shows up as a change.
 * One md5 per table over its rows' text, in a stable order.
 */
export async function snapshot(sql: Sql, tables?: string[]): Promise<string> {
  const list = tables ?? (await allTables(sql));
  // One statement for all tables: the fuzz test takes a digest after every request.
  const parts = list.map((t) => sql`select ${t}::text as t, coalesce(md5(string_agg(x::text, '|' order by x::text)), '') as d from ${sql(t)} x`);
  const union = parts.reduce((a, b) => sql`${a} union all ${b}`);
  const rows = await sql<{ t: string; d: string }[]>`${union}`;
  return rows.map((r) => `${r.t}:${r.d}`).join(',');
}
