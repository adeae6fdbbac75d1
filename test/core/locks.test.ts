import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import type { Sql } from '../../core/db.ts';
import { pgCode } from '../../core/errors.ts';
import { createRules } from '../../core/rules.ts';
import { checkInvariants, dataset, policy, seedVo } from './rules-helpers.ts';

let db: TestDatabase;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
});
afterAll(async () => {
  await db?.drop();
});

/** Files per lock statement in these tests: several batches, small enough for a loaded CI. */
const BATCH = 250;
let voSeq = 0;
const fresh = () => seedVo(sql, `lk${++voSeq}`, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);

async function errorCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return pgCode(e);
  }
  return undefined;
}

describe('createLocks', () => {
  it('places a rule larger than one lock statement (several pipelined batches) exactly once', async () => {
    const { vo } = await fresh();
    await dataset(sql, vo, 'data', 'big', 1_050);
    const [r] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'big' }], copies: 2, rse_expression: '*', grouping: 'NONE' }, { policy, seed: 3, filesPerBatch: BATCH });
    expect(r.locks_replicating_cnt).toBe(2_100);
    const [c] = await sql<{ locks: number; replicas: number; requests: number; files: number }[]>`
      select (select count(*) from locks where vo = ${vo})::int as locks,
             (select count(*) from replicas where vo = ${vo} and state = 'COPYING' and lock_cnt = 1)::int as replicas,
             (select count(*) from requests where vo = ${vo} and state = 'QUEUED')::int as requests,
             (select sum(files) from account_usage where vo = ${vo})::int as files`;
    expect(c).toEqual({ locks: 2_100, replicas: 2_100, requests: 2_100, files: 2_100 });
    expect(await checkInvariants(sql)).toEqual([]);
  });

  it('falls back to the upsert form when a live request for a new replica already exists (in the last batch)', async () => {
    const { vo, ids } = await fresh();
    const fs = await dataset(sql, vo, 'data', 'late', 1_010);
    const last = fs[fs.length - 1];
    // A live request with no replica behind it: the fast form's plain insert of the request is a
    // unique violation, after the earlier batches were already written in the same savepoint.
    for (const rse of ['A', 'B', 'C']) {
      await sql`
        insert into requests (vo, scope, name, dest_rse_id, state, bytes, adler32, priority)
        values (${vo}, 'data', ${last.name}, ${ids.get(rse)!}, 'QUEUED', ${last.bytes!}, ${last.adler32!}, 1)`;
    }
    const [r] = await createRules(sql, vo, 'admin', { dids: [{ scope: 'data', name: 'late' }], copies: 1, rse_expression: '*', grouping: 'NONE', priority: 4 }, { policy, seed: 1, filesPerBatch: BATCH });
    expect(r.locks_replicating_cnt).toBe(1_010);
    expect((await sql`select 1 from locks where rule_id = ${r.id}::uuid`).length).toBe(1_010);
    // The file's request is the existing one, shared and raised to the rule's priority.
    const reqs = await sql<{ priority: number; dest: number }[]>`
      select q.priority, q.dest_rse_id as dest from requests q
      join locks l on l.vo = q.vo and l.scope = q.scope and l.name = q.name and l.rse_id = q.dest_rse_id
      where q.vo = ${vo} and q.name = ${last.name}`;
    expect(reqs).toHaveLength(1);
    expect(reqs[0].priority).toBe(4);
    expect((await sql`select 1 from requests where vo = ${vo} and state = 'QUEUED'`).length).toBe(1_010 + 2);
    expect((await sql`select 1 from replicas where vo = ${vo}`).length).toBe(1_010);
  });
});

describe('replicas name an existing DID (statement-level check, sql/0007)', () => {
  it('refuses a replica of a DID that does not exist, and deleting a DID that still has replicas', async () => {
    const { vo, ids } = await fresh();
    const [f] = await dataset(sql, vo, 'data', 'keys', 2);
    expect(
      await errorCode(sql`insert into replicas (vo, scope, name, rse_id, state, path) values (${vo}, 'data', 'no-such-file', ${ids.get('A')!}, 'AVAILABLE', 'x')`),
    ).toBe('23503');
    await sql`insert into replicas (vo, scope, name, rse_id, state, path) values (${vo}, 'data', ${f.name}, ${ids.get('A')!}, 'AVAILABLE', 'x')`;
    expect(await errorCode(sql`delete from dids where vo = ${vo} and scope = 'data' and name = ${f.name}`)).toBe('23503');
    expect(await errorCode(sql`update replicas set name = 'no-such-file' where vo = ${vo} and name = ${f.name}`)).toBe('23503');
    // Without replicas the DID goes (its dataset membership with it).
    await sql`delete from replicas where vo = ${vo} and name = ${f.name}`;
    await sql`delete from dids where vo = ${vo} and scope = 'data' and name = ${f.name}`;
    expect((await sql`select 1 from dids where vo = ${vo} and name = ${f.name}`).length).toBe(0);
  });
});
