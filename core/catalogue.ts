import type { Sql, TransactionSql } from './db.ts';
import { withTransaction } from './db.ts';
import { Conflict, InvalidInput, NotFound } from './errors.ts';
import type { ResolvedPolicy } from '../policies/registry.ts';

export type DidType = 'FILE' | 'DATASET' | 'CONTAINER';

export interface Did {
  scope: string;
  name: string;
  type: DidType;
  account: string;
  bytes: number | null;
  adler32: string | null;
  md5: string | null;
  open: boolean;
  meta: Record<string, unknown>;
  created_at: Date;
  closed_at: Date | null;
}

export interface NewDid {
  scope: string;
  name: string;
  type: DidType;
  bytes?: number;
  adler32?: string;
  md5?: string;
  meta?: Record<string, unknown>;
  open?: boolean;
}

export interface DidKey {
  scope: string;
  name: string;
}

export const MAX_BULK = 10_000;

const key = (d: DidKey) => `${d.scope}:${d.name}`;

function listNames(keys: string[], max = 5): string {
  return `'${keys.slice(0, max).join("', '")}'${keys.length > max ? ` and ${keys.length - max} more` : ''}`;
}

/**
 * Checks that do not need the database: shape per type, policy naming, duplicates in the request.
 * The VO's validateDid hook sees the whole batch at once (it may run in a worker: policies/).
 */
export async function validateNewDids(dids: NewDid[], policy: ResolvedPolicy): Promise<void> {
  if (dids.length === 0) throw new InvalidInput('EmptyRequest', 'no DIDs given');
  if (dids.length > MAX_BULK) throw new InvalidInput('TooManyItems', `at most ${MAX_BULK} DIDs per request, got ${dids.length}`);
  const seen = new Set<string>();
  for (const [i, d] of dids.entries()) {
    const k = key(d);
    if (seen.has(k)) throw new Conflict('DuplicateDid', `DID '${k}' appears twice in the request (item ${i})`);
    seen.add(k);
    if (d.type === 'FILE') {
      if (d.bytes === undefined || d.adler32 === undefined) {
        throw new InvalidInput('MissingChecksum', `file '${k}' (item ${i}) needs bytes and adler32`);
      }
      if (d.open !== undefined) throw new InvalidInput('InvalidInput', `file '${k}' (item ${i}): only datasets and containers are open or closed`);
    } else if (d.bytes !== undefined || d.adler32 !== undefined || d.md5 !== undefined) {
      throw new InvalidInput('InvalidInput', `${d.type.toLowerCase()} '${k}' (item ${i}) cannot have bytes or checksums; they belong to files`);
    }
  }
  // A hook that throws or times out is a PolicyError (5xx), not the client's naming problem.
  const problems = await policy.validateDids(dids.map((d) => ({ scope: d.scope, name: d.name, type: d.type })));
  const i = problems.findIndex((p) => p !== undefined);
  if (i >= 0) throw new InvalidInput('InvalidDidName', `item ${i}: ${problems[i]}`);
}

/** Scope name -> owning account for the scopes named; a missing scope is a 404 naming it. */
export async function scopeOwners(sql: Sql, vo: string, scopes: string[]): Promise<Map<string, string>> {
  const unique = [...new Set(scopes)];
  const rows = await sql<{ name: string; account: string }[]>`
    select name, account from scopes where vo = ${vo} and name = any(${unique}::text[])`;
  const owners = new Map(rows.map((r) => [r.name, r.account]));
  const missing = unique.filter((s) => !owners.has(s));
  if (missing.length) throw new NotFound('ScopeNotFound', `scope ${listNames(missing)} does not exist in VO '${vo}'`);
  return owners;
}

/**
 * Registers up to MAX_BULK DIDs in one statement; all or nothing. Existing DIDs make the whole
 * request fail with DuplicateDid naming them.
 */
export async function addDids(sql: Sql, vo: string, account: string, dids: NewDid[]): Promise<number> {
  return withTransaction(sql, async (tx) => {
    const inserted = await tx<{ n: number }[]>`
      with input as (
        select * from unnest(
          ${dids.map((d) => d.scope)}::text[], ${dids.map((d) => d.name)}::text[], ${dids.map((d) => d.type)}::text[],
          ${dids.map((d) => d.bytes ?? null) as number[]}::bigint[], ${dids.map((d) => d.adler32 ?? null) as string[]}::text[],
          ${dids.map((d) => d.md5 ?? null) as string[]}::text[], ${dids.map((d) => JSON.stringify(d.meta ?? {}))}::text[],
          ${dids.map((d) => String(d.type === 'FILE' ? false : (d.open ?? true)))}::text[]
        ) as t(scope, name, type, bytes, adler32, md5, meta, open_text)
      ), typed as (
        -- booleans travel as text: the driver cannot serialise a boolean[] parameter
        select input.*, open_text::boolean as is_open from input
      ), ins as (
        insert into dids (vo, scope, name, type, account, bytes, adler32, md5, meta, is_open, closed_at)
        select ${vo}, scope, name, type, ${account}, bytes, adler32, md5, meta::jsonb, is_open,
               case when is_open then null else now() end
        from typed
        on conflict (vo, scope, name) do nothing
        returning 1
      )
      select count(*)::int as n from ins`;
    if (inserted[0].n !== dids.length) {
      const existing = await tx<{ k: string }[]>`
        select d.scope || ':' || d.name as k from dids d
        join unnest(${dids.map((d) => d.scope)}::text[], ${dids.map((d) => d.name)}::text[]) as t(scope, name)
          on d.vo = ${vo} and d.scope = t.scope and d.name = t.name
        limit 6`;
      throw new Conflict('DuplicateDid', `DID ${listNames(existing.map((r) => r.k))} already exist${existing.length > 1 ? '' : 's'}`, {
        details: { existing: existing.map((r) => r.k) },
      });
    }
    return dids.length;
  });
}

const DID_COLUMNS = (sql: Sql | TransactionSql) =>
  sql`scope, name, type, account, bytes, adler32, md5, is_open as open, meta, created_at, closed_at`;

export async function getDid(sql: Sql | TransactionSql, vo: string, did: DidKey, opts: { lock?: boolean } = {}): Promise<Did> {
  const [row] = await sql<Did[]>`
    select ${DID_COLUMNS(sql)} from dids where vo = ${vo} and scope = ${did.scope} and name = ${did.name}
    ${opts.lock ? sql`for update` : sql``}`;
  if (!row) throw new NotFound('DidNotFound', `DID '${key(did)}' does not exist in VO '${vo}'`);
  return row;
}

/** Rucio-style wildcard: `*` any run, `?` one character; everything else literal. */
export function globToLike(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%').replace(/\?/g, '_');
}

export interface MetaFilter {
  key: string;
  op: '=' | '!=' | '<' | '>' | '<=' | '>=';
  value: string;
}

const FILTER = /^([A-Za-z0-9_.-]{1,64})(!=|<=|>=|=|<|>)(.{0,256})$/s;
const NUMBER = /^-?(0|[1-9]\d{0,17})(\.\d{1,17})?([eE][+-]?\d{1,3})?$/;

export function parseMetaFilters(raw: string[]): MetaFilter[] {
  if (raw.length > 20) throw new InvalidInput('InvalidFilter', 'at most 20 metadata filters');
  return raw.map((f) => {
    const m = FILTER.exec(f);
    if (!m) throw new InvalidInput('InvalidFilter', `filter '${f.slice(0, 100)}' must look like key=value, key>number or key<number (also !=, <=, >=)`);
    const [, k, op, value] = m;
    if (['<', '>', '<=', '>='].includes(op) && !NUMBER.test(value)) {
      throw new InvalidInput('InvalidFilter', `filter '${f.slice(0, 100)}': '${op}' compares numbers, '${value.slice(0, 50)}' is not a number`);
    }
    return { key: k, op: op as MetaFilter['op'], value };
  });
}

/**
 * One jsonpath predicate for all filters, evaluated with `meta @@ path` (served by the GIN
 * index). Values are embedded as JSON literals, so no input can change the path's structure.
 */
export function filtersToJsonpath(filters: MetaFilter[]): string {
  return filters
    .map(({ key: k, op, value }) => {
      const field = `$.${JSON.stringify(k)}`;
      if (op === '=' || op === '!=') {
        const alternatives = [`${field} == ${JSON.stringify(value)}`];
        if (NUMBER.test(value)) alternatives.push(`${field} == ${Number(value)}`);
        if (value === 'true' || value === 'false') alternatives.push(`${field} == ${value}`);
        const any = `(${alternatives.join(' || ')})`;
        return op === '=' ? any : `!${any}`;
      }
      return `${field} ${op} ${Number(value)}`;
    })
    .join(' && ');
}

export async function listDids(
  sql: Sql,
  vo: string,
  opts: { scope: string; pattern?: string; type?: DidType; filters?: MetaFilter[]; after?: string; limit: number },
): Promise<Did[]> {
  const filters = opts.filters ?? [];
  return sql<Did[]>`
    select ${DID_COLUMNS(sql)} from dids
    where vo = ${vo} and scope = ${opts.scope}
      ${opts.pattern ? sql`and name like ${globToLike(opts.pattern)}` : sql``}
      ${opts.type ? sql`and type = ${opts.type}` : sql``}
      ${filters.length ? sql`and meta @@ ${filtersToJsonpath(filters)}::jsonpath` : sql``}
      ${opts.after ? sql`and name > ${opts.after}` : sql``}
    order by name
    limit ${opts.limit + 1}`;
}

export async function updateDid(
  sql: Sql,
  vo: string,
  did: DidKey,
  patch: { open?: boolean; meta?: Record<string, unknown> },
  opts: { mayReopen: boolean },
): Promise<Did> {
  return withTransaction(sql, async (tx) => {
    const current = await getDid(tx, vo, did, { lock: true });
    if (patch.open !== undefined) {
      if (current.type === 'FILE') throw new InvalidInput('InvalidInput', `'${key(did)}' is a file; only datasets and containers are open or closed`);
      if (patch.open && !current.open && !opts.mayReopen) {
        throw new Conflict('DidClosed', `'${key(did)}' is closed; only a VO admin can reopen it`);
      }
    }
    const meta = patch.meta ?? {};
    const removed = Object.keys(meta).filter((k) => meta[k] === null);
    const kept = Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== null));
    const [row] = await tx<Did[]>`
      update dids set
        is_open = coalesce(${patch.open ?? null}::boolean, is_open),
        closed_at = case when ${patch.open ?? null}::boolean is false and is_open then now()
                         when ${patch.open ?? null}::boolean then null else closed_at end,
        meta = (meta || ${tx.json(kept as never)}) - ${removed}::text[]
      where vo = ${vo} and scope = ${did.scope} and name = ${did.name}
      returning ${DID_COLUMNS(tx)}`;
    return row;
  });
}

/**
 * Attaches children to a dataset (files) or container (datasets, containers); all or nothing.
 * Refuses closed parents, wrong child types, existing attachments and cycles.
 */
export async function attachDids(sql: Sql, vo: string, parent: DidKey, children: DidKey[]): Promise<number> {
  if (children.length === 0) throw new InvalidInput('EmptyRequest', 'no children given');
  if (children.length > MAX_BULK) throw new InvalidInput('TooManyItems', `at most ${MAX_BULK} children per request, got ${children.length}`);
  const seen = new Set<string>();
  for (const c of children) {
    if (seen.has(key(c))) throw new Conflict('DuplicateContent', `'${key(c)}' appears twice in the request`);
    seen.add(key(c));
  }
  return withTransaction(sql, async (tx) => {
    // Serialises attachments to collections of one VO, so that two concurrent attachments
    // cannot together close a cycle that neither sees alone.
    await tx`select pg_advisory_xact_lock(hashtext('sluice.attach'), hashtext(${vo}))`;
    const p = await getDid(tx, vo, parent, { lock: true });
    if (p.type === 'FILE') throw new InvalidInput('InvalidAttachment', `'${key(parent)}' is a file; files have no children`);
    if (!p.open) throw new Conflict('DidClosed', `${p.type.toLowerCase()} '${key(parent)}' is closed; nothing can be attached to it`);
    const scopes = children.map((c) => c.scope);
    const names = children.map((c) => c.name);
    const found = await tx<{ scope: string; name: string; type: DidType }[]>`
      select d.scope, d.name, d.type from dids d
      join unnest(${scopes}::text[], ${names}::text[]) as t(scope, name)
        on d.vo = ${vo} and d.scope = t.scope and d.name = t.name`;
    if (found.length !== children.length) {
      const have = new Set(found.map((f) => key(f)));
      const missing = children.map(key).filter((k) => !have.has(k));
      throw new NotFound('DidNotFound', `DID ${listNames(missing)} does not exist in VO '${vo}'`, { details: { missing: missing.slice(0, 100) } });
    }
    const wrong = found.filter((f) => (p.type === 'DATASET' ? f.type !== 'FILE' : f.type === 'FILE'));
    if (wrong.length) {
      const what = p.type === 'DATASET' ? 'datasets take only files' : 'containers take only datasets and containers';
      throw new InvalidInput('InvalidAttachment', `${what}: ${listNames(wrong.map((w) => `${key(w)} (${w.type})`))}`);
    }
    if (p.type === 'CONTAINER') {
      // A cycle appears if the parent is one of the children or lies below one of them.
      const [cycle] = await tx<{ k: string }[]>`
        with recursive below(scope, name) as (
          select t.scope, t.name from unnest(${scopes}::text[], ${names}::text[]) as t(scope, name)
          union
          select c.child_scope, c.child_name from did_contents c
          join below b on c.vo = ${vo} and c.scope = b.scope and c.name = b.name
          where c.child_type <> 'FILE'
        )
        select scope || ':' || name as k from below where scope = ${parent.scope} and name = ${parent.name} limit 1`;
      if (cycle) throw new Conflict('CycleDetected', `attaching to '${key(parent)}' would make it contain itself`);
    }
    const inserted = await tx<{ n: number }[]>`
      with ins as (
        insert into did_contents (vo, scope, name, child_scope, child_name, child_type)
        select ${vo}, ${parent.scope}, ${parent.name}, d.scope, d.name, d.type
        from unnest(${scopes}::text[], ${names}::text[]) as t(scope, name)
        join dids d on d.vo = ${vo} and d.scope = t.scope and d.name = t.name
        on conflict do nothing
        returning 1
      ) select count(*)::int as n from ins`;
    if (inserted[0].n !== children.length) {
      const already = await tx<{ k: string }[]>`
        select c.child_scope || ':' || c.child_name as k from did_contents c
        join unnest(${scopes}::text[], ${names}::text[]) as t(scope, name)
          on c.child_scope = t.scope and c.child_name = t.name
        where c.vo = ${vo} and c.scope = ${parent.scope} and c.name = ${parent.name} limit 6`;
      throw new Conflict('DuplicateContent', `${listNames(already.map((a) => a.k))} already attached to '${key(parent)}'`);
    }
    return children.length;
  });
}

export async function detachDids(sql: Sql, vo: string, parent: DidKey, children: DidKey[]): Promise<number> {
  if (children.length === 0) throw new InvalidInput('EmptyRequest', 'no children given');
  if (children.length > MAX_BULK) throw new InvalidInput('TooManyItems', `at most ${MAX_BULK} children per request, got ${children.length}`);
  return withTransaction(sql, async (tx) => {
    await getDid(tx, vo, parent, { lock: true });
    const [{ n }] = await tx<{ n: number }[]>`
      with del as (
        delete from did_contents c
        using unnest(${children.map((c) => c.scope)}::text[], ${children.map((c) => c.name)}::text[]) as t(scope, name)
        where c.vo = ${vo} and c.scope = ${parent.scope} and c.name = ${parent.name}
          and c.child_scope = t.scope and c.child_name = t.name
        returning 1
      ) select count(*)::int as n from del`;
    if (n !== new Set(children.map(key)).size) {
      throw new NotFound('ContentNotFound', `not every DID given is attached to '${key(parent)}'; nothing was detached`);
    }
    return n;
  });
}

export interface Child {
  scope: string;
  name: string;
  type: DidType;
}

export async function listChildren(sql: Sql, vo: string, parent: DidKey, opts: { after?: [string, string]; limit: number }): Promise<Child[]> {
  await getDid(sql, vo, parent);
  return sql<Child[]>`
    select child_scope as scope, child_name as name, child_type as type from did_contents
    where vo = ${vo} and scope = ${parent.scope} and name = ${parent.name}
      ${opts.after ? sql`and (child_scope, child_name) > (${opts.after[0]}, ${opts.after[1]})` : sql``}
    order by child_scope, child_name limit ${opts.limit + 1}`;
}

export interface FileRow {
  scope: string;
  name: string;
  bytes: number;
  adler32: string;
  md5: string | null;
}

/** SQL fragment: the (scope, name) of every file under a DID (the DID itself if it is a file). */
export function filesUnder(sql: Sql | TransactionSql, vo: string, did: DidKey) {
  return sql`
    with recursive tree(scope, name, type) as (
      select scope, name, type from dids where vo = ${vo} and scope = ${did.scope} and name = ${did.name}
      union
      select c.child_scope, c.child_name, c.child_type from did_contents c
      join tree t on c.vo = ${vo} and c.scope = t.scope and c.name = t.name
      where t.type <> 'FILE'
    )
    select scope, name from tree where type = 'FILE'`;
}

export async function listFiles(sql: Sql, vo: string, did: DidKey, opts: { after?: [string, string]; limit: number }): Promise<FileRow[]> {
  await getDid(sql, vo, did);
  return sql<FileRow[]>`
    select d.scope, d.name, d.bytes, d.adler32, d.md5
    from (${filesUnder(sql, vo, did)}) f
    join dids d on d.vo = ${vo} and d.scope = f.scope and d.name = f.name
    ${opts.after ? sql`where (d.scope, d.name) > (${opts.after[0]}, ${opts.after[1]})` : sql``}
    order by d.scope, d.name limit ${opts.limit + 1}`;
}

/** Files, bytes of a collection (computed: collections do not store totals that could drift). */
export async function didTotals(sql: Sql, vo: string, did: DidKey): Promise<{ length: number; bytes: number }> {
  const [row] = await sql<{ length: number; bytes: number }[]>`
    select count(*)::int as length, coalesce(sum(d.bytes), 0)::bigint as bytes
    from (${filesUnder(sql, vo, did)}) f
    join dids d on d.vo = ${vo} and d.scope = f.scope and d.name = f.name`;
  return row;
}
