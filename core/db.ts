import postgres from 'postgres';
import { PG, pgCode } from './errors.ts';

export type Sql = postgres.Sql<Record<string, never>>;
export type TransactionSql = postgres.TransactionSql<Record<string, never>>;

export interface DbOptions {
  url: string;
  /** Connections in this process's pool. */
  max?: number;
  /** Shown in pg_stat_activity so operators can tell processes apart. */
  applicationName?: string;
  idleTimeoutSeconds?: number;
}

/**
 * One pool per process. Bigints come back as JS numbers: every bigint column here (bytes, ids,
 * counters) stays far below 2^53, and numbers keep the API's JSON plain.
 */
export function connect(options: DbOptions): Sql {
  return postgres(options.url, {
    max: options.max ?? 10,
    idle_timeout: options.idleTimeoutSeconds ?? 30,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'sluice' },
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (x: unknown) => String(x),
        parse: (x: string) => Number(x),
      },
    },
  }) as unknown as Sql;
}

const TRANSIENT = new Set<string>([PG.serializationFailure, PG.deadlockDetected]);

/**
 * Runs `fn` in a transaction and retries it on serialization failures and deadlocks, the two
 * errors Postgres documents as "retry the transaction". The one place that does this.
 */
export async function withTransaction<T>(
  sql: Sql,
  fn: (tx: TransactionSql) => Promise<T>,
  options: { attempts?: number; isolation?: 'read committed' | 'repeatable read' | 'serializable' } = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      const begin = options.isolation ? `isolation level ${options.isolation}` : undefined;
      const run = (tx: postgres.TransactionSql) => fn(tx as unknown as TransactionSql);
      return (begin ? await sql.begin(begin, run) : await sql.begin(run)) as T;
    } catch (e) {
      const code = pgCode(e);
      if (attempt >= attempts || code === undefined || !TRANSIENT.has(code)) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED']);

/**
 * The database could not be reached, or is starting up or shutting down: the kind of failure
 * that waiting fixes (as opposed to a bad query or a missing privilege).
 */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== 'string') return false;
  // 57P01-57P03: admin shutdown, crash shutdown, cannot connect now; class 08: connection exception.
  return CONNECTION_CODES.has(code) || code.startsWith('08') || /^57P0[1-3]$/.test(code);
}
