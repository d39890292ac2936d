import type { IncomingMessage } from 'node:http';
import { Logger } from '@nestjs/common';
import type { AppConfig } from '../../config/config.schema.js';
import type { TrustedProxies } from '../../common/trusted-proxies.js';
import { Refusal, clientAddress } from '../admission.js';
import type { Transport } from '../../common/transport.js';

/** One refusal warning per address (and one for the session cap) per interval, so a flood cannot flood the logs. */
const WARN_INTERVAL_MS = 10_000;
/** Past this many remembered addresses, the ones whose bucket has refilled (or warning expired) are forgotten. */
const PRUNE_ABOVE = 10_000;

/** An engine.io session, as far as the cap needs it: "open" until it starts closing. */
export interface EngineSession {
  readonly readyState: string;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Limits on connections before they authenticate, per instance: a token bucket of new engine.io
 * sessions and ws upgrades per remote address (HANDSHAKE_RATE_PER_SECOND, HANDSHAKE_BURST), and a
 * cap on engine.io sessions that have not completed a socket.io CONNECT
 * (MAX_UNAUTHENTICATED_SESSIONS). The address is the TCP peer's, or the client's that a trusted
 * proxy (TRUSTED_PROXIES) names in X-Forwarded-For.
 */
export class HandshakeGuard {
  private readonly logger = new Logger('Admission');
  private readonly buckets = new Map<string, Bucket>();
  private readonly warnedAt = new Map<string, number>();
  private readonly unauthenticated = new Set<EngineSession>();

  constructor(
    private readonly limits: AppConfig['handshakes'],
    private readonly clock: () => number = Date.now,
    private readonly proxies: Pick<TrustedProxies, 'clientOf'> = { clientOf: (req) => req.socket.remoteAddress ?? 'unknown' },
  ) {}

  /** A new engine.io session (transport socket.io) or ws upgrade wants to start; null when it may. */
  admitNew(req: IncomingMessage, transport: Transport): Refusal | null {
    const ip = this.proxies.clientOf(req);
    if (!this.take(ip))
      return this.refuse(`rate ${ip}`, req, transport, new Refusal(429, 'RATE_LIMITED', 'too many handshakes from this address'));
    if (transport === 'socket.io' && this.unauthenticatedCount() >= this.limits.maxUnauthenticated) {
      return this.refuse('cap', req, transport, new Refusal(503, 'UNAVAILABLE', 'too many connections waiting to authenticate'));
    }
    return null;
  }

  /** An engine.io session opened; it counts against the cap until authenticated or closing. */
  opened(session: EngineSession): void {
    this.unauthenticated.add(session);
  }

  /** Its CONNECT was admitted, or it closed. */
  settled(session: EngineSession): void {
    this.unauthenticated.delete(session);
  }

  /**
   * Sessions closing (refused, or past the connect timeout) no longer count: a polling session
   * waits for its next GET (up to engine.io's 30 s) to deliver the close packet.
   */
  private unauthenticatedCount(): number {
    if (this.unauthenticated.size < this.limits.maxUnauthenticated) return this.unauthenticated.size;
    for (const session of this.unauthenticated) if (session.readyState !== 'open') this.unauthenticated.delete(session);
    return this.unauthenticated.size;
  }

  private take(ip: string): boolean {
    const { perSecond, burst } = this.limits;
    const now = this.clock();
    if (this.buckets.size > PRUNE_ABOVE) this.prune(now);
    const bucket = this.buckets.get(ip) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * perSecond) / 1000);
    bucket.at = now;
    this.buckets.set(ip, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private prune(now: number): void {
    const { perSecond, burst } = this.limits;
    for (const [ip, b] of this.buckets) if (b.tokens + ((now - b.at) * perSecond) / 1000 >= burst) this.buckets.delete(ip);
    for (const [key, at] of this.warnedAt) if (now - at >= WARN_INTERVAL_MS) this.warnedAt.delete(key);
  }

  private refuse(warnKey: string, req: IncomingMessage, transport: Transport, refusal: Refusal): Refusal {
    const now = this.clock();
    const last = this.warnedAt.get(warnKey);
    if (last === undefined || now - last >= WARN_INTERVAL_MS) {
      this.warnedAt.set(warnKey, now);
      this.logger.warn({ msg: 'handshake refused', reason: refusal.code, detail: refusal.message, transport, ...clientAddress(req) });
    }
    return refusal;
  }
}
