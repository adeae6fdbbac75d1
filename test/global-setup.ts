import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { connect } from '../core/db.ts';
import { startEmbedded, type EmbeddedDatabase } from '../core/embedded.ts';
import { migrate } from '../core/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

/**
 * One PostgreSQL server for the whole run: `DATABASE_URL` when set (its role must be allowed to
 * create databases), else an embedded one in a temporary directory. The schema is migrated once
 * into a template database; every test file clones its own database from it.
 */
export default async function setup(project: TestProject) {
  let embedded: EmbeddedDatabase | undefined;
  let home: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    home = await mkdtemp(join(tmpdir(), 'sluice-test-pg-'));
    embedded = await startEmbedded({ home, ephemeral: true });
    adminUrl = embedded.url;
  }
  const template = `sluice_test_template_${process.pid}`;
  const admin = connect({ url: adminUrl, max: 1 });
  await admin`drop database if exists ${admin(template)}`;
  await admin`create database ${admin(template)}`;
  const url = new URL(adminUrl);
  url.pathname = `/${template}`;
  const tpl = connect({ url: url.toString(), max: 1 });
  await migrate(tpl);
  await tpl.end();
  await admin.end();
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);

  return async () => {
    const a = connect({ url: adminUrl!, max: 1 });
    await a`drop database if exists ${a(template)} with (force)`.catch(() => {});
    await a.end();
    await embedded?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  };
}
