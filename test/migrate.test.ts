import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMigrations, migrate, pendingMigrations } from '../core/migrate.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe('migrations', () => {
  it('are numbered, applied, and idempotent under concurrency', async () => {
    const all = await listMigrations();
    expect(all.length).toBeGreaterThan(0);
    expect(all.map((m) => m.version)).toEqual([...all.map((m) => m.version)].sort((a, b) => a - b));
    // The test database is a clone of the migrated template: nothing is pending.
    expect(await pendingMigrations(db.sql)).toEqual([]);
    // Several processes migrating at once apply nothing twice.
    const results = await Promise.all([migrate(db.sql), migrate(db.sql), migrate(db.sql)]);
    expect(results.flat()).toEqual([]);
    const rows = await db.sql`select version from schema_migrations order by version`;
    expect(rows.map((r) => r.version)).toEqual(all.map((m) => m.version));
  });

  it('creates the catalogue tables', async () => {
    const rows = await db.sql<{ t: string }[]>`
      select table_name as t from information_schema.tables where table_schema = 'public'`;
    const names = rows.map((r) => r.t);
    for (const t of ['vos', 'accounts', 'scopes', 'storage_endpoints', 'rses', 'rse_attributes', 'distances', 'dids', 'did_contents', 'replicas']) {
      expect(names).toContain(t);
    }
  });
});
