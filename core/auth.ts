import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  SignJWT,
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  errors as joseErrors,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from 'jose';
import type { Sql } from './db.ts';
import { Unauthorized } from './errors.ts';

/** Who is calling: the root operator, or an account inside exactly one VO. */
export type Caller =
  | { kind: 'root'; account: 'root' }
  | { kind: 'account'; vo: string; account: string; role: 'admin' | 'user' };

export const LOCAL_ALG = 'ES256';

/** Leeway for exp/nbf between our clock and an issuer's. */
const CLOCK_TOLERANCE_SECONDS = 30;

export interface LocalIssuer {
  issuer: string;
  privateKey: CryptoKey;
  jwks: JSONWebKeySet;
}

/**
 * The embedded instance's own signing key, created on first use in `home/keys/`. Its public half
 * is registered in the `issuers` table so that every API process (on any host) can verify the
 * tokens it mints.
 */
export async function loadOrCreateLocalIssuer(home: string): Promise<LocalIssuer> {
  const dir = join(home, 'keys');
  const file = join(dir, 'local-issuer.json');
  let stored: { issuer: string; privateJwk: JWK } | undefined;
  try {
    stored = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    stored = undefined;
  }
  if (!stored) {
    const { privateKey } = await generateKeyPair(LOCAL_ALG, { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    privateJwk.kid = randomUUID();
    privateJwk.alg = LOCAL_ALG;
    stored = { issuer: `sluice-local:${randomUUID()}`, privateJwk };
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify(stored), { mode: 0o600 });
  }
  const privateKey = (await importJWK(stored.privateJwk, LOCAL_ALG)) as CryptoKey;
  const { d: _d, ...publicJwk } = stored.privateJwk;
  return { issuer: stored.issuer, privateKey, jwks: { keys: [publicJwk] } };
}

/** Trust the local issuer for root and every VO (vo = null). Idempotent. */
export async function registerLocalIssuer(sql: Sql, issuer: LocalIssuer, audience: string): Promise<void> {
  await sql`
    insert into issuers (issuer, vo, jwks, audience)
    values (${issuer.issuer}, null, ${sql.json(issuer.jwks as never)}, ${audience})
    on conflict (issuer, coalesce(vo, '')) do update set jwks = excluded.jwks, audience = excluded.audience`;
}

export async function mintToken(
  issuer: LocalIssuer,
  claims: { vo?: string; account?: string; lifetimeSeconds: number; audience: string },
): Promise<string> {
  const payload: JWTPayload & { vo?: string } = {};
  if (claims.vo) payload.vo = claims.vo;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: LOCAL_ALG, kid: issuer.jwks.keys[0]?.kid })
    .setIssuer(issuer.issuer)
    .setSubject(claims.vo ? (claims.account ?? 'admin') : 'root')
    .setAudience(claims.audience)
    .setIssuedAt()
    .setJti(randomUUID())
    .setExpirationTime(`${claims.lifetimeSeconds}s`)
    .sign(issuer.privateKey);
}

interface IssuerRow {
  issuer: string;
  vo: string | null;
  jwks: JSONWebKeySet | null;
  jwks_url: string | null;
  audience: string | null;
  account_claim: string;
}

interface AccountRow {
  role: 'admin' | 'user';
  status: string;
}

export interface Verifier {
  verify(authorization: string | undefined): Promise<Caller>;
  /** Drop cached issuers and accounts (after an admin changes them in this process). */
  invalidate(): void;
}

/**
 * Verifies bearer tokens against the issuers trusted in the database. Issuer keys and account
 * roles are cached for a few seconds: a token check must not cost two queries per request, and
 * a revoked account or a rotated key takes effect within `cacheMs` in every process.
 *
 * Verified tokens are cached for as long too (never past their expiry): a client sends the same
 * token with every request, and the signature check (ES256 through WebCrypto, ~0.5 ms of the
 * event loop) was the largest single cost of a small read under load (bench/api-load.ts).
 */
export function createVerifier(sql: Sql, options: { audience: string; cacheMs?: number }): Verifier {
  const cacheMs = options.cacheMs ?? 5000;
  type KeyGetter = ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;
  let issuers: { at: number; rows: Map<string, Array<IssuerRow & { keys: KeyGetter }>> } | undefined;
  const accounts = new Map<string, { at: number; row: AccountRow | undefined }>();
  // Keyed by the whole token (header, claims and signature): only these exact bytes were checked.
  const verified = new Map<string, { at: number; expiresAt: number; row: IssuerRow; payload: JWTPayload & Record<string, unknown> }>();

  async function issuerRows(): Promise<Map<string, Array<IssuerRow & { keys: KeyGetter }>>> {
    if (issuers && Date.now() - issuers.at < cacheMs) return issuers.rows;
    const rows = await sql<IssuerRow[]>`select issuer, vo, jwks, jwks_url, audience, account_claim from issuers`;
    const map = new Map<string, Array<IssuerRow & { keys: KeyGetter }>>();
    for (const r of rows) {
      const keys = r.jwks ? createLocalJWKSet(r.jwks) : createRemoteJWKSet(new URL(r.jwks_url!), { timeoutDuration: 5000 });
      map.set(r.issuer, [...(map.get(r.issuer) ?? []), { ...r, keys }]);
    }
    issuers = { at: Date.now(), rows: map };
    return map;
  }

  async function account(vo: string, name: string): Promise<AccountRow | undefined> {
    const key = `${vo}\u0000${name}`;
    const hit = accounts.get(key);
    if (hit && Date.now() - hit.at < cacheMs) return hit.row;
    const [row] = await sql<AccountRow[]>`select role, status from accounts where vo = ${vo} and name = ${name}`;
    if (accounts.size > 10_000) accounts.clear();
    accounts.set(key, { at: Date.now(), row });
    return row;
  }

  return {
    invalidate() {
      issuers = undefined;
      accounts.clear();
      verified.clear();
    },
    async verify(authorization) {
      if (!authorization) throw new Unauthorized('missing Authorization header; send "Authorization: Bearer <token>" (sluice token prints one)', 'MissingToken');
      const m = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/i.exec(authorization);
      if (!m) throw new Unauthorized('Authorization header must be "Bearer <JWT>"', 'InvalidToken');
      const token = m[1];
      const hit = verified.get(token);
      const now = Date.now();
      if (hit && now - hit.at < cacheMs && now < hit.expiresAt) return callerFrom(hit.row, hit.payload);
      let unverified: JWTPayload & { vo?: unknown };
      try {
        unverified = decodeJwt(token);
      } catch {
        throw new Unauthorized('token is not a well-formed JWT', 'InvalidToken');
      }
      const candidates = typeof unverified.iss === 'string' ? (await issuerRows()).get(unverified.iss) : undefined;
      if (!candidates?.length) throw new Unauthorized(`token issuer '${String(unverified.iss)}' is not trusted`, 'UntrustedIssuer');
      const claimedVo = typeof unverified.vo === 'string' ? unverified.vo : undefined;
      // A VO's own issuer row wins over the global one for tokens of that VO.
      const row =
        candidates.find((c) => c.vo !== null && (claimedVo === undefined || c.vo === claimedVo)) ??
        candidates.find((c) => c.vo === null);
      if (!row) throw new Unauthorized(`issuer '${unverified.iss}' is not trusted for VO '${claimedVo}'`, 'UntrustedIssuer');
      let payload: JWTPayload & Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, row.keys, {
          issuer: row.issuer,
          audience: row.audience ?? options.audience,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
        }));
      } catch (e) {
        if (e instanceof joseErrors.JWTExpired) throw new Unauthorized('token has expired; get a new one', 'TokenExpired');
        if (e instanceof joseErrors.JWTClaimValidationFailed)
          throw new Unauthorized(`token claim '${e.claim}' is not valid here: ${e.reason}`, 'InvalidToken');
        throw new Unauthorized('token signature or format is not valid', 'InvalidToken');
      }
      if (verified.size >= 10_000) verified.clear();
      // The same leeway jwtVerify gives `exp` (clockTolerance); no exp: the issuer cache's age bounds it.
      const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 + CLOCK_TOLERANCE_SECONDS * 1000 : Number.POSITIVE_INFINITY;
      verified.set(token, { at: Date.now(), expiresAt, row, payload });
      return callerFrom(row, payload);
    },
  };

  /** The caller a verified token names under its issuer row: root, or an active account of a VO. */
  async function callerFrom(row: IssuerRow, payload: JWTPayload & Record<string, unknown>): Promise<Caller> {
    let vo: string | undefined;
    let name: string | undefined;
    if (row.vo === null) {
      vo = typeof payload.vo === 'string' ? payload.vo : undefined;
      name = typeof payload.sub === 'string' ? payload.sub : undefined;
      if (!vo) {
        if (name === 'root') return { kind: 'root', account: 'root' };
        throw new Unauthorized('token names no VO and is not a root token', 'InvalidToken');
      }
    } else {
      vo = row.vo;
      const claim = payload[row.account_claim];
      name = typeof claim === 'string' ? claim : undefined;
    }
    if (!name) throw new Unauthorized('token does not name an account', 'InvalidToken');
    const acct = await account(vo, name);
    if (!acct) throw new Unauthorized(`account '${name}' does not exist in VO '${vo}'`, 'UnknownAccount');
    if (acct.status !== 'active') throw new Unauthorized(`account '${name}' is suspended`, 'AccountSuspended');
    return { kind: 'account', vo, account: name, role: acct.role };
  }
}
