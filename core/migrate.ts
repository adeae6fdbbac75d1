import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Sql } from './db.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../sql/', import.meta.url));

/** Arbitrary but fixed: every Sluice process that migrates takes this advisory lock first. */
const MIGRATION_LOCK = 0x51_1c_e0_01;

export interface Migration {
  version: number;
  name: string;
  file: string;
}

export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((file) => ({ version: Number(file.slice(0, 4)), name: file.slice(5, -4), file }));
}

/**
 * Applies pending forward-only migrations, each in its own transaction, under a session
 * advisory lock so that several processes starting at once apply each migration exactly once.
 * Returns the versions applied by this call.
 */
export async function migrate(sql: Sql, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await listMigrations(dir);
  const applied: number[] = [];
  await sql.reserve().then(async (conn) => {
    try {
      await conn`select pg_advisory_lock(${MIGRATION_LOCK})`;
      await conn`create table if not exists schema_migrations (
        version integer primary key, name text not null, applied_at timestamptz not null default now())`;
      const done = new Set((await conn<{ version: number }[]>`select version from schema_migrations`).map((r) => r.version));
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        const text = await readFile(new URL(m.file, `file://${dir.endsWith('/') ? dir : dir + '/'}`), 'utf8');
        await conn.unsafe('begin');
        try {
          // Migration files are ours, shipped with the code: the one place unsafe() is right.
          await conn.unsafe(text);
          await conn`insert into schema_migrations (version, name) values (${m.version}, ${m.name})`;
          await conn.unsafe('commit');
        } catch (e) {
          await conn.unsafe('rollback');
          throw new Error(`migration ${m.file} failed: ${(e as Error).message}`, { cause: e });
        }
        applied.push(m.version);
      }
    } finally {
      await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => {});
      conn.release();
    }
  });
  return applied;
}

/** Versions known to the code but not applied to the database (the API refuses to start then). */
export async function pendingMigrations(sql: Sql, dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const migrations = await listMigrations(dir);
  const [{ exists }] = await sql<{ exists: boolean }[]>`select to_regclass('schema_migrations') is not null as exists`;
  if (!exists) return migrations;
  const done = new Set((await sql<{ version: number }[]>`select version from schema_migrations`).map((r) => r.version));
  return migrations.filter((m) => !done.has(m.version));
}
