import type { Sql } from './db.ts';
import { Conflict, NotFound, PG, pgCode } from './errors.ts';

export interface Scope {
  name: string;
  account: string;
  created_at: Date;
}

export async function addScope(sql: Sql, vo: string, s: { name: string; account: string }): Promise<Scope> {
  try {
    const [row] = await sql<Scope[]>`
      insert into scopes (vo, name, account) values (${vo}, ${s.name}, ${s.account})
      returning name, account, created_at`;
    return row;
  } catch (e) {
    if (pgCode(e) === PG.uniqueViolation) throw new Conflict('DuplicateScope', `scope '${s.name}' already exists in VO '${vo}'`);
    if (pgCode(e) === PG.foreignKeyViolation) throw new NotFound('AccountNotFound', `account '${s.account}' does not exist in VO '${vo}'`);
    throw e;
  }
}

export async function listScopes(sql: Sql, vo: string, opts: { after?: string; limit: number; account?: string }): Promise<Scope[]> {
  return sql<Scope[]>`
    select name, account, created_at from scopes
    where vo = ${vo}
      ${opts.after ? sql`and name > ${opts.after}` : sql``}
      ${opts.account ? sql`and account = ${opts.account}` : sql``}
    order by name limit ${opts.limit + 1}`;
}

export async function getScope(sql: Sql, vo: string, name: string): Promise<Scope> {
  const [row] = await sql<Scope[]>`select name, account, created_at from scopes where vo = ${vo} and name = ${name}`;
  if (!row) throw new NotFound('ScopeNotFound', `scope '${name}' does not exist in VO '${vo}'`);
  return row;
}
