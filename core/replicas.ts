import type { Sql } from './db.ts';
import { withTransaction } from './db.ts';
import { Conflict, InvalidInput, NotFound } from './errors.ts';
import { filesUnder, getDid, MAX_BULK, type DidKey } from './catalogue.ts';
import { getRse, rseIdsByName } from './rses.ts';
import type { ResolvedPolicy } from '../policies/registry.ts';

export type ReplicaState = 'AVAILABLE' | 'COPYING' | 'BEING_DELETED' | 'BAD' | 'UNAVAILABLE';

export interface NewReplica {
  scope: string;
  name: string;
  path?: string;
  bytes?: number;
  adler32?: string;
}

/** A storage path below an RSE prefix: relative, no empty, `.` or `..` segments. */
export function validatePath(path: string, what: string): string {
  const p = path.replace(/^\/+/, '');
  const parts = p.split('/');
  if (!p || p.length > 1024 || parts.some((s) => s === '' || s === '.' || s === '..') || /[\u0000-\u001f]/.test(p)) {
    throw new InvalidInput('InvalidPath', `${what}: path '${path.slice(0, 200)}' must be a relative path without empty, '.' or '..' segments`);
  }
  return p;
}

/**
 * Registers replicas of existing files on one RSE, all or nothing. On a deterministic RSE the
 * path comes from the VO's lfn2pfn policy; a non-deterministic RSE needs an explicit path.
 */
export async function addReplicas(
  sql: Sql,
  vo: string,
  policy: ResolvedPolicy,
  rseName: string,
  replicas: NewReplica[],
): Promise<number> {
  if (replicas.length === 0) throw new InvalidInput('EmptyRequest', 'no replicas given');
  if (replicas.length > MAX_BULK) throw new InvalidInput('TooManyItems', `at most ${MAX_BULK} replicas per request, got ${replicas.length}`);
  const rse = await getRse(sql, vo, rseName);
  const seen = new Set<string>();
  const paths: string[] = new Array(replicas.length);
  const viaPolicy: number[] = [];
  for (const [i, r] of replicas.entries()) {
    const k = `${r.scope}:${r.name}`;
    if (seen.has(k)) throw new Conflict('DuplicateReplica', `'${k}' appears twice in the request (item ${i})`);
    seen.add(k);
    if (r.path !== undefined) paths[i] = validatePath(r.path, `item ${i}`);
    else if (!rse.deterministic) throw new InvalidInput('PathRequired', `RSE '${rse.name}' is not deterministic: item ${i} ('${k}') needs a path`);
    else viaPolicy.push(i);
  }
  if (viaPolicy.length) {
    // One batch through the VO's lfn2pfn (it may run in a worker); its paths are checked there.
    const got = await policy.lfn2pfn(viaPolicy.map((i) => ({ scope: replicas[i].scope, name: replicas[i].name })), { name: rse.name, prefix: rse.prefix, attributes: rse.attributes });
    for (let j = 0; j < viaPolicy.length; j++) paths[viaPolicy[j]] = got[j];
  }
  const scopes = replicas.map((r) => r.scope);
  const names = replicas.map((r) => r.name);
  const bytes = replicas.map((r) => r.bytes ?? null) as number[];
  const adler = replicas.map((r) => r.adler32 ?? null) as string[];
  return withTransaction(sql, async (tx) => {
    // Holds the RSE against a concurrent delete for the rest of the transaction (there is no FK).
    const [held] = await tx`select 1 from rses where id = ${rse.id} and deleted_at is null for share`;
    if (!held) throw new NotFound('RseNotFound', `RSE '${rse.name}' does not exist in VO '${vo}'`);
    // One statement checks every file and inserts; any problem aborts the transaction below, so
    // a bulk request is all or nothing without a second pass over the input.
    const [check] = await tx<{ given: number; found: number; not_files: number; size_mismatch: number; checksum_mismatch: number; inserted: number }[]>`
      with input as (
        select * from unnest(${scopes}::text[], ${names}::text[], ${paths}::text[], ${bytes}::bigint[], ${adler}::text[])
          as t(scope, name, path, bytes, adler32)
      ), files as (
        select i.*, d.type, d.bytes as cat_bytes, d.adler32 as cat_adler32
        from input i join dids d on d.vo = ${vo} and d.scope = i.scope and d.name = i.name
      ), ins as (
        insert into replicas (vo, scope, name, rse_id, state, path)
        select ${vo}, f.scope, f.name, ${rse.id}, 'AVAILABLE', f.path from files f
        where f.type = 'FILE'
          and (f.bytes is null or f.bytes = f.cat_bytes)
          and (f.adler32 is null or f.adler32 = f.cat_adler32)
        on conflict do nothing
        returning 1
      )
      select ${replicas.length}::int as given,
             (select count(*) from files)::int as found,
             (select count(*) from files where type <> 'FILE')::int as not_files,
             (select count(*) from files where bytes is not null and bytes <> cat_bytes)::int as size_mismatch,
             (select count(*) from files where adler32 is not null and adler32 <> cat_adler32)::int as checksum_mismatch,
             (select count(*) from ins)::int as inserted`;
    if (check.found === check.given && check.not_files === 0 && check.size_mismatch === 0 && check.checksum_mismatch === 0 && check.inserted === check.given) {
      return check.inserted;
    }
    // Something is wrong: find the first culprit for a precise message (the insert rolls back).
    const files = await tx<{ scope: string; name: string; type: string; bytes: number; adler32: string; i: number }[]>`
      select t.i, d.scope, d.name, d.type, d.bytes, d.adler32
      from unnest(${scopes}::text[], ${names}::text[]) with ordinality as t(scope, name, i)
      join dids d on d.vo = ${vo} and d.scope = t.scope and d.name = t.name`;
    if (check.found !== check.given) {
      const have = new Set(files.map((f) => `${f.scope}:${f.name}`));
      const missing = replicas.map((r) => `${r.scope}:${r.name}`).filter((k) => !have.has(k));
      throw new NotFound('DidNotFound', `file '${missing.slice(0, 5).join("', '")}'${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} does not exist in VO '${vo}'; register the DIDs first`, {
        details: { missing: missing.slice(0, 100) },
      });
    }
    for (const f of files) {
      const r = replicas[f.i - 1];
      if (f.type !== 'FILE') throw new InvalidInput('NotAFile', `'${f.scope}:${f.name}' is a ${f.type.toLowerCase()}; only files have replicas`);
      if (r.bytes !== undefined && r.bytes !== f.bytes) {
        throw new Conflict('SizeMismatch', `'${f.scope}:${f.name}': replica has ${r.bytes} bytes, the catalogue says ${f.bytes}`);
      }
      if (r.adler32 !== undefined && r.adler32 !== f.adler32) {
        throw new Conflict('ChecksumMismatch', `'${f.scope}:${f.name}': replica adler32 ${r.adler32}, the catalogue says ${f.adler32}`);
      }
    }
    throw new Conflict('DuplicateReplica', `${check.given - check.inserted} of these files already have a replica on '${rse.name}'; nothing was registered`);
  });
}

export interface ReplicaView {
  rse: string;
  state: ReplicaState;
  path: string;
  url: string;
}

export interface FileReplicas {
  scope: string;
  name: string;
  bytes: number;
  adler32: string;
  md5: string | null;
  replicas: ReplicaView[];
}

/** Every file under a DID with its replicas and their URLs, paginated by file. */
export async function listReplicas(
  sql: Sql,
  vo: string,
  did: DidKey,
  opts: { after?: [string, string]; limit: number; state?: ReplicaState },
): Promise<FileReplicas[]> {
  await getDid(sql, vo, did);
  return sql<FileReplicas[]>`
    with files as (
      select d.scope, d.name, d.bytes, d.adler32, d.md5
      from (${filesUnder(sql, vo, did)}) f
      join dids d on d.vo = ${vo} and d.scope = f.scope and d.name = f.name
      ${opts.after ? sql`where (d.scope, d.name) > (${opts.after[0]}, ${opts.after[1]})` : sql``}
      order by d.scope, d.name limit ${opts.limit + 1}
    )
    select f.scope, f.name, f.bytes, f.adler32, f.md5,
      coalesce((
        select jsonb_agg(jsonb_build_object('rse', r2.name, 'state', r.state, 'path', r.path,
                                            'url', e.url || r2.prefix || r.path) order by r2.name)
        from replicas r join rses r2 on r2.id = r.rse_id join storage_endpoints e on e.id = r2.endpoint_id
        where r.vo = ${vo} and r.scope = f.scope and r.name = f.name
          ${opts.state ? sql`and r.state = ${opts.state}` : sql``}
      ), '[]'::jsonb) as replicas
    from files f order by f.scope, f.name`;
}

/** Marks replicas BAD with a reason (kept in bad_replicas); all must exist. */
export async function declareBad(
  sql: Sql,
  vo: string,
  account: string,
  items: Array<DidKey & { rse: string }>,
  reason: string,
): Promise<number> {
  if (items.length === 0) throw new InvalidInput('EmptyRequest', 'no replicas given');
  if (items.length > MAX_BULK) throw new InvalidInput('TooManyItems', `at most ${MAX_BULK} replicas per request`);
  const rseIds = await rseIdsByName(sql, vo, items.map((i) => i.rse));
  const scopes = items.map((i) => i.scope);
  const names = items.map((i) => i.name);
  const ids = items.map((i) => rseIds.get(i.rse)!);
  return withTransaction(sql, async (tx) => {
    const [{ n }] = await tx<{ n: number }[]>`
      with upd as (
        update replicas r set state = 'BAD', updated_at = now()
        from unnest(${scopes}::text[], ${names}::text[], ${ids}::bigint[]) as t(scope, name, rse_id)
        where r.vo = ${vo} and r.scope = t.scope and r.name = t.name and r.rse_id = t.rse_id
        returning 1
      ) select count(*)::int as n from upd`;
    if (n !== items.length) {
      throw new NotFound('ReplicaNotFound', `${items.length - n} of the replicas given do not exist; nothing was declared bad`);
    }
    await tx`
      insert into bad_replicas (vo, scope, name, rse_id, reason, account)
      select ${vo}, t.scope, t.name, t.rse_id, ${reason}, ${account}
      from unnest(${scopes}::text[], ${names}::text[], ${ids}::bigint[]) as t(scope, name, rse_id)`;
    return n;
  });
}

