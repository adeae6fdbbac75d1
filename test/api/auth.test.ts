import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier, mintToken, registerLocalIssuer } from '../../core/auth.ts';
import { createTestApp, expectOk, type TestApp } from '../helpers/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await t.seedVo('atlas');
});
afterAll(() => t.close());

async function code(token: string | null, path = '/v1/scopes') {
  const r = await t.call('GET', path, { token });
  return `${r.status} ${r.body?.error?.code ?? 'ok'}`;
}

describe('bearer tokens', () => {
  it('refuses missing, malformed and forged tokens', async () => {
    expect(await code(null)).toBe('401 MissingToken');
    expect(await code('not-a-jwt')).toBe('401 InvalidToken');
    expect(await code('a.b.c')).toBe('401 InvalidToken');
    const { privateKey } = await generateKeyPair('ES256');
    // Same issuer name, different key: a forgery.
    const forged = await new SignJWT({ vo: 'atlas' }).setProtectedHeader({ alg: 'ES256' }).setIssuer(t.issuer.issuer).setSubject('admin').setAudience('sluice').setExpirationTime('1h').sign(privateKey);
    expect(await code(forged)).toBe('401 InvalidToken');
    const unknownIssuer = await new SignJWT({ vo: 'atlas' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('https://evil.example').setSubject('admin').setAudience('sluice').setExpirationTime('1h').sign(privateKey);
    expect(await code(unknownIssuer)).toBe('401 UntrustedIssuer');
    // alg=none must never be accepted.
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ iss: t.issuer.issuer, sub: 'root', aud: 'sluice', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
    expect(await code(`${header}.${payload}.`)).toBe('401 InvalidToken');
    expect(await code(`${header}.${payload}.x`)).toBe('401 InvalidToken');
  });

  it('refuses expired tokens, wrong audiences and unknown accounts', async () => {
    const expired = await new SignJWT({ vo: 'atlas' }).setProtectedHeader({ alg: 'ES256' }).setIssuer(t.issuer.issuer).setSubject('admin').setAudience('sluice').setIssuedAt(Math.floor(Date.now() / 1000) - 7200).setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(t.issuer.privateKey);
    expect(await code(expired)).toBe('401 TokenExpired');
    const wrongAud = await mintToken(t.issuer, { vo: 'atlas', account: 'admin', lifetimeSeconds: 60, audience: 'other-service' });
    expect(await code(wrongAud)).toBe('401 InvalidToken');
    expect(await code(await t.token('atlas', 'nobody'))).toBe('401 UnknownAccount');
    expect(await code(await t.token('nosuchvo', 'admin'))).toBe('401 UnknownAccount');
  });

  it('root acts on VOs and endpoints but in no VO', async () => {
    expect(await code(t.rootToken, '/v1/vos')).toBe('200 ok');
    expect(await code(t.rootToken)).toBe('403 VoRequired');
    expect(await code(await t.token('atlas', 'admin'))).toBe('200 ok');
  });

  it("trusts a VO's own issuer (static JWKS) only for that VO, mapping a claim to the account", async () => {
    await t.seedVo('cms');
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' };
    expectOk(await t.call('POST', '/v1/vos/atlas/issuers', { body: { issuer: 'https://iam.atlas.example', jwks: { keys: [jwk] }, account_claim: 'preferred_username', audience: 'sluice' } }));
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer('https://iam.atlas.example').setSubject('uuid-1234').setAudience('sluice').setExpirationTime('1h').sign(privateKey);
    const alice = await sign({ preferred_username: 'alice' });
    const me = await t.call('GET', '/v1/accounts/whoami', { token: alice });
    expect(me.body).toEqual({ kind: 'account', vo: 'atlas', account: 'alice', role: 'user' });
    // A VO issuer cannot mint tokens for another VO, nor root tokens.
    expect(await code(await sign({ preferred_username: 'alice', vo: 'cms' }))).toBe('401 UntrustedIssuer');
    const me2 = await t.call('GET', '/v1/accounts/whoami', { token: await sign({ preferred_username: 'admin', sub: 'root' }) });
    expect(me2.body).toMatchObject({ vo: 'atlas', account: 'admin' });
    expect(await code(await sign({}))).toBe('401 InvalidToken');
    // Only root may add issuers.
    const r = await t.call('POST', '/v1/vos/atlas/issuers', { token: await t.token('atlas'), body: { issuer: 'x', jwks_url: 'https://x.example/jwks' } });
    expect(r.status).toBe(403);
  });

  it('a verified token is remembered, but never past its expiry nor past invalidate()', async () => {
    const verifier = createVerifier(t.sql, { audience: 'sluice', cacheMs: 3_600_000 });
    const token = await mintToken(t.issuer, { vo: 'atlas', account: 'alice', lifetimeSeconds: 60, audience: 'sluice' });
    const auth = `Bearer ${token}`;
    expect(await verifier.verify(auth)).toEqual({ kind: 'account', vo: 'atlas', account: 'alice', role: 'user' });
    // A look-alike with another signature is checked on its own (the cache key is the whole token).
    const tampered = `${token.slice(0, token.lastIndexOf('.') + 1)}${'A'.repeat(86)}`;
    await expect(verifier.verify(`Bearer ${tampered}`)).rejects.toMatchObject({ code: 'InvalidToken' });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 60_000 + 31_000);
      await expect(verifier.verify(auth)).rejects.toMatchObject({ code: 'TokenExpired' });
    } finally {
      vi.useRealTimers();
    }
    // A removed issuer no longer vouches for tokens it signed once the cache is dropped.
    const fresh = `Bearer ${await mintToken(t.issuer, { vo: 'atlas', account: 'alice', lifetimeSeconds: 60, audience: 'sluice' })}`;
    await verifier.verify(fresh);
    await t.sql`delete from issuers where issuer = ${t.issuer.issuer}`;
    try {
      expect((await verifier.verify(fresh)).kind).toBe('account');
      verifier.invalidate();
      await expect(verifier.verify(fresh)).rejects.toMatchObject({ code: 'UntrustedIssuer' });
    } finally {
      await registerLocalIssuer(t.sql, t.issuer, 'sluice');
    }
  });
});
