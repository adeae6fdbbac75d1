/**
 * Rule benchmarks (issue: replication rules):
 * - a rule with copies=2 on a 100,000-file dataset over 5 candidate RSEs: time until every lock,
 *   replica and request is written (target < 5 s), through core/createRules and through the API;
 * - the evaluator: 10,000 files attached to a dataset under 3 rules -> time until the locks
 *   reflect it (target < 2 s).
 * Uses DATABASE_URL when set, else an embedded PostgreSQL in a temporary directory.
 * Run alone: npx tsx bench/rules.ts [--files 100000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sql } from '../core/db.ts';
import { createLogger, silentLogger } from '../core/log.ts';
import { addRse } from '../core/rses.ts';
import { createRules } from '../core/rules.ts';
import { createApp } from '../api/app.ts';
import { createVerifier, loadOrCreateLocalIssuer, mintToken, registerLocalIssuer } from '../core/auth.ts';
import { createPolicyRegistry, resolvePolicy } from '../policies/registry.ts';
import defaultPolicy from '../policies/default.ts';
import { createJudgeEvaluator } from '../daemons/judge-evaluator.ts';
import { benchDatabase, isMain, printResults, type BenchResult } from './lib.ts';

const policy = resolvePolicy(defaultPolicy);

const database = () => benchDatabase('rules', 6);

/** VO with 5 writable RSEs and a dataset of n files, registered with set-based SQL (not what is measured). */
async function seed(sql: Sql, vo: string, dataset: string, n: number, rseNames: string[]) {
  await sql`insert into vos (name) values (${vo}) on conflict do nothing`;
  await sql`insert into accounts (vo, name, role) values (${vo}, 'admin', 'admin') on conflict do nothing`;
  await sql`insert into scopes (vo, name, account) values (${vo}, 'data', 'admin') on conflict do nothing`;
  await sql`insert into storage_endpoints (name, url, kind) values (${`ep-${vo}`}, ${`http://127.0.0.1:1/${vo}`}, 'http') on conflict do nothing`;
  for (const [i, name] of rseNames.entries()) {
    const exists = await sql`select 1 from rses where vo = ${vo} and name = ${name}`;
    if (!exists.length) await addRse(sql, vo, { name, endpoint: `ep-${vo}`, prefix: `/${name.toLowerCase()}`, attributes: { disk: 'true', tier: String(i % 2) } });
  }
  await sql`insert into dids (vo, scope, name, type, account) values (${vo}, 'data', ${dataset}, 'DATASET', 'admin')`;
  await sql`
    insert into dids (vo, scope, name, type, account, bytes, adler32)
    select ${vo}, 'data', ${dataset} || '.' || lpad(i::text, 7, '0'), 'FILE', 'admin', 1000000 + i, lpad(to_hex(i), 8, '0')
    from generate_series(1, ${n}) i`;
  await sql`
    insert into did_contents (vo, scope, name, child_scope, child_name, child_type)
    select ${vo}, 'data', ${dataset}, 'data', ${dataset} || '.' || lpad(i::text, 7, '0'), 'FILE' from generate_series(1, ${n}) i`;
  await sql`delete from updated_dids where vo = ${vo}`;
  await sql`vacuum analyze`;
}

async function counts(sql: Sql, vo: string) {
  const [row] = await sql<{ locks: number; replicas: number; requests: number }[]>`
    select (select count(*) from locks where vo = ${vo})::int as locks, (select count(*) from replicas where vo = ${vo})::int as replicas,
           (select count(*) from requests where vo = ${vo})::int as requests`;
  return row;
}

export async function benchRuleCreation(sql: Sql, files: number): Promise<BenchResult[]> {
  const rses = ['R1', 'R2', 'R3', 'R4', 'R5'];
  const out: BenchResult[] = [];
  // 1. core function
  await seed(sql, 'benchcore', 'big', files, rses);
  let t0 = performance.now();
  await createRules(sql, 'benchcore', 'admin', { dids: [{ scope: 'data', name: 'big' }], copies: 2, rse_expression: 'disk', grouping: 'NONE' }, { policy, seed: 1 });
  const core = (performance.now() - t0) / 1000;
  const c = await counts(sql, 'benchcore');
  if (c.locks !== 2 * files || c.replicas !== 2 * files || c.requests !== 2 * files) throw new Error(`core: unexpected counts ${JSON.stringify(c)}`);
  out.push({ name: `rule copies=2 on ${files} files, 5 RSEs, grouping NONE (core)`, value: Number(core.toFixed(2)), unit: 's', target: '< 5 s', pass: core < 5 });

  // 2. through the API (in-process Hono app, token verification included)
  await seed(sql, 'benchapi', 'big', files, rses);
  const home = await mkdtemp(join(tmpdir(), 'sluice-bench-rules-home-'));
  try {
    const issuer = await loadOrCreateLocalIssuer(home);
    await registerLocalIssuer(sql, issuer, 'sluice');
    const app = createApp({ sql, log: silentLogger, verifier: createVerifier(sql, { audience: 'sluice' }), policies: createPolicyRegistry(sql) });
    const token = await mintToken(issuer, { vo: 'benchapi', account: 'admin', lifetimeSeconds: 600, audience: 'sluice' });
    t0 = performance.now();
    const res = await app.request('/v1/rules', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ dids: [{ scope: 'data', name: 'big' }], copies: 2, rse_expression: 'disk', grouping: 'DATASET' }),
    });
    const api = (performance.now() - t0) / 1000;
    if (res.status !== 201) throw new Error(`API: ${res.status} ${await res.text()}`);
    const a = await counts(sql, 'benchapi');
    if (a.locks !== 2 * files) throw new Error(`API: unexpected counts ${JSON.stringify(a)}`);
    out.push({ name: `rule copies=2 on ${files} files, 5 RSEs, grouping DATASET (POST /v1/rules)`, value: Number(api.toFixed(2)), unit: 's', target: '< 5 s', pass: api < 5 });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  return out;
}

export async function benchEvaluator(sql: Sql, attach = 10_000): Promise<BenchResult[]> {
  await seed(sql, 'benchev', 'grow', 10_000, ['E1', 'E2', 'E3', 'E4', 'E5']);
  const did = [{ scope: 'data', name: 'grow' }];
  await createRules(sql, 'benchev', 'admin', { dids: did, copies: 2, rse_expression: 'disk', grouping: 'DATASET' }, { policy, seed: 1 });
  await createRules(sql, 'benchev', 'admin', { dids: did, copies: 1, rse_expression: 'tier=1', grouping: 'NONE' }, { policy, seed: 2 });
  await createRules(sql, 'benchev', 'admin', { dids: did, copies: 1, rse_expression: 'E5', grouping: 'ALL' }, { policy, seed: 3 });
  const before = (await counts(sql, 'benchev')).locks;
  const evaluator = createJudgeEvaluator({ sql, log: createLogger({ level: 'warn', pretty: false }), policies: createPolicyRegistry(sql) }, { intervalMs: 1000 });
  await evaluator.runOnce();
  const ac = new AbortController();
  const running = evaluator.run(ac.signal);
  await new Promise((r) => setTimeout(r, 200)); // let it LISTEN and go to sleep
  try {
    await sql`
      insert into dids (vo, scope, name, type, account, bytes, adler32)
      select 'benchev', 'data', 'grow.n' || lpad(i::text, 7, '0'), 'FILE', 'admin', 2000 + i, lpad(to_hex(i), 8, '0')
      from generate_series(1, ${attach}) i`;
    const t0 = performance.now();
    // one attach of 10,000 files, as POST /v1/dids/{did}/children does it (one statement)
    await sql`
      insert into did_contents (vo, scope, name, child_scope, child_name, child_type)
      select 'benchev', 'data', 'grow', 'data', 'grow.n' || lpad(i::text, 7, '0'), 'FILE' from generate_series(1, ${attach}) i`;
    const want = before + attach * 4;
    for (;;) {
      const { locks } = await counts(sql, 'benchev');
      if (locks === want) break;
      if (performance.now() - t0 > 60_000) throw new Error(`evaluator: ${locks} locks after 60 s, want ${want}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const s = (performance.now() - t0) / 1000;
    return [{ name: `evaluator: attach ${attach} files under 3 rules -> locks (running daemon)`, value: Number(s.toFixed(2)), unit: 's', target: '< 2 s', pass: s < 2 }];
  } finally {
    ac.abort();
    await running;
  }
}

export async function runRulesBench(options: { files?: number } = {}): Promise<BenchResult[]> {
  const db = await database();
  try {
    const creation = await benchRuleCreation(db.sql, options.files ?? 100_000);
    if (process.env.BENCH_VERBOSE) printResults('rules (creation)', creation);
    return [...creation, ...(await benchEvaluator(db.sql))];
  } finally {
    await db.close();
  }
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--files');
  const results = await runRulesBench({ files: i > 0 ? Number(process.argv[i + 1]) : undefined });
  printResults('rules', results);
}
