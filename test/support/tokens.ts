import { SignJWT } from 'jose';

export const TEST_JWT_SECRET = 'test-secret-for-e2e-only-0123456789';
const key = new TextEncoder().encode(TEST_JWT_SECRET);

/** A valid HS256 token for `sub`, valid for an hour unless `expiresInSec` says otherwise. */
export function tokenFor(sub: string, { expiresInSec = 3600, secret }: { expiresInSec?: number; secret?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSec)
    .sign(secret ? new TextEncoder().encode(secret) : key);
}

/** An unsigned token, as an attacker would craft one. */
export function algNoneToken(sub: string): string {
  const enc = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ sub, iat: now, exp: now + 3600 })}.`;
}
