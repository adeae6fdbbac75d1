import type { Command } from 'commander';
import { loadOrCreateLocalIssuer, mintToken } from '../../core/auth.ts';
import { createLogger } from '../../core/log.ts';
import { openDatabase } from '../../core/runtime.ts';
import { serveApi } from '../../api/server.ts';
import { DAEMONS, isDaemonName, type DaemonName } from '../../daemons/index.ts';
import { startDaemons, untilSignal } from '../process.ts';
import { type Cli, int } from '../cli.ts';

export function register(program: Command, cli: Cli): void {

  program
    .command('server')
    .description('run everything in one process: embedded PostgreSQL (unless DATABASE_URL), migrations, API and every daemon')
    .option('--port <port>', 'API port (PORT, default 8080)', int)
    .option('--host <host>', 'API address (HOST, default 127.0.0.1)')
    .option('--no-daemons', 'serve the API only')
    .option('--grace <seconds>', 'on SIGTERM, how long running transfers may finish before they are requeued (default 30)', int)
    .action(async (opts: { port?: number; host?: string; daemons: boolean; grace?: number }) => {
      const cfg = cli.config({ port: opts.port, host: opts.host });
      const log = createLogger({ level: cfg.logLevel });
      const db = await openDatabase(cfg, { log, migrate: 'apply', applicationName: 'sluice-server' });
      // A port already taken (or any start failure) must not leave the embedded database running.
      const api = await serveApi(db.sql, cfg, log).catch(async (e: unknown) => {
        await db.close();
        throw e;
      });
      const daemons = opts.daemons ? startDaemons(db.sql, log, Object.keys(DAEMONS) as DaemonName[]) : undefined;
      log.info({ home: cfg.home, database: db.embedded ? 'embedded' : 'DATABASE_URL' }, `Sluice is up at ${api.url} (try: npx sluice vo list)`);
      await untilSignal(log, async () => {
        await api.close();
        await daemons?.stop((opts.grace ?? 30) * 1000);
        await db.close();
      });
    });

  program
    .command('daemon <names...>')
    .description(`run daemons against DATABASE_URL (production layout; does not migrate): ${Object.keys(DAEMONS).join(', ')}, or all`)
    .option('--grace <seconds>', 'on SIGTERM, how long running transfers may finish before they are requeued (default 30)', int)
    .action(async (names: string[], opts: { grace?: number }) => {
      const wanted = names.includes('all') ? (Object.keys(DAEMONS) as DaemonName[]) : names;
      const unknown = wanted.filter((n) => !isDaemonName(n));
      if (unknown.length) throw new Error(`unknown daemon '${unknown.join("', '")}'; choose from ${Object.keys(DAEMONS).join(', ')}`);
      const cfg = cli.config();
      if (!cfg.databaseUrl) throw new Error("'sluice daemon' needs DATABASE_URL; for a laptop use 'sluice server' (it runs every daemon)");
      const log = createLogger({ level: cfg.logLevel });
      const db = await openDatabase(cfg, { log, migrate: 'require', applicationName: `sluice-${wanted.join('+')}`.slice(0, 63) });
      const daemons = startDaemons(db.sql, log, wanted as DaemonName[]);
      await untilSignal(log, async () => {
        await daemons.stop((opts.grace ?? 30) * 1000);
        await db.close();
      });
    });

  program
    .command('api')
    .description('run only the API against DATABASE_URL (production layout; does not migrate)')
    .option('--port <port>', 'API port (PORT, default 8080)', int)
    .option('--host <host>', 'API address (HOST, default 127.0.0.1)')
    .action(async (opts: { port?: number; host?: string }) => {
      const cfg = cli.config({ port: opts.port, host: opts.host });
      if (!cfg.databaseUrl) throw new Error("'sluice api' needs DATABASE_URL; for a laptop use 'sluice server'");
      const log = createLogger({ level: cfg.logLevel });
      const db = await openDatabase(cfg, { log, migrate: 'require', applicationName: 'sluice-api' });
      const api = await serveApi(db.sql, cfg, log).catch(async (e: unknown) => {
        await db.close();
        throw e;
      });
      await untilSignal(log, async () => {
        await api.close();
        await db.close();
      });
    });

  program
    .command('migrate')
    .description('apply pending database migrations (DATABASE_URL, or the embedded database)')
    .action(async () => {
      const cfg = cli.config();
      const log = createLogger({ level: cfg.logLevel });
      const db = await openDatabase(cfg, { log, migrate: 'apply', applicationName: 'sluice-migrate', poolMax: 2 });
      await db.close();
      console.log('database schema is up to date');
    });

  program
    .command('token')
    .description('print a token signed by the local key in SLUICE_HOME (root unless --vo is given)')
    .option('--lifetime <seconds>', 'token lifetime', int)
    .action(async (opts: { lifetime?: number }) => {
      const cfg = cli.config();
      const g = cli.globals();
      const issuer = await loadOrCreateLocalIssuer(cfg.home);
      console.log(
        await mintToken(issuer, {
          vo: g.vo,
          account: g.vo ? g.account : undefined,
          lifetimeSeconds: opts.lifetime ?? cfg.tokenLifetimeSeconds,
          audience: cfg.tokenAudience,
        }),
      );
    });
}
