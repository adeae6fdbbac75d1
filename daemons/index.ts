/**
 * Every daemon by name, so that `sluice server` can run them all in one process and
 * `sluice daemon <name...>` any subset in its own. Each factory takes the shared dependencies
 * and the environment (options are resolved here, once, with clear errors).
 */
import type { Sql } from '../core/db.ts';
import { InvalidInput } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { PolicyRegistry } from '../policies/registry.ts';
import { createConveyor, type ConveyorOptions } from './conveyor.ts';
import { createEndpointProber } from './endpoint-probes.ts';
import { createJudgeCleaner } from './judge-cleaner.ts';
import { createJudgeEvaluator } from './judge-evaluator.ts';
import { createJudgeRepairer } from './judge-repairer.ts';
import { createLinkStats } from './link-stats.ts';
import type { Daemon } from './loop.ts';
import { createOptimizerDaemon } from './optimizer.ts';
import { createReaper } from './reaper.ts';

export interface DaemonDeps {
  sql: Sql;
  log: Logger;
  policies: PolicyRegistry;
  env?: NodeJS.ProcessEnv;
}

/** A daemon; those with work in flight (the conveyor) also drain on shutdown. */
export type RunnableDaemon = Daemon & { drain?(graceMs: number): Promise<void> };

export const DAEMONS = {
  'judge-evaluator': (d: DaemonDeps) => createJudgeEvaluator(d),
  'judge-repairer': (d: DaemonDeps) => createJudgeRepairer(d),
  'judge-cleaner': (d: DaemonDeps) => createJudgeCleaner(d),
  reaper: (d: DaemonDeps) => createReaper(d),
  conveyor: (d: DaemonDeps) => createConveyor(d, conveyorOptionsFromEnv(d.env ?? process.env)),
  optimizer: (d: DaemonDeps) => createOptimizerDaemon(d),
  'link-stats': (d: DaemonDeps) => createLinkStats(d),
  'endpoint-probes': (d: DaemonDeps) => createEndpointProber(d),
} satisfies Record<string, (d: DaemonDeps) => RunnableDaemon>;

export type DaemonName = keyof typeof DAEMONS;

export function isDaemonName(name: string): name is DaemonName {
  return Object.hasOwn(DAEMONS, name);
}

function num(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new InvalidInput('InvalidConfiguration', `${name} must be a number between ${min} and ${max}, got '${raw}'`);
  return n;
}

/**
 * SLUICE_CONVEYOR_* variables: LEASE_SECONDS, MAX_ACTIVE, MAX_ATTEMPTS, INTERVAL_MS,
 * BACKOFF_BASE_MS, BACKOFF_MAX_MS, TIMEOUT_BASE_MS, MIN_RATE (bytes/s), STALL_TIMEOUT_MS,
 * WAIT_RECHECK_SECONDS.
 */
export function conveyorOptionsFromEnv(env: NodeJS.ProcessEnv): ConveyorOptions {
  const p = 'SLUICE_CONVEYOR_';
  const plan = Object.fromEntries(
    Object.entries({
      maxAttempts: num(env, `${p}MAX_ATTEMPTS`, 1, 1000),
      backoffBaseMs: num(env, `${p}BACKOFF_BASE_MS`, 0),
      backoffMaxMs: num(env, `${p}BACKOFF_MAX_MS`, 0),
      timeoutBaseMs: num(env, `${p}TIMEOUT_BASE_MS`, 1000),
      minRateBytesPerSecond: num(env, `${p}MIN_RATE`, 1),
    }).filter(([, v]) => v !== undefined),
  );
  return {
    leaseSeconds: num(env, `${p}LEASE_SECONDS`, 1, 86_400),
    maxActive: num(env, `${p}MAX_ACTIVE`, 1, 1_000_000),
    intervalMs: num(env, `${p}INTERVAL_MS`, 10, 3_600_000),
    stallTimeoutMs: num(env, `${p}STALL_TIMEOUT_MS`, 1000),
    waitRecheckSeconds: num(env, `${p}WAIT_RECHECK_SECONDS`, 0),
    plan,
  };
}
