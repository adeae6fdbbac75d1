/**
 * Usage accounting: bytes and files of AVAILABLE replicas per VO and RSE, kept current by
 * statement-level triggers on replicas (sql/0004_observability.sql: deltas appended per
 * statement, folded into rse_usage by foldRseUsage), and the rules' per-account usage kept by
 * core/locks.ts (account_usage). Neither is ever recomputed by a full scan.
 */
import type { Sql, TransactionSql } from './db.ts';

/** Folds pending usage deltas into rse_usage; returns how many were folded. Cheap when none. */
export async function foldRseUsage(sql: Sql): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`select fold_rse_usage() as n`;
  return Number(n);
}

/**
 * Current replica usage of a VO's RSEs (rse id -> files, bytes), exact at any time (folded
 * totals + pending deltas). For RSE quotas (rses.quota_bytes) in placement.
 */
export async function rseUsage(sql: Sql | TransactionSql, vo: string, rseIds?: number[]): Promise<Map<number, { files: number; bytes: number }>> {
  const rows = await sql<{ rse_id: number; files: number; bytes: number }[]>`
    select rse_id, files, bytes from rse_usage_current
    where vo = ${vo} ${rseIds ? sql`and rse_id = any(${rseIds}::bigint[])` : sql``}`;
  return new Map(rows.map((r) => [r.rse_id, { files: r.files, bytes: r.bytes }]));
}

export interface RseUsageView {
  vo: string;
  rse: string;
  files: number;
  bytes: number;
  quota_bytes: number | null;
}

export interface AccountUsageView {
  vo: string;
  account: string;
  rse: string;
  files: number;
  bytes: number;
}

/**
 * Usage for the API and the dashboard. `vo` undefined: every VO (root). `account`: only that
 * account's rows in the per-account part (a VO user sees their own).
 */
export async function usageReport(sql: Sql, opts: { vo?: string; account?: string }): Promise<{ rses: RseUsageView[]; accounts: AccountUsageView[] }> {
  const voFilter = (col: string) => (opts.vo === undefined ? sql`true` : sql`${sql(col)} = ${opts.vo}`);
  const [rses, accounts] = await Promise.all([
    sql<RseUsageView[]>`
      select r.vo, r.name as rse, coalesce(u.files, 0)::bigint as files, coalesce(u.bytes, 0)::bigint as bytes, r.quota_bytes
      from rses r left join rse_usage_current u on u.vo = r.vo and u.rse_id = r.id
      where r.deleted_at is null and ${voFilter('r.vo')}
      order by r.vo, r.name`,
    sql<AccountUsageView[]>`
      select a.vo, a.account, r.name as rse, a.files, a.bytes
      from account_usage a join rses r on r.id = a.rse_id
      where (a.files > 0 or a.bytes > 0) and ${voFilter('a.vo')}
        ${opts.account === undefined ? sql`` : sql`and a.account = ${opts.account}`}
      order by a.vo, a.account, r.name`,
  ]);
  return { rses, accounts };
}
