/**
 * Prometheus metrics: one prom-client Registry per process, served at GET /metrics.
 *
 * Three kinds of metric, by where the number comes from:
 * - events this process sees (HTTP requests, daemon iterations, transfers it ran): counters and
 *   histograms updated in-process, e.g. recordTransfer() from the conveyor;
 * - the cluster's state (queue depths, optimizer limits, endpoint status, usage): gauges read
 *   from PostgreSQL at scrape time by a few aggregate queries, cached for `dbCacheMs` so that
 *   several scrapers (or a scraper and a dashboard) cost one round of queries;
 * - this process's PostgreSQL pool as the server sees it (pg_stat_activity by application_name).
 *
 * Labels: `link` is the link id (sluice_link_info joins it to endpoint names), `vo` the VO name.
 * Every label set is bounded by configuration (links, VOs, endpoints, daemons, error codes).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Sql } from './db.ts';
import { pgCode } from './errors.ts';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
// prom-client names these gauges *_total, which `promtool check metrics` rejects (only counters
// may end in _total); the process's handle count is not worth a lint exception.
for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`sluice_nodejs_${name}`);

// ---- HTTP -------------------------------------------------------------------------------------

export const httpRequests = new Counter({
  name: 'sluice_http_requests_total',
  help: 'HTTP requests answered, by method, route pattern and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

export const httpDuration = new Histogram({
  name: 'sluice_http_request_duration_seconds',
  help: 'Time to answer an HTTP request, by method, route pattern and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/** Called once per request by the API middleware; `route` is the pattern ('/v1/rules/:id'), never the raw path. */
export function recordHttpRequest(method: string, route: string, status: number, seconds: number): void {
  const labels = { method, route, status: String(status) };
  httpRequests.inc(labels);
  httpDuration.observe(labels, seconds);
}

// ---- daemons ----------------------------------------------------------------------------------

const daemonIterations = new Counter({
  name: 'sluice_daemon_iterations_total',
  help: 'Daemon loop iterations, by daemon and outcome (work: did something, idle: nothing to do, error: failed)',
  labelNames: ['daemon', 'outcome'] as const,
  registers: [registry],
});

const daemonDuration = new Histogram({
  name: 'sluice_daemon_iteration_duration_seconds',
  help: 'Duration of one daemon loop iteration (runOnce), by daemon',
  labelNames: ['daemon'] as const,
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
  registers: [registry],
});

const daemonErrors = new Counter({
  name: 'sluice_daemon_errors_total',
  help: 'Daemon loop iterations that threw, by daemon',
  labelNames: ['daemon'] as const,
  registers: [registry],
});

/** The hook daemons/loop.ts calls after every iteration. */
export function recordDaemonIteration(daemon: string, seconds: number, outcome: 'work' | 'idle' | 'error'): void {
  daemonIterations.inc({ daemon, outcome });
  daemonDuration.observe({ daemon }, seconds);
  if (outcome === 'error') daemonErrors.inc({ daemon });
}

// ---- transfers --------------------------------------------------------------------------------

const transfers = new Counter({
  name: 'sluice_transfers_total',
  help: 'Finished transfer attempts run by this process, by link, VO, mode and final state (DONE or FAILED)',
  labelNames: ['link', 'vo', 'mode', 'state'] as const,
  registers: [registry],
});

const transferBytes = new Counter({
  name: 'sluice_transfer_bytes_total',
  help: 'Bytes of successful transfer attempts run by this process, by link and VO',
  labelNames: ['link', 'vo'] as const,
  registers: [registry],
});

const transferFailures = new Counter({
  name: 'sluice_transfer_failures_total',
  help: 'Failed transfer attempts run by this process, by link, VO and error code',
  labelNames: ['link', 'vo', 'error_code'] as const,
  registers: [registry],
});

const transferDuration = new Histogram({
  name: 'sluice_transfer_duration_seconds',
  help: 'Duration of transfer attempts run by this process, by link, VO and final state',
  labelNames: ['link', 'vo', 'state'] as const,
  buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
  registers: [registry],
});

export interface TransferRecord {
  /** Link id (or any stable link key); null/undefined when the attempt had no link yet. */
  link?: number | string | null;
  vo: string;
  /** tpc-pull | tpc-push | stream (or null when the attempt failed before choosing one). */
  mode?: string | null;
  /** Final state of this attempt: DONE, or FAILED for any failed attempt (retried or not). */
  state: 'DONE' | 'FAILED';
  /** Bytes moved (counted for DONE only). */
  bytes: number;
  durationMs: number;
  /** TransferError code of a failed attempt ('Lost', 'Cancelled', ...). */
  errorCode?: string | null;
}

/**
 * The conveyor calls this once per finished attempt (after it is recorded in transfer_attempts).
 * Never throws: metrics must not break a transfer.
 */
export function recordTransfer(t: TransferRecord): void {
  try {
    const link = t.link === null || t.link === undefined ? 'none' : String(t.link);
    transfers.inc({ link, vo: t.vo, mode: t.mode ?? 'none', state: t.state });
    transferDuration.observe({ link, vo: t.vo, state: t.state }, Math.max(0, t.durationMs) / 1000);
    if (t.state === 'DONE') transferBytes.inc({ link, vo: t.vo }, Math.max(0, t.bytes));
    else transferFailures.inc({ link, vo: t.vo, error_code: t.errorCode ?? 'Unknown' });
  } catch {
    // a label or value prom-client refuses must not fail the caller
  }
}

// ---- cluster state from the database, at scrape time -------------------------------------------

const g = (name: string, help: string, labelNames: string[]) => new Gauge({ name, help, labelNames, registers: [] });

const dbGauges = {
  up: g('sluice_db_up', 'Whether the last scrape-time database query succeeded (1) or not (0)', []),
  scrape: g('sluice_db_scrape_duration_seconds', 'Time the scrape-time database queries took', []),
  poolMax: g('sluice_db_pool_max_connections', "This process's connection pool size (postgres max)", []),
  connections: g('sluice_db_connections', 'Server-side connections of this application name (pg_stat_activity), by state', ['application', 'state']),
  requests: g('sluice_requests', 'Transfer requests by VO and state (QUEUED, ACTIVE): the queue depths', ['vo', 'state']),
  linkQueued: g('sluice_link_queued', 'QUEUED requests with a source, by link and VO', ['link', 'vo']),
  linkActive: g('sluice_link_active', 'ACTIVE requests by link and VO', ['link', 'vo']),
  linkLimit: g('sluice_link_limit_active', "The optimizer's current concurrency limit of a link", ['link']),
  linkMin: g('sluice_link_min_active', 'Lower bound of the optimizer limit of a link', ['link']),
  linkMax: g('sluice_link_max_active', 'Upper bound of the optimizer limit of a link', ['link']),
  linkInfo: g('sluice_link_info', 'Link id to source and destination endpoint names (value 1)', ['link', 'source', 'destination']),
  rules: g('sluice_rules', 'Replication rules by VO and state', ['vo', 'state']),
  endpointStatus: g('sluice_endpoint_status', 'Endpoint status from probes and bans: 1 for the current status', ['endpoint', 'status']),
  endpointFailures: g('sluice_endpoint_probe_consecutive_failures', 'Consecutive failed probe rounds of an endpoint', ['endpoint']),
  usageBytes: g('sluice_rse_usage_bytes', 'Bytes of AVAILABLE replicas by VO and RSE', ['vo', 'rse']),
  usageFiles: g('sluice_rse_usage_files', 'AVAILABLE replicas by VO and RSE', ['vo', 'rse']),
};
for (const m of Object.values(dbGauges)) registry.registerMetric(m);

let boundSql: Sql | undefined;
let cacheMs = 2000;
let lastCollect: { at: number; done: Promise<void> } | undefined;

/**
 * Points the scrape-time gauges at this process's pool (createApp does it). The last call wins:
 * one process serves one database.
 */
export function bindMetricsDatabase(sql: Sql, options: { dbCacheMs?: number } = {}): void {
  boundSql = sql;
  cacheMs = options.dbCacheMs ?? 2000;
  lastCollect = undefined;
}

type Row = Record<string, unknown>;

/** A query against a table a later migration may not have created yet answers no rows. */
async function rows<T extends Row>(q: Promise<T[]>): Promise<T[]> {
  try {
    return await q;
  } catch (e) {
    // 42P01 undefined_table, 42703 undefined_column
    if (pgCode(e) === '42P01' || pgCode(e) === '42703') return [];
    throw e;
  }
}

async function collectFromDb(sql: Sql): Promise<void> {
  const started = performance.now();
  const poolMax = (sql as unknown as { options?: { max?: number } }).options?.max;
  try {
    const [reqs, links, linkLoad, ruleStates, endpoints, usage, conns] = await Promise.all([
      rows(sql<{ vo: string; state: string; n: number }[]>`
        select vo, state, count(*)::int as n from requests where state in ('QUEUED', 'ACTIVE') group by vo, state`),
      rows(sql<{ id: number; limit_active: number; min_active: number; max_active: number; source: string; destination: string }[]>`
        select l.id, l.limit_active, l.min_active, l.max_active, s.name as source, d.name as destination
        from links l join storage_endpoints s on s.id = l.src_endpoint_id join storage_endpoints d on d.id = l.dst_endpoint_id`),
      rows(sql<{ link_id: number; vo: string; state: string; n: number }[]>`
        select link_id, vo, state, count(*)::int as n from requests
        where link_id is not null and (state = 'ACTIVE' or (state = 'QUEUED' and source_rse_id is not null))
        group by link_id, vo, state`),
      rows(sql<{ vo: string; state: string; n: number }[]>`select vo, state, count(*)::int as n from rules group by vo, state`),
      rows(sql<{ name: string; status: string; probe_failures: number }[]>`select name, status, probe_failures from storage_endpoints`),
      rows(sql<{ vo: string; rse: string; files: number; bytes: number }[]>`
        select u.vo, r.name as rse, u.files, u.bytes from rse_usage_current u join rses r on r.id = u.rse_id`),
      rows(sql<{ application: string; state: string; n: number }[]>`
        select application_name as application, coalesce(state, 'unknown') as state, count(*)::int as n
        from pg_stat_activity where application_name = current_setting('application_name') group by 1, 2`),
    ]);
    for (const m of Object.values(dbGauges)) m.reset();
    for (const r of reqs) dbGauges.requests.set({ vo: r.vo, state: r.state }, r.n);
    for (const l of links) {
      const link = String(l.id);
      dbGauges.linkLimit.set({ link }, l.limit_active);
      dbGauges.linkMin.set({ link }, l.min_active);
      dbGauges.linkMax.set({ link }, l.max_active);
      dbGauges.linkInfo.set({ link, source: l.source, destination: l.destination }, 1);
    }
    for (const r of linkLoad) (r.state === 'ACTIVE' ? dbGauges.linkActive : dbGauges.linkQueued).set({ link: String(r.link_id), vo: r.vo }, r.n);
    for (const r of ruleStates) dbGauges.rules.set({ vo: r.vo, state: r.state }, r.n);
    for (const e of endpoints) {
      for (const s of ['ok', 'degraded', 'excluded', 'banned']) dbGauges.endpointStatus.set({ endpoint: e.name, status: s }, e.status === s ? 1 : 0);
      dbGauges.endpointFailures.set({ endpoint: e.name }, e.probe_failures ?? 0);
    }
    for (const u of usage) {
      dbGauges.usageBytes.set({ vo: u.vo, rse: u.rse }, u.bytes);
      dbGauges.usageFiles.set({ vo: u.vo, rse: u.rse }, u.files);
    }
    for (const c of conns) dbGauges.connections.set({ application: c.application, state: c.state }, c.n);
    dbGauges.up.set(1);
  } catch {
    for (const m of Object.values(dbGauges)) m.reset();
    dbGauges.up.set(0);
  }
  if (poolMax) dbGauges.poolMax.set(poolMax);
  dbGauges.scrape.set((performance.now() - started) / 1000);
}

/** The Prometheus text exposition of every metric (refreshing the database gauges if stale). */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  if (boundSql) {
    const now = Date.now();
    if (!lastCollect || now - lastCollect.at > cacheMs) lastCollect = { at: now, done: collectFromDb(boundSql) };
    await lastCollect.done;
  }
  return { contentType: registry.contentType, body: await registry.metrics() };
}
