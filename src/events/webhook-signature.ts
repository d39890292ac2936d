import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures. What is signed, exactly: the ASCII decimal Unix time in seconds sent as
 * `X-Chat-Timestamp`, a full stop, and the raw request body bytes — `${timestamp}.${body}` —
 * with HMAC-SHA256 keyed by WEBHOOK_SECRET; `X-Chat-Signature` is `sha256=` and the lowercase hex
 * digest. Signing the timestamp lets a receiver refuse a captured request replayed later.
 */
export const SIGNATURE_PREFIX = 'sha256=';

/**
 * The same request signed as Standard Webhooks (standardwebhooks.com) specify, so receivers can
 * use its verifier libraries: `webhook-id` (the event id, the same on every retry),
 * `webhook-timestamp` (Unix seconds) and `webhook-signature`, which is `v1,` and the base64
 * HMAC-SHA256 of `${id}.${timestamp}.${body}` keyed by the UTF-8 bytes of WEBHOOK_SECRET. Those
 * libraries take the key base64-encoded behind `whsec_`: `whsec_` + base64(WEBHOOK_SECRET).
 */
export function standardWebhookHeaders(secret: string, id: string, timestamp: string, body: string): Record<string, string> {
  const signature = createHmac('sha256', secret).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}

export function signWebhook(secret: string, timestamp: string, body: string): string {
  return SIGNATURE_PREFIX + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/**
 * What a receiver does (and the tests do): recompute, compare in constant time, and refuse a
 * timestamp further than `toleranceSec` from its own clock.
 */
export function verifyWebhook(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  { nowSec = Date.now() / 1000, toleranceSec = 300 }: { nowSec?: number; toleranceSec?: number } = {},
): boolean {
  const { timestamp, signature } = headers;
  if (!timestamp || !/^\d{1,12}$/.test(timestamp) || !signature) return false;
  if (Math.abs(nowSec - Number(timestamp)) > toleranceSec) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
