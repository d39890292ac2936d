import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { ChatError } from '../chat/chat.errors.js';
import { loadConfig } from '../config/config.schema.js';
import { TokenVerifier } from './token-verifier.js';

const SECRET = 'token-verifier-unit-test-secret-0123456789';

function tokenFor(sub: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

describe('TokenVerifier', () => {
  const verifier = new TokenVerifier(loadConfig({ NODE_ENV: 'test', JWT_SECRET: SECRET }));

  it('refuses the reserved sub "system" with UNAUTHORIZED', async () => {
    await assert.rejects(verifier.verify(await tokenFor('system')), (err: unknown) => {
      assert.ok(err instanceof ChatError);
      assert.equal(err.code, 'UNAUTHORIZED');
      assert.match(err.message, /reserved/);
      return true;
    });
  });

  it('accepts ids that only resemble it', async () => {
    for (const sub of ['System', 'system2', ' system', 'systems']) {
      assert.equal((await verifier.verify(await tokenFor(sub))).userId, sub);
    }
  });

  it('refuses a sub that Postgres could not store as sent (NUL, lone surrogates) with UNAUTHORIZED', async () => {
    for (const sub of ['a\u0000b', '\u0000', 'a\ud800', '\udc00b']) {
      await assert.rejects(verifier.verify(await tokenFor(sub)), (err: unknown) => {
        assert.ok(err instanceof ChatError);
        assert.equal(err.code, 'UNAUTHORIZED');
        assert.match(err.message, /token sub must/);
        return true;
      });
    }
    assert.equal((await verifier.verify(await tokenFor('emoji \ud83d\ude00'))).userId, 'emoji \ud83d\ude00', 'a surrogate pair is fine');
  });
});

describe('TokenVerifier: verified tokens remembered until exp', () => {
  /** A verifier whose signature checks are counted. */
  function counted(): { verifier: TokenVerifier; checks: () => number } {
    const verifier = new TokenVerifier(loadConfig({ NODE_ENV: 'test', JWT_SECRET: SECRET }));
    let n = 0;
    const inner = (verifier as unknown as { check: (t: string) => Promise<unknown> }).check;
    (verifier as unknown as { check: (t: string) => Promise<unknown> }).check = (t) => (n++, inner(t));
    return { verifier, checks: () => n };
  }

  it('checks the signature of a token once, however often it is presented', async () => {
    const { verifier, checks } = counted();
    const token = await tokenFor('alice');
    const first = await verifier.verify(token);
    for (let i = 0; i < 5; i++) assert.deepEqual(await verifier.verify(token), first);
    assert.equal(checks(), 1);
    await verifier.verify(await tokenFor('bob'));
    assert.equal(checks(), 2, 'another token is checked');
  });

  it('refuses a remembered token once its exp has passed', async () => {
    const { verifier, checks } = counted();
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('carol')
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(SECRET));
    await verifier.verify(token);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    await assert.rejects(verifier.verify(token), (e: unknown) => e instanceof ChatError && e.code === 'UNAUTHORIZED');
    assert.equal(checks(), 2, 'checked again after exp');
  });

  it('never remembers a refused token', async () => {
    const { verifier, checks } = counted();
    const bad = (await tokenFor('dave')).slice(0, -2) + 'xx';
    for (let i = 0; i < 3; i++) await assert.rejects(verifier.verify(bad));
    assert.equal(checks(), 3);
  });
});
