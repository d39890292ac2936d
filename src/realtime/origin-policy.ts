import type { IncomingMessage } from 'node:http';

/**
 * Which browser origins may connect. Requests without an Origin header are not from browsers and
 * pass; a page served by this service (Origin = scheme + Host of the request) always passes;
 * otherwise ALLOWED_ORIGINS decides, and without it any origin passes in development and none
 * in production. socket.io's `cors` option alone stops neither a WebSocket upgrade nor a polling
 * handshake, so this is checked on both.
 */
export class OriginPolicy {
  constructor(
    private readonly allowed: readonly string[] | null,
    private readonly anyWhenUnset: boolean,
  ) {}

  allows(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (origin === ownOrigin(req)) return true;
    return this.allowsCrossOrigin(origin);
  }

  /** For CORS headers on socket.io's polling responses. */
  allowsCrossOrigin(origin: string): boolean {
    return this.allowed ? this.allowed.includes(origin) : this.anyWhenUnset;
  }
}

function ownOrigin(req: IncomingMessage): string | null {
  const host = req.headers.host;
  if (!host) return null;
  // Behind a TLS-terminating load balancer the page is https while this hop is http.
  const forwarded = req.headers['x-forwarded-proto'];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0].trim();
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  return `${proto === 'https' || proto === 'http' ? proto : encrypted ? 'https' : 'http'}://${host}`;
}
