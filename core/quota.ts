/**
 * Account quotas: bytes an account's rules may lock per RSE (no limit row: unlimited). Usage is
 * maintained by core/locks.ts in the statements that create and release locks; this module only
 * reads it and manages limits.
 */
import type { Sql, TransactionSql } from './db.ts';
import { NotFound } from './errors.ts';
import { rseIdsByName } from './rses.ts';

export interface AccountQuota {
  /** RSE id -> limit in bytes (absent: unlimited). */
  limits: Map<number, number>;
  /** RSE id -> bytes locked now. */
  used: Map<number, number>;
}

export async function accountQuota(sql: Sql | TransactionSql, vo: string, account: string): Promise<AccountQuota> {
  const [limits, used] = await Promise.all([
    sql<{ rse_id: number; bytes: number }[]>`select rse_id, bytes from account_limits where vo = ${vo} and account = ${account}`,
    sql<{ rse_id: number; bytes: number }[]>`select rse_id, bytes from account_usage where vo = ${vo} and account = ${account}`,
  ]);
  return { limits: new Map(limits.map((l) => [l.rse_id, l.bytes])), used: new Map(used.map((u) => [u.rse_id, u.bytes])) };
}

async function requireAccount(sql: Sql, vo: string, account: string): Promise<void> {
  const [row] = await sql`select 1 from accounts where vo = ${vo} and name = ${account}`;
  if (!row) throw new NotFound('AccountNotFound', `account '${account}' does not exist in VO '${vo}'`);
}

/** Sets (bytes) or removes (null) an account's limit on an RSE. */
export async function setAccountLimit(sql: Sql, vo: string, account: string, rse: string, bytes: number | null): Promise<void> {
  await requireAccount(sql, vo, account);
  const rseId = (await rseIdsByName(sql, vo, [rse])).get(rse)!;
  if (bytes === null) {
    await sql`delete from account_limits where vo = ${vo} and account = ${account} and rse_id = ${rseId}`;
    return;
  }
  await sql`
    insert into account_limits (vo, account, rse_id, bytes) values (${vo}, ${account}, ${rseId}, ${bytes})
    on conflict (vo, account, rse_id) do update set bytes = excluded.bytes`;
}

export interface UsageRow {
  rse: string;
  files: number;
  bytes: number;
  /** null: unlimited */
  limit_bytes: number | null;
  remaining_bytes: number | null;
}

/** Usage and limits of an account on every RSE where it has either. */
export async function accountUsage(sql: Sql, vo: string, account: string): Promise<UsageRow[]> {
  await requireAccount(sql, vo, account);
  return sql<UsageRow[]>`
    select r.name as rse, coalesce(u.files, 0)::bigint as files, coalesce(u.bytes, 0)::bigint as bytes,
           l.bytes as limit_bytes, case when l.bytes is null then null else greatest(l.bytes - coalesce(u.bytes, 0), 0)::bigint end as remaining_bytes
    from (select rse_id from account_usage where vo = ${vo} and account = ${account} and (files > 0 or bytes > 0)
          union select rse_id from account_limits where vo = ${vo} and account = ${account}) k
    join rses r on r.id = k.rse_id
    left join account_usage u on u.vo = ${vo} and u.account = ${account} and u.rse_id = k.rse_id
    left join account_limits l on l.vo = ${vo} and l.account = ${account} and l.rse_id = k.rse_id
    order by r.name`;
}
