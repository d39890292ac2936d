import { decodeBase64 } from './host.js';

/**
 * The `exp` claim of a JWT in epoch milliseconds, read without verifying the signature (the server
 * verifies; the client only needs to know when to refresh). Undefined when unreadable.
 */
export function tokenExpiresAt(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(decodeBase64(base64 + '='.repeat((4 - (base64.length % 4)) % 4)));
    const exp = (claims as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
