import type { Command } from 'commander';
import { resolve } from 'node:path';
import { serveApi } from '../../api/server.ts';
import { loadOrCreateLocalIssuer, mintToken } from '../../core/auth.ts';
import { createLogger } from '../../core/log.ts';
import { openDatabase } from '../../core/runtime.ts';
import { DAEMONS, type DaemonName } from '../../daemons/index.ts';
import { seedDemo, startDemoSites } from '../../fixtures/demo.ts';
import { type Cli, int } from '../cli.ts';
import { startDaemons, untilSignal } from '../process.ts';

export function register(program: Command, cli: Cli): void {
  program
    .command('demo')
    .description('a whole data lake on this laptop: database, API, every daemon, four storage sites, two VOs, rules replicating data')
    .option('--port <port>', 'API port (default 8080)', int)
    .option('--storage-port <port>', 'first of four storage ports (default 9101)', int)
    .option('--home <dir>', 'data directory (default ./.sluice-demo; SLUICE_HOME also works)')
    .action(async (opts: { port?: number; storagePort?: number; home?: string }) => {
      const home = resolve(opts.home ?? process.env.SLUICE_HOME ?? '.sluice-demo');
      // The demo speaks through its banner; logs only when something is wrong (or LOG_LEVEL says so).
      const cfg = cli.config({ home, port: opts.port, databaseUrl: undefined, logLevel: process.env.LOG_LEVEL ?? 'warn' });
      const log = createLogger({ level: cfg.logLevel });
      const say = (line: string) => console.log(line);
      const started = Date.now();
      say(`Sluice demo in ${home}`);
      const sites = await startDemoSites(home, opts.storagePort ?? 9101).catch((e: Error) => {
        throw new Error(`could not start the demo storage sites (${e.message}); is another demo running? try --storage-port`);
      });
      const db = await openDatabase(cfg, { log, migrate: 'apply', applicationName: 'sluice-demo' }).catch(async (e: unknown) => {
        await sites.close();
        throw e;
      });
      const api = await serveApi(db.sql, cfg, log).catch(async (e: unknown) => {
        await db.close();
        await sites.close();
        throw new Error(`${(e as Error).message}; is another Sluice using port ${cfg.port}? try --port`, { cause: e });
      });
      const daemons = startDaemons(db.sql, log, Object.keys(DAEMONS) as DaemonName[]);
      const stop = async () => {
        say('stopping: draining transfers, then the API, the database and the storage sites ...');
        await api.close();
        await daemons.stop(5000);
        await db.close();
        await sites.close();
        say('stopped; run the demo again to resume');
      };
      try {
        const report = await seedDemo(api.url, cfg, sites, say);
        const issuer = await loadOrCreateLocalIssuer(cfg.home);
        const rootToken = await mintToken(issuer, { lifetimeSeconds: 12 * 3600, audience: cfg.tokenAudience });
        const envPrefix = `SLUICE_HOME=${home} SLUICE_URL=${api.url}`;
        say('');
        say(`Ready in ${((Date.now() - started) / 1000).toFixed(1)} s. ${report.created.length ? `Created: ${report.created.join(', ')}.` : 'Resumed.'}`);
        say('');
        say(`  Dashboard   ${api.url}/ui          (log in with the root token below)`);
        say(`  API docs    ${api.url}/docs`);
        say(`  Metrics     ${api.url}/metrics`);
        say('');
        say(`  Root token  ${rootToken}`);
        say('');
        say('  Try, in another terminal from this checkout:');
        say(`    ${envPrefix} npx sluice links`);
        say(`    ${envPrefix} npx sluice --vo atlas rule list`);
        for (const r of report.rules) say(`    ${envPrefix} npx sluice --vo ${r.vo} rule show ${r.id} --watch    # ${r.comment}`);
        say(`    ${envPrefix} npx sluice --vo cms replica list Run2024:Muon0.RAW`);
        say(`    ${envPrefix} npx sluice --vo atlas transfers --state ACTIVE`);
        say('');
        say('  Storage sites: site-a and site-b (WebDAV + HTTP-TPC), site-s3 (S3), site-slow (throttled, 5% errors)');
        say('  Ctrl-C stops everything; running the demo again resumes where it stopped.');
      } catch (e) {
        await stop();
        throw e;
      }
      await untilSignal(log, stop);
    });
}
