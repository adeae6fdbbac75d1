import type { Command } from 'commander';
import type { Cli } from '../cli.ts';

/**
 * Storage endpoints for laptops, tests and the demo: a filesystem-backed WebDAV server with
 * HTTP third-party copy and fault injection (fixtures/storage-server.ts).
 */
export function register(program: Command, _cli: Cli): void {
  program
    .command('fixture-storage')
    .description('run a local WebDAV + HTTP-TPC storage endpoint (faults injectable via POST /.fixture/faults)')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]', '--root DIR [--port P] [--host 127.0.0.1] [--faults FILE.json] [--token T] [--no-tpc]')
    .action(async (args: string[]) => {
      const { runFixtureStorageCli } = await import('../../fixtures/storage-server.ts');
      const server = await runFixtureStorageCli(args);
      await new Promise<void>((resolve) => {
        const stop = () => void server.close().then(resolve, resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
