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
