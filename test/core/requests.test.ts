import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  claimForLink,
  finishOutcomes,
  heartbeat,
  linkQueues,
  linksWithQueue,
  prepareRequests,
  recoverExpired,
  type ClaimedRequest,
  type Outcome,
} from '../../core/requests.ts';
import { rankSources } from '../../core/sources.ts';
import { classifyFailure, retryDelayMs, transferTimeoutMs, defaultTransferPlan } from '../../core/transfer-plan.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { checkInvariants } from './rules-helpers.ts';
import { createWorld, type World } from '../e2e/world.ts';

let db: TestDatabase;
let world: World | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await world?.close();
  world = undefined;
  await db.sql`truncate vos, storage_endpoints, links, requests, transfer_attempts, rules, locks, replicas, dids, did_contents, rses, accounts, scopes, updated_dids, account_usage cascade`;
});
afterAll(async () => {
  await db.drop();
});

/** n queued requests SRC -> DST (files registered, not on storage: nothing is executed here). */
async function queue(n: number, opts: { endpoints?: Parameters<typeof createWorld>[1]['endpoints']; name?: string } = {}) {
  world ??= await createWorld(db.sql, { endpoints: opts.endpoints ?? { a: {}, b: {} }, rses: { SRC: 'a', DST: 'b' } });
  const name = opts.name ?? 'ds';
  await world.dataset(name, n, { register: ['SRC'] });
  const rule = await world.rule({ scope: 'data', name }, 'DST', 1);
  await prepareRequests(db.sql, { batch: 10_000, recheckSeconds: 60 });
  const [link] = await db.sql<{ id: number }[]>`select id from links`;
  return { rule, linkId: link.id };
}

const claimOpts = { owner: 'p1', leaseSeconds: 60, max: 1000 };

describe('pure transfer policy', () => {
  it('timeout grows with size and is capped', () => {
    expect(transferTimeoutMs(0)).toBe(defaultTransferPlan.timeoutBaseMs);
    expect(transferTimeoutMs(100 << 20)).toBe(defaultTransferPlan.timeoutBaseMs + 100_000);
    expect(transferTimeoutMs(1e15)).toBe(defaultTransferPlan.timeoutMaxMs);
  });
  it('backoff doubles with jitter inside [1-j, 1] of nominal', () => {
    const o = { ...defaultTransferPlan, backoffBaseMs: 1000, backoffJitter: 0.5, backoffMaxMs: 1e9 };
    expect(retryDelayMs(1, o, () => 1)).toBe(1000);
    expect(retryDelayMs(3, o, () => 1)).toBe(4000);
    expect(retryDelayMs(3, o, () => 0)).toBe(2000);
    expect(retryDelayMs(40, { ...o, backoffMaxMs: 5000 }, () => 1)).toBe(5000);
  });
  it('classifies failures', () => {
    const base = { attempts: 1, maxAttempts: 3 };
    expect(classifyFailure({ ...base, code: 'ServerError', phase: 'source', retryable: true })).toEqual({ action: 'retry', preferOtherSource: true });
    expect(classifyFailure({ ...base, code: 'ChecksumMismatch', phase: 'destination', retryable: true })).toEqual({ action: 'fail' });
    expect(classifyFailure({ ...base, code: 'PermissionDenied', phase: 'destination', retryable: false })).toEqual({ action: 'fail' });
    expect(classifyFailure({ ...base, code: 'NotFound', phase: 'source', retryable: false, otherSourceMayExist: true }).action).toBe('retry');
    expect(classifyFailure({ ...base, code: 'NotFound', phase: 'source', retryable: false, otherSourceMayExist: false }).action).toBe('fail');
    expect(classifyFailure({ attempts: 3, maxAttempts: 3, code: 'ServerError', retryable: true })).toEqual({ action: 'fail' });
  });
  it('ranks sources by distance, failures and queue, the last source last', () => {
    const c = (rseId: number, distance: number | null, failureRate: number | null, queued = 0) => ({ rseId, distance, failureRate, queued, limit: 10 });
    expect(rankSources([c(1, 5, 0), c(2, 1, 0)]).map((x) => x.rseId)).toEqual([2, 1]);
    expect(rankSources([c(1, 5, 0), c(2, 1, 1)]).map((x) => x.rseId)).toEqual([1, 2]);
    expect(rankSources([c(1, 1, 0, 1000), c(2, 1, 0)]).map((x) => x.rseId)).toEqual([2, 1]);
    expect(rankSources([c(1, 1, 0), c(2, 9, 0)], 1).map((x) => x.rseId)).toEqual([2, 1]);
    expect(rankSources([c(1, 1, 0)], 1).map((x) => x.rseId)).toEqual([1]);
  });
});

describe('claiming', () => {
  it('claims within the link limit and the endpoint limits, one index probe per queue', async () => {
    const { linkId } = await queue(30, { endpoints: { a: { maxOutbound: 100 }, b: { maxInbound: 7 } } });
    expect(await linksWithQueue(db.sql)).toEqual([linkId]);
    await db.sql`update links set limit_active = 12`;
    let slots = await claimForLink(db.sql, linkId, claimOpts);
    // inbound of b (7) is tighter than the link limit (12)
    expect(slots.claimed).toHaveLength(7);
    slots = await claimForLink(db.sql, linkId, claimOpts);
    expect(slots.claimed).toHaveLength(0);
    await db.sql`update storage_endpoints set max_inbound = null`;
    slots = await claimForLink(db.sql, linkId, claimOpts);
    expect(slots.claimed).toHaveLength(5);
    const [st] = await db.sql<{ active: number; owners: string[] }[]>`
      select count(*)::int as active, array_agg(distinct lease_owner) as owners from requests where state = 'ACTIVE'`;
    expect(st).toEqual({ active: 12, owners: ['p1'] });
    // the per-process cap
    await db.sql`update links set limit_active = 100`;
    slots = await claimForLink(db.sql, linkId, { ...claimOpts, max: 3 });
    expect(slots.claimed).toHaveLength(3);
    const claimed = slots.claimed[0];
    expect(claimed.source_path).toMatch(/^data\//);
    expect(claimed.dest_path).toBe(claimed.source_path);
    expect(claimed.attempts).toBe(1);
  });

  it('splits slots between VOs by share and between priorities', async () => {
    const { linkId } = await queue(20);
    // a second VO on the same link, with a share of 3
    await db.sql`insert into vos (name, share) values ('other', 3)`;
    // move 10 of the queued requests to VO 'other' (same link): its files exist there too
    await db.sql`insert into dids (vo, scope, name, type, account, bytes, adler32) select 'other', scope, name, type, account, bytes, adler32 from dids where vo = 'exp'`;
    await db.sql`update requests set vo = 'other' where id in (select id from requests order by id limit 10)`;
    await db.sql`update requests set priority = 5 where id in (select id from requests where vo = 'exp' order by id desc limit 2)`;
    const queues = await linkQueues(db.sql, linkId, 100);
    expect(queues.filter((q) => q.queued > 0).map((q) => [q.vo, q.priority, q.queued])).toEqual([
      ['exp', 3, 8],
      ['exp', 5, 2],
      ['other', 3, 10],
    ]);
    await db.sql`update links set limit_active = 4`;
    const slots = await claimForLink(db.sql, linkId, claimOpts);
    const other = slots.claimed.filter((c) => c.vo === 'other');
    const exp = slots.claimed.filter((c) => c.vo === 'exp');
    expect(other).toHaveLength(3);
    expect(exp).toHaveLength(1);
    expect(exp[0].priority).toBe(5);
    // link override of the VO share
    await db.sql`update requests set state = 'QUEUED', lease_owner = null where state = 'ACTIVE'`;
    await db.sql`update links set vo_shares = '{"exp": 3, "other": 1}'`;
    const again = await claimForLink(db.sql, linkId, claimOpts);
    expect(again.claimed.filter((c) => c.vo === 'exp')).toHaveLength(3);
  });

  it('two concurrent claimers never take the same request nor exceed the limit together', async () => {
    const { linkId } = await queue(200);
    await db.sql`update links set limit_active = 150`;
    const rounds = await Promise.all(
      Array.from({ length: 6 }, (_, i) => claimForLink(db.sql, linkId, { owner: `p${i}`, leaseSeconds: 60, max: 40 })),
    );
    const ids = rounds.flatMap((r) => r.claimed.map((c) => c.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(150);
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from requests where state = 'ACTIVE'`;
    expect(n.n).toBe(150);
  });
});

describe('leases and finishing', () => {
  function outcome(req: ClaimedRequest, kind: 'done' | 'retry' | 'fail' | 'drained'): Outcome {
    const base = { request: req, mode: 'tpc-pull' as const, bytes: req.bytes, durationMs: 5 };
    if (kind === 'done' || kind === 'drained') return { ...base, kind };
    return { ...base, kind: 'failed', code: 'ServerError', phase: 'source', retryable: kind === 'retry', message: 'HTTP 503', verdict: kind, delayMs: 2000, reason: 'ServerError (source) after 1 attempt: HTTP 503' };
  }

  it('heartbeat extends only own leases; an expired lease becomes a Lost attempt and goes back to the queue', async () => {
    const { linkId } = await queue(3);
    const slots = await claimForLink(db.sql, linkId, claimOpts);
    const ids = slots.claimed.map((c) => c.id);
    const owned = await heartbeat(db.sql, 'p1', 60, { ids, bytes: [10, 20, 30], modes: ['stream', null, null] });
    expect([...owned].sort()).toEqual([...ids].sort());
    expect(await heartbeat(db.sql, 'someone-else', 60, { ids, bytes: [1, 1, 1], modes: [null, null, null] })).toEqual(new Set());
    const [p] = await db.sql<{ bytes_done: number; mode: string }[]>`select bytes_done, mode from requests where id = ${ids[0]}`;
    expect(p).toEqual({ bytes_done: 10, mode: 'stream' });

    await db.sql`update requests set lease_expires_at = now() - interval '1 second' where id = ${ids[0]}`;
    const r = await recoverExpired(db.sql, { batch: 100, defaultMaxAttempts: 3, delayMs: () => 0 });
    expect(r).toEqual({ requeued: 1, failed: 0 });
    const [q] = await db.sql<{ state: string; source_rse_id: number | null; last_source_rse_id: number; attempts: number; lease_owner: string | null }[]>`
      select state, source_rse_id, last_source_rse_id, attempts, lease_owner from requests where id = ${ids[0]}`;
    expect(q).toMatchObject({ state: 'QUEUED', source_rse_id: null, attempts: 1, lease_owner: null });
    const [a] = await db.sql<{ error_code: string; owner: string; bytes: number }[]>`select error_code, owner, bytes from transfer_attempts where request_id = ${ids[0]}`;
    expect(a).toEqual({ error_code: 'Lost', owner: 'p1', bytes: 10 });
    // the old owner's late outcome is not recorded: the request is no longer its
    const late = await finishOutcomes(db.sql, 'p1', [outcome(slots.claimed[0], 'done')]);
    expect(late.owned.size).toBe(0);
    const [still] = await db.sql<{ state: string }[]>`select state from requests where id = ${ids[0]}`;
    expect(still.state).toBe('QUEUED');
  });

  it('done, retry with backoff, fatal and drained outcomes; exhausted leases fail with STUCK locks', async () => {
    const { rule, linkId } = await queue(4);
    const slots = await claimForLink(db.sql, linkId, claimOpts);
    const [d, r, f, g] = [...slots.claimed].sort((a, b) => a.id - b.id);
    await finishOutcomes(db.sql, 'p1', [outcome(d, 'done'), outcome(r, 'retry'), outcome(f, 'fail'), outcome(g, 'drained')]);
    const rows = await db.sql<{ id: number; state: string; attempts: number; not_before: Date | null; source_rse_id: number | null; waiting_reason: string | null; error: string | null }[]>`
      select id, state, attempts, not_before, source_rse_id, waiting_reason, error from requests order by id`;
    const by = new Map(rows.map((x) => [x.id, x]));
    expect(by.get(d.id)!.state).toBe('DONE');
    expect(by.get(r.id)).toMatchObject({ state: 'QUEUED', attempts: 1, source_rse_id: null });
    expect(by.get(r.id)!.not_before!.getTime()).toBeGreaterThan(Date.now() + 1000);
    expect(by.get(r.id)!.waiting_reason).toMatch(/^retrying after ServerError/);
    expect(by.get(f.id)).toMatchObject({ state: 'FAILED', error: 'ServerError (source) after 1 attempt: HTTP 503' });
    expect(by.get(g.id)).toMatchObject({ state: 'QUEUED', attempts: 0 });
    expect(by.get(g.id)!.source_rse_id).not.toBeNull();
    const locks = await db.sql<{ name: string; state: string; error: string | null }[]>`select name, state, error from locks where rule_id = ${rule}::uuid`;
    const lockOf = (req: ClaimedRequest) => locks.find((l) => l.name === req.name)!;
    expect(lockOf(d).state).toBe('OK');
    expect(lockOf(f)).toEqual({ name: f.name, state: 'STUCK', error: 'ServerError (source) after 1 attempt: HTTP 503' });
    expect(lockOf(r).state).toBe('REPLICATING');
    const [attempts] = await db.sql<{ n: number }[]>`select count(*)::int as n from transfer_attempts`;
    expect(attempts.n).toBe(3); // drained is not an attempt
    const [ru] = await db.sql<{ state: string }[]>`select state from rules where id = ${rule}::uuid`;
    expect(ru.state).toBe('STUCK');

    // exhausted by lost leases
    const again = await claimForLink(db.sql, linkId, claimOpts);
    expect(again.claimed.map((c) => c.id)).toEqual([g.id]);
    await db.sql`update requests set max_attempts = 1, lease_expires_at = now() - interval '1 second' where id = ${g.id}`;
    expect(await recoverExpired(db.sql, { batch: 100, defaultMaxAttempts: 3, delayMs: () => 0 })).toEqual({ requeued: 0, failed: 1 });
    expect(lockOf({ ...g }).state).toBe('REPLICATING');
    const [gl] = await db.sql<{ state: string; error: string }[]>`select state, error from locks where name = ${g.name}`;
    expect(gl.state).toBe('STUCK');
    expect(gl.error).toMatch(/^Lost \(transfer\) after 1 attempts: lease of p1 expired/);
    expect(await checkInvariants(db.sql)).toEqual([]);
  });
});
