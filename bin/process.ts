import { setMaxListeners } from 'node:events';
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { DAEMONS, type DaemonName, type RunnableDaemon } from '../daemons/index.ts';
import { createPolicyRegistry } from '../policies/registry.ts';

/**
 * Starts daemons in this process. stop(): the loops stop (no new claims), daemons with work in
 * flight drain within the grace (the rest of their work goes back to the queue), then resolve.
 */
export function startDaemons(sql: Sql, log: Logger, names: DaemonName[]) {
  const policies = createPolicyRegistry(sql);
  const ac = new AbortController();
  // Every running transfer listens on this one signal; hundreds at once are expected.
  setMaxListeners(0, ac.signal);
  const running: Array<{ name: string; daemon: RunnableDaemon; done: Promise<void> }> = [];
  for (const name of names) {
    const daemon: RunnableDaemon = DAEMONS[name]({ sql, log: log.child({ daemon: name }), policies });
    const done = daemon.run(ac.signal).catch((err: unknown) => log.error({ err, daemon: name }, 'daemon stopped with an error'));
    running.push({ name, daemon, done });
  }
  log.info({ daemons: names }, 'daemons started');
  return {
    async stop(graceMs: number) {
      ac.abort();
      await Promise.all(running.map((r) => r.daemon.drain?.(graceMs)));
      await Promise.all(running.map((r) => r.done));
      await policies.close();
    },
  };
}

/** Resolves after `stop` ran on the first SIGINT/SIGTERM; a second signal exits at once. */
export async function untilSignal(log: Logger, stop: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) {
        log.warn('second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      stop()
        .catch((e: unknown) => {
          log.error({ err: e }, 'shutdown failed');
          process.exitCode = 1;
        })
        .finally(() => {
          // Everything was stopped in order; an idle keep-alive socket (an SDK's, a pool's) must
          // not keep the process around for minutes after that.
          setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
          resolve();
        });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
