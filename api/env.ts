import type { Caller, Verifier } from '../core/auth.ts';
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import type { PolicyRegistry } from '../policies/registry.ts';

/** What every route handler can reach: built once per process by createApp. */
export interface AppDeps {
  sql: Sql;
  verifier: Verifier;
  policies: PolicyRegistry;
  log: Logger;
}

export interface AppEnv {
  Variables: {
    caller: Caller;
    requestId: string;
    log: Logger;
  };
}
