/**
 * Benchmark (not a test): bulk registration of 10,000 replicas through the HTTP API with and
 * without the usage triggers of sql/0004_observability.sql, alternating, median of N rounds.
 * Target: the triggers cost at most ~15%.
 *   npx tsx bench/usage-triggers.ts [--rounds 6]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';
import { loadConfig } from '../core/config.ts';
import { silentLogger } from '../core/log.ts';
import { openDatabase } from '../core/runtime.ts';
import { serveApi } from '../api/server.ts';
import { median, post } from './lib.ts';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 6;
const N = 10_000;



const home = await mkdtemp(join(tmpdir(), 'sluice-bench-usage-'));
const config = loadConfig({ SLUICE_HOME: home, PORT: '0' });
const db = await openDatabase(config, { log: silentLogger, migrate: 'apply' });
const api = await serveApi(db.sql, config, silentLogger);
try {
  const issuer = await loadOrCreateLocalIssuer(home);
  const root = await mintToken(issuer, { lifetimeSeconds: 3600, audience: 'sluice' });
  const admin = await mintToken(issuer, { vo: 'bench', account: 'admin', lifetimeSeconds: 3600, audience: 'sluice' });
  await post(`${api.url}/v1/vos`, root, { name: 'bench' });
  await post(`${api.url}/v1/endpoints`, root, { name: 'ep', url: 'http://127.0.0.1:1', kind: 'http' });
  await post(`${api.url}/v1/scopes`, admin, { name: 'data' });
  const dids = Array.from({ length: N }, (_, i) => ({ scope: 'data', name: `f.${String(i).padStart(6, '0')}`, bytes: 1000 + i, adler32: (0x10000000 + i).toString(16).slice(-8) }));
  await post(`${api.url}/v1/dids`, admin, { dids });
  const replicas = dids.map(({ scope, name }) => ({ scope, name }));
  const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
  for (let i = 0; i < rounds * 2 + 1; i++) {
    const mode = i % 2 ? 'on' : 'off';
    await db.sql.unsafe(`alter table replicas ${mode === 'on' ? 'enable' : 'disable'} trigger replicas_usage_insert`);
    const rse = `R${i}`;
    await post(`${api.url}/v1/rses`, admin, { name: rse, endpoint: 'ep', prefix: `/${rse.toLowerCase()}` });
    const t0 = performance.now();
    await post(`${api.url}/v1/replicas`, admin, { rse, replicas });
    if (i > 0) times[mode].push(performance.now() - t0); // round 0 warms up
  }
  await db.sql.unsafe('alter table replicas enable trigger replicas_usage_insert');
  const on = median(times.on);
  const off = median(times.off);
  console.log(JSON.stringify({ replicas: N, rounds, median_ms_without_triggers: Math.round(off), median_ms_with_triggers: Math.round(on), overhead_percent: Math.round(((on - off) / off) * 1000) / 10 }));
} finally {
  await api.close();
  await db.close();
  await rm(home, { recursive: true, force: true });
}
