import { Inject, Injectable, Logger } from '@nestjs/common';
import { SlowModeSlots } from '../chat/chat.ports.js';
import { RedisClients } from './redis-clients.js';
import type { RedisConnection } from './redis-connection.js';

/** As for the rate windows: a send never waits longer than this on a Redis that is dying. */
const REDIS_SLOT_TIMEOUT_MS = 200;
/** Slots this instance keeps while Redis is out of reach; expired ones go first. */
const LOCAL_SLOTS_KEPT = 100_000;

/** 0: taken; -1: already this holder's; else ms until the slot is free. One key, so any cluster shard. */
const TAKE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1], 'NX') then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[2] then return -1 end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then return 1 end
return left`;

const GIVE_BACK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type SlotRedis = RedisConnection & {
  chatTakeSlot(key: string, intervalMs: number, holder: string): Promise<number>;
  chatGiveBackSlot(key: string, holder: string): Promise<number>;
};

/**
 * Slow mode's slots as Redis keys `<prefix>:slow:<roomId length>:<roomId>:<userId>` (the length
 * keeps a room id with colons from running into the user id), set with NX and PX, so a user's
 * slot in a room is one for every instance. Without Redis, or while it does not answer in time,
 * each instance keeps slots alone: slow mode loosens during an outage rather than refusing or
 * delaying every send.
 */
@Injectable()
export class RedisSlowModeSlots extends SlowModeSlots {
  private readonly logger = new Logger('SlowMode');
  private readonly local = new Map<string, { holder: string; until: number }>();
  private degraded = false;

  constructor(@Inject(RedisClients) private readonly redis: RedisClients | null) {
    super();
    redis?.pub.defineCommand('chatTakeSlot', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    redis?.pub.defineCommand('chatGiveBackSlot', { numberOfKeys: 1, lua: GIVE_BACK_SCRIPT });
  }

  async take(roomId: string, userId: string, intervalMs: number, holder: string): Promise<'taken' | 'held' | number> {
    const key = this.key(roomId, userId);
    if (this.redis?.ready) {
      const answer = await this.inTime((this.redis.pub as SlotRedis).chatTakeSlot(key, intervalMs, holder));
      if (answer !== null) return answer === 0 ? 'taken' : answer === -1 ? 'held' : answer;
    }
    return this.takeLocally(key, intervalMs, holder);
  }

  async giveBack(roomId: string, userId: string, holder: string): Promise<void> {
    const key = this.key(roomId, userId);
    if (this.local.get(key)?.holder === holder) this.local.delete(key);
    if (this.redis?.ready) await this.inTime((this.redis.pub as SlotRedis).chatGiveBackSlot(key, holder));
  }

  private key(roomId: string, userId: string): string {
    return `${this.redis?.prefix ?? ''}:slow:${roomId.length}:${roomId}:${userId}`;
  }

  private takeLocally(key: string, intervalMs: number, holder: string): 'taken' | 'held' | number {
    const now = Date.now();
    const slot = this.local.get(key);
    if (slot && slot.until > now) return slot.holder === holder ? 'held' : Math.max(1, slot.until - now);
    if (this.local.size >= LOCAL_SLOTS_KEPT) {
      for (const [k, s] of this.local) if (s.until <= now) this.local.delete(k);
      if (this.local.size >= LOCAL_SLOTS_KEPT) this.local.delete(this.local.keys().next().value as string);
    }
    this.local.delete(key);
    this.local.set(key, { holder, until: now + intervalMs });
    return 'taken';
  }

  /** Redis's answer, or null when it did not come in time (then this instance keeps slots alone). */
  private async inTime(command: Promise<number>): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), REDIS_SLOT_TIMEOUT_MS)));
    const answer = await Promise.race([command.then((n) => (Number.isFinite(n) ? n : null)).catch(() => null), late]);
    clearTimeout(timer);
    if (answer === null && !this.degraded) this.logger.warn('Redis did not answer for slow mode in time; keeping slots per instance');
    this.degraded = answer === null;
    return answer;
  }
}
