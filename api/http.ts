import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { Forbidden, InvalidInput } from '../core/errors.ts';
import type { Caller } from '../core/auth.ts';
import type { AppEnv } from './env.ts';

/**
 * Zod issues become one InvalidInput with a stable code: unknown fields, and fields whose
 * meaning implies a code (checksums, sizes, names); everything else is InvalidInput.
 */
const FIELD_CODES: Record<string, string> = {
  adler32: 'InvalidChecksum',
  md5: 'InvalidChecksum',
  bytes: 'InvalidSize',
  scope: 'InvalidName',
  name: 'InvalidName',
  account: 'InvalidName',
  rse: 'InvalidName',
  key: 'InvalidName',
  type: 'InvalidType',
  url: 'InvalidUrl',
  limit: 'InvalidLimit',
  cursor: 'InvalidCursor',
};

export function validationError(error: z.ZodError): InvalidInput {
  const issue = error.issues[0];
  const path = issue.path.map(String);
  const where = path.length ? path.join('.') : 'body';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.join("', '");
    return new InvalidInput('UnknownField', `unknown field${issue.keys.length > 1 ? 's' : ''} '${keys}' in ${where}`, {
      details: { fields: issue.keys, path },
    });
  }
  const field = [...path].reverse().find((p) => !/^\d+$/.test(p));
  // Not `field && ...`: an empty record key ('' in the path) made the code '' (found by test/fuzz).
  const code = (field ? FIELD_CODES[field] : undefined) ?? 'InvalidInput';
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem${error.issues.length > 2 ? 's' : ''})` : '';
  return new InvalidInput(code, `${where}: ${issue.message}${more}`, { details: { path } });
}

/** A sub-app whose validation failures throw (and so reach app.onError) instead of answering. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });
}

/** The VO a caller acts in; root has none and is refused VO-scoped operations. */
export function voOf(caller: Caller): string {
  if (caller.kind === 'root') {
    throw new Forbidden(
      'root manages VOs, endpoints and links but acts in no VO; use a VO account token (sluice token --vo VO --account NAME)',
      'VoRequired',
    );
  }
  return caller.vo;
}

/** A VO caller as the policy layer sees it. */
export type Actor = {
  vo: string;
  account: string;
  role: 'admin' | 'user';
};

export function actorOf(caller: Caller): Actor {
  if (caller.kind === 'root') voOf(caller);
  const c = caller as Extract<Caller, { kind: 'account' }>;
  return { vo: c.vo, account: c.account, role: c.role };
}

export function requireRoot(caller: Caller): void {
  if (caller.kind !== 'root') throw new Forbidden('only root may do this', 'RootRequired');
}

export function callerOf(c: Context<AppEnv>): Caller {
  return c.get('caller');
}

// ---- shared schemas ---------------------------------------------------------------------------

export const ErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .openapi('Error');

const errorContent = { content: { 'application/json': { schema: ErrorSchema } } };
export const errorResponses = {
  400: { ...errorContent, description: 'Invalid input' },
  401: { ...errorContent, description: 'Missing or invalid token' },
  403: { ...errorContent, description: 'Not allowed' },
  404: { ...errorContent, description: 'Not found (in the caller\'s VO)' },
  409: { ...errorContent, description: 'Conflicts with the current state' },
} as const;

export function json<T extends z.ZodTypeAny>(schema: T, description: string) {
  return { content: { 'application/json': { schema } }, description };
}

export function body<T extends z.ZodTypeAny>(schema: T) {
  return { content: { 'application/json': { schema } }, required: true };
}

export const ScopeName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$/, 'must be 1-30 letters, digits, _ . - starting with a letter or digit');
export const DidName = z.string().min(1).max(250);
export const AccountName = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'must be 1-64 lower-case letters, digits, _ . - starting with a letter or digit');
export const VoName = z.string().regex(/^[a-z][a-z0-9_-]{1,31}$/, 'must be 2-32 lower-case letters, digits, _ - starting with a letter');
export const RseName = z.string().regex(/^[A-Z0-9][A-Z0-9_-]{0,63}$/, 'must be 1-64 upper-case letters, digits, _ - (RSE names are upper case)');
export const EndpointName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, _ . - starting with a letter or digit');
export const AttributeKey = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -');
export const AttributeValue = z.union([z.string().max(256), z.number(), z.boolean()]).transform((v) => String(v));
export const Adler32 = z.string().regex(/^[0-9a-fA-F]{8}$/, 'adler32 must be 8 hex digits').transform((s) => s.toLowerCase());
export const Md5 = z.string().regex(/^[0-9a-fA-F]{32}$/, 'md5 must be 32 hex digits').transform((s) => s.toLowerCase());
export const Bytes = z.number().int('must be a whole number of bytes').min(0, 'must not be negative').max(Number.MAX_SAFE_INTEGER);

/** DID metadata: flat key -> scalar, as in Rucio; bounded so no request can store a huge blob. */
export const Meta = z
  .record(AttributeKey, z.union([z.string().max(1024), z.number(), z.boolean(), z.null()]))
  .refine((m) => Object.keys(m).length <= 100, 'at most 100 metadata keys');

export const DidRef = z.object({ scope: ScopeName, name: DidName }).strict();

export const Limit = z.coerce.number().int().min(1).max(10_000).default(100);
export const Cursor = z.string().max(2048).optional();

export function page<T extends z.ZodTypeAny>(item: T) {
  return z.object({ items: z.array(item), next: z.string().nullable() });
}

/** Opaque keyset cursors: base64url of the last row's key. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string | undefined, arity: number): unknown[] | undefined {
  if (!cursor) return undefined;
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(key) && key.length === arity && key.every((k) => typeof k === 'string' || typeof k === 'number')) return key;
  } catch {
    // fall through
  }
  throw new InvalidInput('InvalidCursor', 'cursor is not one this server returned; start again without it');
}

/** Split rows fetched with limit+1 into a page and the next cursor. */
export function paginate<R>(rows: R[], limit: number, key: (r: R) => unknown[]): { items: R[]; next: string | null } {
  if (rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(key(items[items.length - 1])) };
}
