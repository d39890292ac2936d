import type { IncomingMessage } from 'node:http';
import { Logger } from '@nestjs/common';
import type { Identity } from '../auth/identity.js';
import type { ErrorCode } from '../chat/chat.errors.js';
import type { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import type { Transport } from '../common/transport.js';
import type { ConnectionSlots } from '../presence/connection-slots.js';
import type { OriginPolicy } from './origin-policy.js';

/** Why a handshake was refused: an HTTP status for the ws upgrade, a code for socket.io's connect_error. */
export class Refusal extends Error {
  constructor(
    readonly status: 401 | 403 | 429 | 503,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface AdmissionOptions {
  origins: OriginPolicy;
  gate: ShutdownGate;
  /** Counts MAX_CONNECTIONS_PER_USER: this instance's connections, or with Redis every instance's. */
  slots: ConnectionSlots;
  maxConnectionsPerUser: number;
  authenticate(token: unknown): Promise<Identity>;
}

/**
 * Who may open a connection, the same for both transports: not while draining, only from an
 * allowed origin, only with a valid token, and only below the per-user connection cap (counted
 * over every instance when they share a Redis, see ConnectionSlots). Every refusal is logged with origin and address, never with the token.
 */
export class Admission {
  private readonly logger = new Logger('Admission');

  constructor(private readonly options: AdmissionOptions) {}

  /** Checks that need no token; null when the handshake may go on. */
  precheck(req: IncomingMessage, transport: Transport): Refusal | null {
    let refusal: Refusal | null = null;
    if (this.options.gate.draining) refusal = new Refusal(503, 'UNAVAILABLE', 'server is shutting down');
    else if (!this.options.origins.allows(req)) refusal = new Refusal(403, 'FORBIDDEN', 'origin not allowed');
    if (refusal) this.logRefusal(req, transport, refusal);
    return refusal;
  }

  /** Authenticates and applies the connection cap; throws a Refusal. */
  async admit(req: IncomingMessage, transport: Transport, token: unknown): Promise<Identity> {
    let user: Identity;
    try {
      user = await this.options.authenticate(token);
    } catch {
      throw this.logRefusal(req, transport, new Refusal(401, 'UNAUTHORIZED', 'a valid token is required'));
    }
    const max = this.options.maxConnectionsPerUser;
    if (!(await this.options.slots.reserve(user.userId, max))) {
      throw this.logRefusal(req, transport, new Refusal(429, 'LIMIT_EXCEEDED', `at most ${max} connections per user`), user.userId);
    }
    return user;
  }

  private logRefusal(req: IncomingMessage, transport: Transport, refusal: Refusal, userId?: string): Refusal {
    this.logger.warn({ msg: 'handshake refused', reason: refusal.code, transport, userId, ...clientAddress(req) });
    return refusal;
  }
}

/** Origin and network address of a request, for logs. */
export function clientAddress(req: IncomingMessage): { origin?: string; ip?: string; forwardedFor?: string } {
  const forwarded = req.headers['x-forwarded-for'];
  return {
    origin: req.headers.origin,
    ip: req.socket.remoteAddress,
    forwardedFor: Array.isArray(forwarded) ? forwarded.join(', ') : forwarded,
  };
}
