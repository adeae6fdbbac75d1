import { serve, type ServerType } from '@hono/node-server';
import { createVerifier, loadOrCreateLocalIssuer, registerLocalIssuer } from '../core/auth.ts';
import type { Config } from '../core/config.ts';
import type { Sql } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { createPolicyRegistry } from '../policies/registry.ts';
import { createApp } from './app.ts';

export interface RunningApi {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serves the API on config.host:config.port over the given pool. */
export async function serveApi(sql: Sql, config: Config, log: Logger): Promise<RunningApi> {
  // Every API process trusts this instance's local issuer; registering it is idempotent.
  const issuer = await loadOrCreateLocalIssuer(config.home);
  await registerLocalIssuer(sql, issuer, config.tokenAudience);
  const policies = createPolicyRegistry(sql);
  // Packages load now, so a broken one shows in the log at start rather than at a VO's first request.
  await policies.loadAll();
  const app = createApp({
    sql,
    log,
    verifier: createVerifier(sql, { audience: config.tokenAudience }),
    policies,
  });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url }, 'API listening');
  return {
    url,
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open until they time out.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await policies.close();
    },
  };
}
