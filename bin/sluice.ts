import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ApiError } from './client.ts';
import { createCli } from './cli.ts';
import * as catalogue from './commands/catalogue.ts';
import * as rules from './commands/rules.ts';
import * as demo from './commands/demo.ts';
import * as data from './commands/data.ts';
import * as fixtures from './commands/fixtures.ts';
import * as links from './commands/links.ts';
import * as service from './commands/service.ts';
import * as storage from './commands/storage.ts';
import * as tenancy from './commands/tenancy.ts';
import * as transfers from './commands/transfers.ts';

const program = new Command();
program
  .name('sluice')
  .description('Sluice: replica catalogue, replication rules and transfers for scientific collaborations')
  .option('--url <url>', 'API base URL (SLUICE_URL)', process.env.SLUICE_URL ?? 'http://127.0.0.1:8080')
  .option('--token <jwt>', 'bearer token (SLUICE_TOKEN); default: minted from the local key in SLUICE_HOME')
  .option('--vo <vo>', 'act as an account of this VO (token minted from the local key)')
  .option('--account <account>', 'account to act as with --vo', 'admin')
  .version((JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version)
  .option('--json', 'print JSON instead of tables')
  .showHelpAfterError();

const cli = createCli(program);
for (const m of [service, tenancy, storage, catalogue, rules, fixtures, data, transfers, links, demo]) m.register(program, cli);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof ApiError) console.error(`error ${e.code}: ${e.message}`);
  else console.error(`error: ${(e as Error).message}`);
  process.exitCode = 1;
});
