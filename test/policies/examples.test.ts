/**
 * The example packages through the test harness, loaded by path as a VO would (in a worker).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicyHarness, type PolicyHarness } from '../../policies/testing.ts';
import runNumber from '../../policies/examples/run-number.ts';
import { hashPath } from '../../policies/default.ts';

const RAW = 'data18_13TeV.00358031.physics_Main.RAW._0001';

describe('examples/run-number.ts', () => {
  let h: PolicyHarness;
  beforeAll(async () => {
    h = await createPolicyHarness('examples/run-number.ts');
  });
  afterAll(() => h.close());

  it('puts the files of a run together; names without a run keep the hashed layout', async () => {
    expect(h.policy.name).toBe('run-number');
    expect(await h.path(`data18_13TeV:${RAW}`)).toBe(`data18_13TeV/00358031/${RAW}`);
    expect(await h.path('user.jdoe:user.jdoe.notes.txt')).toBe(hashPath({ scope: 'user.jdoe', name: 'user.jdoe.notes.txt' }));
  });

  it('accepts run-style names in their scope and refuses others with a message saying the form', async () => {
    expect(await h.validate(`data18_13TeV:${RAW}`)).toBeUndefined();
    expect(await h.validate('data18_13TeV:data18_13TeV.00358031.physics_Main.DAOD')).toBeUndefined();
    expect(await h.validate('data18_13TeV:file1')).toMatch(/must read <scope>\.<8-digit run>\.<stream>\.<type>/);
    expect(await h.validate('data18_13TeV:data18_13TeV.358031.physics_Main.RAW')).toMatch(/must read/);
    expect(await h.validate('mc16:data18_13TeV.00358031.physics_Main.RAW')).toMatch(/must start with its scope 'mc16\.'/);
    expect(await h.validate('user.jdoe:user.jdoe.anything')).toBeUndefined();
    expect(await h.validate('user.jdoe:notes')).toMatch(/must start with 'user\.jdoe\.'/);
    expect(await h.validate({ scope: 'data18_13TeV', name: 'any_container', type: 'CONTAINER' })).toBeUndefined();
  });

  it('takes the scope from the name', async () => {
    expect(await h.extractScope(RAW)).toEqual({ scope: 'data18_13TeV', name: RAW });
    expect(await h.extractScope('user.jdoe.x.root')).toEqual({ scope: 'user.jdoe', name: 'user.jdoe.x.root' });
    expect(await h.extractScope('mc16:evgen.1')).toEqual({ scope: 'mc16', name: 'evgen.1' });
    expect(await h.extractScope('nodots')).toBeUndefined();
  });

  it('rule defaults and disk-before-tape ranking', async () => {
    expect(await h.ruleDefaults()).toEqual({ activity: 'Data Consolidation' });
    const rses = [h.rse('T1_TAPE', { type: 'TAPE' }), h.rse('X'), h.rse('T1_DISK', { type: 'DISK' })];
    expect(await h.rankDestinations(rses)).toEqual({ names: ['T1_DISK', 'X', 'T1_TAPE'], ordered: true });
    expect(await h.rankSources(rses)).toEqual({ names: ['T1_DISK', 'X', 'T1_TAPE'], ordered: true });
  });

  it('also runs in-process from the package object (fast unit tests)', async () => {
    const inProcess = await createPolicyHarness(runNumber);
    expect(await inProcess.path(`data18_13TeV:${RAW}`)).toBe(`data18_13TeV/00358031/${RAW}`);
  });
});

describe('examples/production-role.ts', () => {
  let h: PolicyHarness;
  beforeAll(async () => {
    h = await createPolicyHarness('examples/production-role.ts');
  });
  afterAll(() => h.close());

  const tape = () => h.rse('CERN_TAPE', { type: 'TAPE' });
  const disk = () => h.rse('CERN_DISK', { type: 'DISK' });
  const rule = (rses: unknown[], who: { account: string; role?: 'admin' | 'user' }) =>
    h.can('rule.add', { role: 'user', ...who, scope: 'data', scopeAccount: 'admin', rse_expression: 'tier=1', rses });

  it('refuses rules on tape to ordinary users, saying which RSEs and what to do', async () => {
    const d = await rule([disk(), tape()], { account: 'alice' });
    expect(d.allow).toBe(false);
    expect(d.reason).toMatch(/'tier=1' includes CERN_TAPE, where only production accounts may create rules; target disk RSEs \(for example 'tier=1&type=DISK'\)/);
    expect((await rule([h.rse('CERN_PROD_TAPE')], { account: 'alice' })).allow).toBe(false);
  });

  it('allows admins and production accounts on tape, and everyone on disk', async () => {
    expect((await rule([tape()], { account: 'boss', role: 'admin' })).allow).toBe(true);
    expect((await rule([tape()], { account: 'prodsys' })).allow).toBe(true);
    expect((await rule([disk()], { account: 'alice' })).allow).toBe(true);
    // Before the targets are known there is nothing to decide yet: the default allows rule.add.
    expect((await h.can('rule.add', { account: 'alice', scope: 'data', scopeAccount: 'admin' })).allow).toBe(true);
    // Everything else is the default: users may not add RSEs.
    expect((await h.can('rse.add', { account: 'alice', rse: 'X' })).allow).toBe(false);
  });

  it('production rules default to the Production activity', async () => {
    expect(await h.ruleDefaults({ account: 'prodsys' })).toEqual({ activity: 'Production' });
    expect(await h.ruleDefaults({ account: 'alice' })).toEqual({});
  });
});
