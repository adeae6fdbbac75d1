import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';
import type { Config } from '../core/config.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  url: string;
  token?: string;
  vo?: string;
  account?: string;
}

/**
 * The CLI's view of the REST API. Tokens come from --token / SLUICE_TOKEN, or are minted from
 * the local signing key in SLUICE_HOME (root, or --vo/--account), which is how a laptop user
 * works without an identity provider.
 */
export function createClient(options: ClientOptions, config: Config) {
  let token = options.token;
  // A token minted here is renewed before it expires: `--watch` commands run for hours.
  let mintedAt = 0;
  async function bearer(): Promise<string> {
    if (token && (options.token || Date.now() - mintedAt < 480_000)) return token;
    try {
      const issuer = await loadOrCreateLocalIssuer(config.home);
      token = await mintToken(issuer, { vo: options.vo, account: options.account, lifetimeSeconds: 600, audience: config.tokenAudience });
      mintedAt = Date.now();
      return token;
    } catch (e) {
      throw new Error(`no token: set SLUICE_TOKEN or --token, or run where SLUICE_HOME (${config.home}) holds the local signing key (${(e as Error).message})`);
    }
  }
  async function request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(options.url.replace(/\/$/, '') + path, {
        method,
        headers: { authorization: `Bearer ${await bearer()}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'Unreachable', `cannot reach the Sluice API at ${options.url} (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}); is 'sluice server' running? (--url / SLUICE_URL)`);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(res.status, err?.code ?? `HTTP${res.status}`, err?.message ?? text.slice(0, 500));
    }
    return data as T;
  }
  /** Follows `next` cursors until `max` items. */
  async function list<T>(path: string, max = 1000): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const pageSize = Math.min(1000, max - items.length);
      const page: { items: T[]; next?: string | null } = await request('GET', `${path}${sep}limit=${pageSize}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      items.push(...page.items);
      cursor = page.next ?? null;
    } while (cursor && items.length < max);
    return items;
  }
  return { request, list, bearer };
}

export type Client = ReturnType<typeof createClient>;
