import type { Sql } from './db.ts';
import { Conflict, InvalidInput, NotFound, PG, pgCode } from './errors.ts';

export interface Vo {
  name: string;
  description: string;
  policy_package: string;
  share: number;
  created_at: Date;
}

export interface Issuer {
  id: number;
  issuer: string;
  vo: string | null;
  jwks_url: string | null;
  has_static_keys: boolean;
  audience: string | null;
  account_claim: string;
}

/** Creates a VO and its first admin account in one transaction. */
export async function addVo(
  sql: Sql,
  vo: { name: string; description?: string; policy_package?: string; share?: number; admin?: string },
): Promise<Vo> {
  try {
    return await sql.begin(async (tx) => {
      const [row] = await tx<Vo[]>`
        insert into vos (name, description, policy_package, share)
        values (${vo.name}, ${vo.description ?? ''}, ${vo.policy_package ?? 'default'}, ${vo.share ?? 1})
        returning name, description, policy_package, share, created_at`;
      await tx`insert into accounts (vo, name, type, role) values (${vo.name}, ${vo.admin ?? 'admin'}, 'user', 'admin')`;
      return row;
    });
  } catch (e) {
    if (pgCode(e) === PG.uniqueViolation) throw new Conflict('DuplicateVo', `VO '${vo.name}' already exists`);
    throw e;
  }
}

export async function listVos(sql: Sql): Promise<Vo[]> {
  return sql<Vo[]>`select name, description, policy_package, share, created_at from vos order by name`;
}

export async function getVo(sql: Sql, name: string): Promise<Vo> {
  const [row] = await sql<Vo[]>`select name, description, policy_package, share, created_at from vos where name = ${name}`;
  if (!row) throw new NotFound('VoNotFound', `VO '${name}' does not exist`);
  return row;
}

export async function updateVo(
  sql: Sql,
  name: string,
  patch: { description?: string; policy_package?: string; share?: number },
): Promise<Vo> {
  const [row] = await sql<Vo[]>`
    update vos set
      description = coalesce(${patch.description ?? null}, description),
      policy_package = coalesce(${patch.policy_package ?? null}, policy_package),
      share = coalesce(${patch.share ?? null}::integer, share)
    where name = ${name}
    returning name, description, policy_package, share, created_at`;
  if (!row) throw new NotFound('VoNotFound', `VO '${name}' does not exist`);
  return row;
}

export async function addIssuer(
  sql: Sql,
  i: { vo: string; issuer: string; jwks_url?: string; jwks?: { keys: unknown[] }; audience?: string; account_claim?: string },
): Promise<Issuer> {
  if (!i.jwks_url && !i.jwks) throw new InvalidInput('InvalidInput', 'an issuer needs jwks_url or jwks (static public keys)');
  await getVo(sql, i.vo);
  try {
    const [row] = await sql<Issuer[]>`
      insert into issuers (issuer, vo, jwks_url, jwks, audience, account_claim)
      values (${i.issuer}, ${i.vo}, ${i.jwks_url ?? null}, ${i.jwks ? sql.json(i.jwks as never) : null},
              ${i.audience ?? null}, ${i.account_claim ?? 'sub'})
      returning id, issuer, vo, jwks_url, jwks is not null as has_static_keys, audience, account_claim`;
    return row;
  } catch (e) {
    if (pgCode(e) === PG.uniqueViolation) throw new Conflict('DuplicateIssuer', `issuer '${i.issuer}' is already trusted by VO '${i.vo}'`);
    throw e;
  }
}

export async function listIssuers(sql: Sql, vo: string): Promise<Issuer[]> {
  return sql<Issuer[]>`
    select id, issuer, vo, jwks_url, jwks is not null as has_static_keys, audience, account_claim
    from issuers where vo = ${vo} order by issuer`;
}
