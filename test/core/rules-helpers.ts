import type { Sql } from '../../core/db.ts';
import { addDids, attachDids, type NewDid } from '../../core/catalogue.ts';
import { addRse } from '../../core/rses.ts';
import { resolvePolicy } from '../../policies/registry.ts';
import defaultPolicy from '../../policies/default.ts';

export const policy = resolvePolicy(defaultPolicy);

export interface SeedRse {
  name: string;
  attributes?: Record<string, string>;
  writable?: boolean;
}

let endpointSeq = 0;

/** A VO with accounts admin + alice, scope `data`, RSEs on one endpoint. Returns RSE ids by name. */
export async function seedVo(sql: Sql, vo: string, rses: SeedRse[], options: { endpointUrl?: string; prefix?: (name: string) => string } = {}) {
  await sql`insert into vos (name) values (${vo})`;
  await sql`insert into accounts (vo, name, role) values (${vo}, 'admin', 'admin'), (${vo}, 'alice', 'user')`;
  await sql`insert into scopes (vo, name, account) values (${vo}, 'data', 'admin'), (${vo}, 'user.alice', 'alice')`;
  const endpoint = `ep-${vo}-${++endpointSeq}`;
  await sql`insert into storage_endpoints (name, url, kind) values (${endpoint}, ${options.endpointUrl ?? `http://127.0.0.1:${20000 + endpointSeq}`}, 'http')`;
  const ids = new Map<string, number>();
  for (const r of rses) {
    const rse = await addRse(sql, vo, {
      name: r.name,
      endpoint,
      prefix: options.prefix ? options.prefix(r.name) : `/${vo}/${r.name.toLowerCase()}`,
      attributes: r.attributes ?? {},
      availability: { write: r.writable ?? true },
    });
    ids.set(r.name, rse.id);
  }
  return { vo, ids };
}

export function files(scope: string, n: number, prefix = 'f', start = 0): NewDid[] {
  return Array.from({ length: n }, (_, i) => ({
    scope,
    name: `${prefix}.${String(start + i).padStart(6, '0')}`,
    type: 'FILE' as const,
    bytes: 1000 + start + i,
    adler32: (0x10000000 + start + i).toString(16).slice(-8),
  }));
}

/** A dataset `scope:name` holding `n` new files (registered in chunks of 10,000). */
export async function dataset(sql: Sql, vo: string, scope: string, name: string, n: number, opts: { prefix?: string; start?: number; account?: string } = {}) {
  await addDids(sql, vo, opts.account ?? 'admin', [{ scope, name, type: 'DATASET' }]);
  const fs = files(scope, n, opts.prefix ?? name, opts.start ?? 0);
  for (let i = 0; i < fs.length; i += 10_000) {
    const chunk = fs.slice(i, i + 10_000);
    await addDids(sql, vo, opts.account ?? 'admin', chunk);
    await attachDids(sql, vo, { scope, name }, chunk);
  }
  return fs;
}

export async function count(sql: Sql, table: 'rules' | 'locks' | 'requests' | 'replicas' | 'account_usage', vo?: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)} ${vo ? sql`where vo = ${vo}` : sql``}`;
  return row.n;
}

/** Everything a failed rule creation must not have written. */
export async function snapshot(sql: Sql) {
  const [row] = await sql<{ rules: number; locks: number; requests: number; replicas: number; usage: number }[]>`
    select (select count(*) from rules)::int as rules, (select count(*) from locks)::int as locks,
           (select count(*) from requests)::int as requests, (select count(*) from replicas)::int as replicas,
           (select coalesce(sum(bytes), 0) from account_usage)::bigint as usage`;
  return row;
}

/** Invariants the lock statements maintain; checked after every scenario. */
export async function checkInvariants(sql: Sql) {
  const bad = await sql`
    select 'lock_cnt' as what, r.scope, r.name, r.rse_id::text as detail from replicas r
    where r.lock_cnt <> (select count(*) from locks l where l.vo = r.vo and l.scope = r.scope and l.name = r.name and l.rse_id = r.rse_id)
    union all
    select 'rule_counters', ru.scope, ru.name, ru.id::text from rules ru
    where ru.locks_ok_cnt <> (select count(*) from locks l where l.rule_id = ru.id and l.state = 'OK')
       or ru.locks_replicating_cnt <> (select count(*) from locks l where l.rule_id = ru.id and l.state = 'REPLICATING')
       or ru.locks_stuck_cnt <> (select count(*) from locks l where l.rule_id = ru.id and l.state = 'STUCK')
    union all
    select 'usage', u.account, '', u.rse_id::text from account_usage u
    where u.bytes <> coalesce((select sum(l.bytes) from locks l join rules ru on ru.id = l.rule_id
                               where ru.vo = u.vo and ru.account = u.account and l.rse_id = u.rse_id), 0)
    union all
    select 'live_requests', q.scope, q.name, q.dest_rse_id::text from requests q where q.state in ('QUEUED', 'ACTIVE')
    group by q.vo, q.scope, q.name, q.dest_rse_id having count(*) > 1
    union all
    select 'tombstone_on_locked', r.scope, r.name, r.rse_id::text from replicas r where r.lock_cnt > 0 and r.tombstone is not null
    limit 10`;
  return bad;
}
