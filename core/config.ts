import { resolve } from 'node:path';
import { InvalidInput } from './errors.ts';

/**
 * Every environment variable Sluice reads, resolved once into a typed, unit-suffixed object.
 * Command-line flags override these (bin/sluice.ts passes them in as `overrides`).
 */
export interface Config {
  /** PostgreSQL connection string; unset means "start the embedded server in `home`". */
  databaseUrl?: string;
  /** Data directory: embedded PostgreSQL, the local token signing key. */
  home: string;
  host: string;
  port: number;
  /** Connections per process. */
  dbPoolMax: number;
  /** How long a starting process waits for an unreachable database before giving up. */
  dbWaitSeconds: number;
  logLevel: string;
  /** Default lifetime of tokens minted by `sluice token`. */
  tokenLifetimeSeconds: number;
  /** Audience every accepted token must carry. */
  tokenAudience: string;
}

function int(name: string, raw: string | undefined, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidInput('InvalidConfiguration', `${name} must be an integer between ${min} and ${max}, got '${raw}'`);
  }
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const config: Config = {
    databaseUrl: env.DATABASE_URL || undefined,
    home: resolve(env.SLUICE_HOME || '.sluice'),
    host: env.HOST || '127.0.0.1',
    port: int('PORT', env.PORT, 8080, 0, 65535),
    dbPoolMax: int('SLUICE_DB_POOL', env.SLUICE_DB_POOL, 20, 1, 1000),
    dbWaitSeconds: int('SLUICE_DB_WAIT_SECONDS', env.SLUICE_DB_WAIT_SECONDS, 60, 0, 86_400),
    logLevel: env.LOG_LEVEL || 'info',
    tokenLifetimeSeconds: int('SLUICE_TOKEN_LIFETIME', env.SLUICE_TOKEN_LIFETIME, 12 * 3600, 60),
    tokenAudience: env.SLUICE_TOKEN_AUDIENCE || 'sluice',
  };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v;
  config.home = resolve(config.home);
  return config;
}
