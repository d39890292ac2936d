import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { ServerEvent, ServerEventMap } from '../chat/chat.events.js';
import type { RedisConnection } from '../redis/redis-connection.js';
import type { RedisNames } from '../redis/redis-names.js';
import type { RoomWatcher } from './local-connections.js';

/** Whom to take out of a room: these users, or everybody but these members. */
export type Eviction = { userIds: string[] } | { keepMembers: string[] };

/** What one instance relays to the others about a room, in the order it was published: a push, a push to all but one user, an eviction. */
export type RoomRelay =
  | { kind: 'event'; event: ServerEvent; data: ServerEventMap[ServerEvent] }
  | { kind: 'others'; event: ServerEvent; data: ServerEventMap[ServerEvent]; exceptUserId: string }
  | { kind: 'evict'; who: Eviction };

/**
 * A join waits this long at most for its room's subscription: a Redis that hangs must not hang
 * joins (their pushes from other instances are then missed live, as in any subscriber gap, and
 * recovered from history). Far above a healthy round trip.
 */
const SUBSCRIBE_WAIT_MS = 2000;

/**
 * On a Redis Cluster, one sharded pub/sub channel per room (RedisNames.roomChannel) carries the
 * room's relayed pushes and evictions. An instance subscribes (SSUBSCRIBE) when its first
 * connection joins the room and unsubscribes when its last one leaves, so it receives only the
 * traffic of rooms it has members in: the cost of fan-out does not grow with the replica count.
 * Everything of one room goes on its channel from one publisher connection, so it arrives in the
 * order it was published.
 *
 * The subscriber is the socket.io adapter's (its subscription gaps are the ones RoomFanout
 * watches, RedisClients.subscriberGaps); ioredis re-subscribes these channels after a shard's
 * failover as it does the adapter's.
 */
export class RoomChannels implements RoomWatcher {
  private readonly logger = new Logger('RoomChannels');
  /** Tells this instance's own publishes apart: Redis delivers them to it too when it has members. */
  private readonly origin = randomUUID();
  private readonly rooms = new Map<string, { members: number; subscribed: Promise<void> }>();
  /** Channel → room, for the rooms subscribed now: a message arriving after the last member left is dropped. */
  private readonly channels = new Map<string, string>();

  constructor(
    private readonly pub: RedisConnection,
    private readonly sub: RedisConnection,
    private readonly names: RedisNames,
    receive: (roomId: string, relay: RoomRelay) => void,
  ) {
    sub.on('smessage', (channel: string, message: string) => {
      const roomId = this.channels.get(channel);
      if (roomId === undefined) return;
      let parsed: { origin: string; relay: RoomRelay };
      try {
        parsed = JSON.parse(message) as { origin: string; relay: RoomRelay };
      } catch {
        this.logger.warn(`unreadable message on ${channel}`);
        return;
      }
      if (parsed.origin !== this.origin) receive(roomId, parsed.relay);
    });
  }

  publish(roomId: string, relay: RoomRelay): void {
    // RedisClients makes a failed publish a warning (the pushes are in the history).
    void this.pub.spublish(this.names.roomChannel(roomId), JSON.stringify({ origin: this.origin, relay }));
  }

  joined(roomId: string): Promise<void> {
    const room = this.rooms.get(roomId);
    if (room) {
      room.members++;
      return room.subscribed;
    }
    const channel = this.names.roomChannel(roomId);
    this.channels.set(channel, roomId);
    const subscribed = this.confirmed(channel);
    this.rooms.set(roomId, { members: 1, subscribed });
    return subscribed;
  }

  left(roomId: string): void {
    const room = this.rooms.get(roomId);
    if (!room || --room.members > 0) return;
    this.rooms.delete(roomId);
    const channel = this.names.roomChannel(roomId);
    this.channels.delete(channel);
    this.sub.sunsubscribe(channel).catch((err: Error) => this.logger.warn(`unsubscribing ${channel} failed: ${err.message}`));
  }

  /** The SSUBSCRIBE's confirmation, or the end of the wait: resolves either way. */
  private confirmed(channel: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn(`subscribing ${channel} not confirmed within ${SUBSCRIBE_WAIT_MS} ms: joining without waiting longer`);
        resolve();
      }, SUBSCRIBE_WAIT_MS);
      timer.unref();
    });
    const subscribed = this.sub.ssubscribe(channel).then(
      () => undefined,
      (err: Error) => this.logger.warn(`subscribing ${channel} failed: ${err.message}`),
    );
    return Promise.race([subscribed, waited]).finally(() => clearTimeout(timer));
  }
}
