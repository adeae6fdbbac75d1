import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { connect, type Sql } from '../../core/db.ts';

export interface TestDatabase {
  sql: Sql;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file (cloned from the run's template). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const template = inject('pgTemplate');
  const name = `sluice_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = connect({ url: adminUrl, max: 1 });
  for (let attempt = 0; ; attempt++) {
    try {
      await admin`create database ${admin(name)} template ${admin(template)}`;
      break;
    } catch (e) {
      // Two clones of one template at the same instant can collide; a retry settles it.
      if (attempt >= 10) throw e;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const sql = connect({ url: url.toString(), max: 10 });
  return {
    sql,
    url: url.toString(),
    async drop() {
      await sql.end({ timeout: 5 });
      await admin`drop database if exists ${admin(name)} with (force)`;
      await admin.end();
    },
  };
}
