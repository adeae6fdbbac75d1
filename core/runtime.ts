import type { Config } from './config.ts';
import { connect, isConnectionError, type Sql } from './db.ts';
import { startEmbedded, type EmbeddedDatabase } from './embedded.ts';
import type { Logger } from './log.ts';
import { migrate, pendingMigrations } from './migrate.ts';

export interface Database {
  sql: Sql;
  url: string;
  embedded?: EmbeddedDatabase;
  close(): Promise<void>;
}

/**
 * Connects to DATABASE_URL, or starts the embedded PostgreSQL in SLUICE_HOME when there is none.
 * `migrate: 'apply'` migrates (all-in-one and `sluice migrate`); `'require'` refuses to run on a
 * schema that is behind the code (production API and daemon processes never migrate implicitly).
 */
export async function openDatabase(
  config: Config,
  options: { log: Logger; migrate: 'apply' | 'require'; applicationName?: string; poolMax?: number; waitSeconds?: number },
): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let url = config.databaseUrl;
  if (!url) {
    embedded = await startEmbedded({ home: config.home, log: options.log });
    url = embedded.url;
  }
  const sql = connect({ url, max: options.poolMax ?? config.dbPoolMax, applicationName: options.applicationName });
  try {
    // A process started while the database restarts (or before it is up) waits for it rather
    // than exiting: a supervisor restarting daemons must not race the database.
    const deadline = Date.now() + (options.waitSeconds ?? config.dbWaitSeconds) * 1000;
    for (let attempt = 1; ; attempt++) {
      try {
        await sql`select 1`;
        break;
      } catch (e) {
        if (!isConnectionError(e) || Date.now() > deadline) throw e;
        const delay = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
        options.log.warn({ err: e, attempt, retryInMs: delay }, 'database not reachable yet; waiting');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (options.migrate === 'apply') {
      const applied = await migrate(sql);
      if (applied.length) options.log.info({ applied }, 'applied database migrations');
    } else {
      const pending = await pendingMigrations(sql);
      if (pending.length) {
        throw new Error(`the database schema is behind this version (pending: ${pending.map((m) => m.file).join(', ')}); run 'sluice migrate' first`);
      }
    }
  } catch (e) {
    await sql.end({ timeout: 1 });
    await embedded?.stop();
    throw e;
  }
  return {
    sql,
    url,
    embedded,
    async close() {
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    },
  };
}
