import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { OriginPolicy } from './origin-policy.js';

/** A handshake request as OriginPolicy sees it: headers, and whether the socket is TLS. */
function request(headers: Record<string, string | string[]>, encrypted = false): IncomingMessage {
  return { headers, socket: encrypted ? { encrypted: true } : {} } as unknown as IncomingMessage;
}

const ALLOWED = 'https://app.example.com';
const HOST = 'chat.example.com:3000';

const listed = () => new OriginPolicy([ALLOWED, 'http://localhost:5173'], false);
const devAny = () => new OriginPolicy(null, true);
const productionNone = () => new OriginPolicy(null, false);

describe('OriginPolicy', () => {
  describe('with ALLOWED_ORIGINS set', () => {
    it('allows exactly the listed origins', () => {
      const policy = listed();
      assert.equal(policy.allows(request({ host: HOST, origin: ALLOWED })), true);
      assert.equal(policy.allows(request({ host: HOST, origin: 'http://localhost:5173' })), true);
      assert.equal(policy.allowsCrossOrigin(ALLOWED), true);
    });

    it('refuses an origin that is not listed', () => {
      const policy = listed();
      assert.equal(policy.allows(request({ host: HOST, origin: 'https://evil.example' })), false);
      assert.equal(policy.allowsCrossOrigin('https://evil.example'), false);
    });

    it('applies the list in development too (it replaces the any-origin default)', () => {
      const policy = new OriginPolicy([ALLOWED], true);
      assert.equal(policy.allows(request({ host: HOST, origin: 'https://evil.example' })), false);
      assert.equal(policy.allows(request({ host: HOST, origin: ALLOWED })), true);
    });

    for (const lookAlike of [
      'https://app.example.com.evil.example',
      'https://evilapp.example.com',
      'https://app.example.co',
      'http://app.example.com',
      'https://app.example.com:8443',
      'https://app.example.com/',
      'https://app.example.com/path',
      ' https://app.example.com',
      'https://app.example.com, https://evil.example',
      'https://user@app.example.com',
      'HTTPS://APP.EXAMPLE.COM.evil.example',
    ]) {
      it(`refuses the look-alike origin ${JSON.stringify(lookAlike)}`, () => {
        assert.equal(listed().allows(request({ host: HOST, origin: lookAlike })), false);
        assert.equal(listed().allowsCrossOrigin(lookAlike), false);
      });
    }

    it("refuses the opaque origin 'null' (sandboxed frames, file: pages)", () => {
      assert.equal(listed().allows(request({ host: HOST, origin: 'null' })), false);
      assert.equal(listed().allowsCrossOrigin('null'), false);
    });
  });

  describe('without ALLOWED_ORIGINS', () => {
    it('allows any origin in development', () => {
      const policy = devAny();
      for (const origin of ['https://evil.example', 'http://localhost:5173', 'null']) {
        assert.equal(policy.allows(request({ host: HOST, origin })), true, origin);
        assert.equal(policy.allowsCrossOrigin(origin), true, origin);
      }
    });

    it('allows no foreign origin in production', () => {
      const policy = productionNone();
      for (const origin of ['https://evil.example', 'http://localhost:5173', 'null', `http://${HOST}.evil.example`]) {
        assert.equal(policy.allows(request({ host: HOST, origin })), false, origin);
        assert.equal(policy.allowsCrossOrigin(origin), false, origin);
      }
    });
  });

  describe('whatever the configuration', () => {
    for (const [label, make] of [
      ['a list', listed],
      ['development', devAny],
      ['production', productionNone],
    ] as const) {
      it(`allows a request without an Origin header (not a browser) with ${label}`, () => {
        assert.equal(make().allows(request({ host: HOST })), true);
        assert.equal(make().allows(request({})), true);
      });

      it(`allows the service's own origin (scheme + Host) with ${label}`, () => {
        assert.equal(make().allows(request({ host: HOST, origin: `http://${HOST}` })), true);
        assert.equal(make().allows(request({ host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080' })), true);
      });
    }
  });

  describe('same-origin detection', () => {
    const policy = productionNone;

    it('takes the scheme from X-Forwarded-Proto behind a TLS-terminating load balancer', () => {
      const forwarded = { host: 'chat.example.com', 'x-forwarded-proto': 'https' };
      assert.equal(policy().allows(request({ ...forwarded, origin: 'https://chat.example.com' })), true);
      assert.equal(policy().allows(request({ ...forwarded, origin: 'http://chat.example.com' })), false, 'the page is https, not http');
    });

    it('uses the first entry of a X-Forwarded-Proto list', () => {
      const headers = { host: 'chat.example.com', 'x-forwarded-proto': 'https, http', origin: 'https://chat.example.com' };
      assert.equal(policy().allows(request(headers)), true);
    });

    it('is https on a TLS socket without X-Forwarded-Proto', () => {
      assert.equal(policy().allows(request({ host: 'chat.example.com', origin: 'https://chat.example.com' }, true)), true);
      assert.equal(policy().allows(request({ host: 'chat.example.com', origin: 'http://chat.example.com' }, true)), false);
    });

    it('ignores an X-Forwarded-Proto that is neither http nor https', () => {
      const headers = { host: 'chat.example.com', 'x-forwarded-proto': 'javascript', origin: 'javascript://chat.example.com' };
      assert.equal(policy().allows(request(headers)), false);
      assert.equal(policy().allows(request({ ...headers, origin: 'http://chat.example.com' })), true);
    });

    it('needs the exact host and port', () => {
      for (const origin of [
        'http://chat.example.com',
        'http://chat.example.com:3001',
        `http://${HOST}.evil.example`,
        `http://evil.example/${HOST}`,
        `https://${HOST}`,
      ]) {
        assert.equal(policy().allows(request({ host: HOST, origin })), false, origin);
      }
    });

    it('has no own origin without a Host header', () => {
      assert.equal(policy().allows(request({ origin: 'http://' })), false);
      assert.equal(policy().allows(request({ origin: 'http://null' })), false);
    });

    it("never treats 'null' as the service's own origin", () => {
      assert.equal(policy().allows(request({ host: HOST, origin: 'null' })), false);
    });
  });
});
