import type { Sql } from './db.ts';
import { Conflict, NotFound, PG, pgCode } from './errors.ts';

export interface Account {
  name: string;
  type: 'user' | 'group' | 'service';
  role: 'user' | 'admin';
  email: string | null;
  status: 'active' | 'suspended';
  created_at: Date;
}

const COLUMNS = ['name', 'type', 'role', 'email', 'status', 'created_at'] as const;

export async function addAccount(
  sql: Sql,
  vo: string,
  a: { name: string; type?: Account['type']; role?: Account['role']; email?: string },
): Promise<Account> {
  try {
    const [row] = await sql<Account[]>`
      insert into accounts (vo, name, type, role, email)
      values (${vo}, ${a.name}, ${a.type ?? 'user'}, ${a.role ?? 'user'}, ${a.email ?? null})
      returning ${sql(COLUMNS)}`;
    return row;
  } catch (e) {
    if (pgCode(e) === PG.uniqueViolation) throw new Conflict('DuplicateAccount', `account '${a.name}' already exists in VO '${vo}'`);
    throw e;
  }
}

export async function listAccounts(sql: Sql, vo: string, opts: { after?: string; limit: number }): Promise<Account[]> {
  return sql<Account[]>`
    select ${sql(COLUMNS)} from accounts
    where vo = ${vo} ${opts.after ? sql`and name > ${opts.after}` : sql``}
    order by name limit ${opts.limit + 1}`;
}

export async function getAccount(sql: Sql, vo: string, name: string): Promise<Account> {
  const [row] = await sql<Account[]>`select ${sql(COLUMNS)} from accounts where vo = ${vo} and name = ${name}`;
  if (!row) throw new NotFound('AccountNotFound', `account '${name}' does not exist in VO '${vo}'`);
  return row;
}

export async function updateAccount(
  sql: Sql,
  vo: string,
  name: string,
  patch: { role?: Account['role']; email?: string | null; status?: Account['status'] },
): Promise<Account> {
  const [row] = await sql<Account[]>`
    update accounts set
      role = coalesce(${patch.role ?? null}, role),
      status = coalesce(${patch.status ?? null}, status),
      email = case when ${patch.email !== undefined} then ${patch.email ?? null} else email end
    where vo = ${vo} and name = ${name}
    returning ${sql(COLUMNS)}`;
  if (!row) throw new NotFound('AccountNotFound', `account '${name}' does not exist in VO '${vo}'`);
  return row;
}
