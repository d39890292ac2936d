import { Inject, Injectable, Logger } from '@nestjs/common';
import type { RoomCreationCounter, UserMessageCounter } from '../chat/chat.ports.js';
import { RedisClients } from './redis-clients.js';
import type { RedisConnection } from './redis-connection.js';

/**
 * How long a request may wait for Redis to count it. While Redis is dying, a command can sit in
 * ioredis's queue until a reconnect: a send must never wait on that.
 */
const REDIS_COUNT_TIMEOUT_MS = 200;

/** One command per counted event: INCR, and PEXPIRE when it opened the window's key. */
const COUNT_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

type CountingRedis = RedisConnection & { chatCountMessage(key: string, windowMs: number): Promise<number> };

/**
 * Per-user fixed windows in Redis (INCR + PEXPIRE on a key per user and window, under
 * `<REDIS_PREFIX>:<kind>:`), so a user's budget is shared by every instance. The script touches
 * that one key only, so on a Redis Cluster the windows spread over the shards untagged. Without Redis, or
 * while it is unreachable or slow, each instance counts on its own: limits loosen during an outage
 * rather than refusing or delaying every request.
 */
class RedisUserWindowCounter {
  private readonly logger = new Logger('RateLimit');
  private readonly local = new Map<string, number>();
  private localWindow = -1;
  private degraded = false;

  constructor(
    private readonly redis: RedisClients | null,
    /** The keys' segment after the prefix; also names what is counted in the log. */
    private readonly kind: string,
  ) {
    // The same script under the same name for every counter on this client: defining it again is harmless.
    redis?.pub.defineCommand('chatCountMessage', { numberOfKeys: 1, lua: COUNT_SCRIPT });
  }

  async hit(userId: string, windowMs: number): Promise<{ count: number; resetAt: number }> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const resetAt = (window + 1) * windowMs;
    if (this.redis?.ready) {
      const count = await this.countInRedis(`${this.redis.prefix}:${this.kind}:${userId}:${window}`, windowMs);
      if (count !== null) return { count, resetAt };
    }
    if (window !== this.localWindow) {
      this.local.clear();
      this.localWindow = window;
    }
    const count = (this.local.get(userId) ?? 0) + 1;
    this.local.set(userId, count);
    return { count, resetAt };
  }

  /** The shared count, or null when Redis did not answer in time (then this instance counts alone). */
  private async countInRedis(key: string, windowMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), REDIS_COUNT_TIMEOUT_MS)));
    const counted = (this.redis!.pub as CountingRedis)
      .chatCountMessage(key, windowMs)
      .then((result) => (Number.isFinite(result) ? result : null))
      .catch(() => null);
    const count = await Promise.race([counted, late]);
    clearTimeout(timer);
    if (count === null && !this.degraded)
      this.logger.warn(`Redis did not count (${this.kind}) in time; counting per instance until it does`);
    this.degraded = count === null;
    return count;
  }
}

/** message.send per user (RATE_LIMIT_USER_MESSAGES): keys `<prefix>:rate:<user>:<window>`. */
@Injectable()
export class RedisUserMessageCounter extends RedisUserWindowCounter implements UserMessageCounter {
  constructor(@Inject(RedisClients) redis: RedisClients | null) {
    super(redis, 'rate');
  }
}

/** Rooms created implicitly per user (ROOM_CREATE_LIMIT): keys `<prefix>:rooms-created:<user>:<window>`. */
@Injectable()
export class RedisRoomCreationCounter extends RedisUserWindowCounter implements RoomCreationCounter {
  constructor(@Inject(RedisClients) redis: RedisClients | null) {
    super(redis, 'rooms-created');
  }
}
