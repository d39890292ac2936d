import type { UserMessageCounter } from '../../chat/chat.ports.js';
import type { AppConfig } from '../../config/config.schema.js';
import type { ChatConnection } from '../chat-connection.js';

interface Bucket {
  tokens: number;
  at: number;
  refusedInARow: number;
}

export type LimitDecision = { allowed: true } | { allowed: false; retryAfterMs: number; disconnect: boolean };

/**
 * Rate limits: a token bucket per connection over every request (RATE_LIMIT_BURST, refilled at
 * RATE_LIMIT_PER_SECOND), and a window per user over the user's messages (`message.send`), shared by all instances.
 * A connection refused RATE_LIMIT_DISCONNECT_AFTER times in a row is to be disconnected.
 */
export class RequestLimiter {
  private readonly buckets = new WeakMap<ChatConnection, Bucket>();

  constructor(
    private readonly limits: AppConfig['rateLimits'],
    private readonly users: UserMessageCounter,
  ) {}

  async check(conn: ChatConnection, userMessage: boolean, now = Date.now()): Promise<LimitDecision> {
    const { perSecond, burst } = this.limits.perConnection;
    let bucket = this.buckets.get(conn);
    if (!bucket) this.buckets.set(conn, (bucket = { tokens: burst, at: now, refusedInARow: 0 }));
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * perSecond) / 1000);
    bucket.at = now;
    if (bucket.tokens < 1) return this.refuse(bucket, Math.ceil(((1 - bucket.tokens) * 1000) / perSecond));
    bucket.tokens -= 1;
    if (userMessage) {
      const { messages, windowMs } = this.limits.perUser;
      const { count, resetAt } = await this.users.hit(conn.user.userId, windowMs);
      // The window is on the counter's clock (shared through Redis), not the injectable `now`.
      if (count > messages) return this.refuse(bucket, Math.max(1, resetAt - Date.now()));
    }
    bucket.refusedInARow = 0;
    return { allowed: true };
  }

  private refuse(bucket: Bucket, retryAfterMs: number): LimitDecision {
    bucket.refusedInARow++;
    return { allowed: false, retryAfterMs, disconnect: bucket.refusedInARow >= this.limits.disconnectAfter };
  }
}
