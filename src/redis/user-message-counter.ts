import { Inject, Injectable, Logger } from '@nestjs/common';
import type { UserMessageCounter } from '../realtime/limits/request-limiter.js';
import { RedisClients } from './redis-clients.js';

/**
 * Per-user message windows in Redis (INCR + PEXPIRE on a key per user and window), so a user's
 * budget is shared by every instance. Without Redis, or while it is unreachable, each instance
 * counts on its own: limits loosen during an outage rather than refusing every message.
 */
@Injectable()
export class RedisUserMessageCounter implements UserMessageCounter {
  private readonly logger = new Logger('RateLimit');
  private readonly local = new Map<string, number>();
  private localWindow = -1;

  constructor(@Inject(RedisClients) private readonly redis: RedisClients | null) {}

  async hit(userId: string, windowMs: number): Promise<{ count: number; resetAt: number }> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const resetAt = (window + 1) * windowMs;
    if (this.redis?.ready) {
      try {
        const key = `${this.redis.prefix}:rate:${userId}:${window}`;
        const result = await this.redis.pub.multi().incr(key).pexpire(key, windowMs).exec();
        const count = Number(result?.[0]?.[1]);
        if (Number.isFinite(count)) return { count, resetAt };
      } catch (err) {
        this.logger.warn(`counting in Redis failed, counting locally: ${(err as Error).message}`);
      }
    }
    if (window !== this.localWindow) {
      this.local.clear();
      this.localWindow = window;
    }
    const count = (this.local.get(userId) ?? 0) + 1;
    this.local.set(userId, count);
    return { count, resetAt };
  }
}
