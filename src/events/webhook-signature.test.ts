import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { signWebhook, standardWebhookHeaders, verifyWebhook } from './webhook-signature.js';

const SECRET = 'webhook-secret-0123456789';
const BODY = '{"id":"e1","type":"member.added","roomId":"r","data":{"roomId":"r","userId":"u"}}';
const NOW = 1_760_000_000;
const TS = String(NOW);

describe('webhook signatures', () => {
  it('signs "<timestamp>.<raw body>" with HMAC-SHA256 and the secret, as sha256=<hex>', () => {
    const expected = createHmac('sha256', SECRET).update(`${TS}.${BODY}`).digest('hex');
    assert.equal(signWebhook(SECRET, TS, BODY), `sha256=${expected}`);
    assert.match(signWebhook(SECRET, TS, BODY), /^sha256=[0-9a-f]{64}$/);
  });

  it('verifies an untouched request', () => {
    const signature = signWebhook(SECRET, TS, BODY);
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature }, BODY, { nowSec: NOW + 10 }), true);
  });

  it('rejects a tampered body, timestamp or signature, and a wrong secret', () => {
    const signature = signWebhook(SECRET, TS, BODY);
    const at = { nowSec: NOW };
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature }, BODY.replace('"u"', '"mallory"'), at), false, 'body');
    assert.equal(verifyWebhook(SECRET, { timestamp: String(NOW + 1), signature }, BODY, at), false, 'timestamp');
    const flipped = signature.slice(0, -1) + (signature.endsWith('0') ? '1' : '0');
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature: flipped }, BODY, at), false, 'signature');
    assert.equal(verifyWebhook(`${SECRET}x`, { timestamp: TS, signature }, BODY, at), false, 'secret');
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature: signature.slice(7) }, BODY, at), false, 'no sha256= prefix');
  });

  it('rejects a stale or future timestamp and missing or malformed headers', () => {
    const signature = signWebhook(SECRET, TS, BODY);
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature }, BODY, { nowSec: NOW + 301 }), false, 'stale');
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature }, BODY, { nowSec: NOW - 301 }), false, 'from the future');
    assert.equal(verifyWebhook(SECRET, { timestamp: undefined, signature }, BODY, { nowSec: NOW }), false);
    assert.equal(verifyWebhook(SECRET, { timestamp: TS, signature: undefined }, BODY, { nowSec: NOW }), false);
    assert.equal(verifyWebhook(SECRET, { timestamp: `${TS}.5`, signature }, BODY, { nowSec: NOW }), false);
  });

  describe('Standard Webhooks headers', () => {
    const library = new Webhook(Buffer.from(SECRET).toString('base64'));
    const headers = (body = BODY) => standardWebhookHeaders(SECRET, 'e1', String(Math.floor(Date.now() / 1000)), body);

    it('are webhook-id, webhook-timestamp and v1,<base64 HMAC-SHA256 of "id.timestamp.body">', () => {
      const expected = createHmac('sha256', SECRET).update(`e1.${TS}.${BODY}`).digest('base64');
      assert.deepEqual(standardWebhookHeaders(SECRET, 'e1', TS, BODY), {
        'webhook-id': 'e1',
        'webhook-timestamp': TS,
        'webhook-signature': `v1,${expected}`,
      });
    });

    it('verify with the standardwebhooks library given whsec_ + base64(WEBHOOK_SECRET)', () => {
      assert.deepEqual(library.verify(BODY, headers()), JSON.parse(BODY));
      assert.deepEqual(new Webhook(`whsec_${Buffer.from(SECRET).toString('base64')}`).verify(BODY, headers()), JSON.parse(BODY));
    });

    it("fail the library's verification for a tampered body or another secret", () => {
      assert.throws(() => library.verify(BODY.replace('"u"', '"mallory"'), headers()));
      assert.throws(() => new Webhook(Buffer.from(`${SECRET}x`).toString('base64')).verify(BODY, headers()));
    });
  });
});
