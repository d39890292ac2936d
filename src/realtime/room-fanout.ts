import { Injectable, Logger, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import type { RedisClients } from '../redis/redis-clients.js';
import type { Server } from 'socket.io';
import { SERVER_EVENTS, type Message } from '../chat/chat.events.js';
import { RoomBroadcaster } from '../chat/chat.ports.js';
import type { ChatConnection } from './chat-connection.js';
import { LocalConnections } from './local-connections.js';
import { PrivateRoomReconciler } from './private-room-reconciler.js';

/** Carried between instances by the socket.io adapter's serverSideEmit. */
const RELAY_EVENT = 'chat:room-event';
const EVICT_EVENT = 'chat:room-evict';
const RELAY_TO_OTHERS_EVENT = 'chat:room-event-to-others';
/** Asks every instance to re-read membership: sent after evictions that left while Redis was away. */
const RECONCILE_EVENT = 'chat:membership-reconcile';

/** Whom to take out of a room: these users, or everybody but these members. */
type Eviction = { userIds: string[] } | { keepMembers: string[] };

/** Catches an eviction lost without a visible disconnect (a Redis that hangs instead of closing). */
export const RECONCILE_EVERY_MS = 30_000;
/** A reconcile that failed (Postgres unreachable) is tried again this soon, relayed events still held. */
const RECONCILE_RETRY_MS = 1000;
/** Relayed events held during one reconcile at most; beyond, the oldest go (clients recover them from history). */
const MAX_HELD_EVENTS = 10_000;

/**
 * Delivers locally first (no Redis round trip for members on this instance), then relays once
 * through the socket.io adapter; every other instance delivers to its own members. So each
 * joined connection gets each event exactly once, on any instance and either transport.
 * Evictions from a room travel the same way and apply synchronously on arrival.
 *
 * Pub/sub forgets what it could not deliver, evictions included. So from the moment the Redis
 * subscriber loses its connection until membership of the private rooms joined here was re-read
 * from Postgres (PrivateRoomReconciler), relayed events are held, not delivered: a member removed
 * on another instance meanwhile is evicted (`room.removed`) before the room's next push can reach
 * them. A reconcile also runs every RECONCILE_EVERY_MS for a Redis that hangs without closing.
 * Holding instead of re-checking each push keeps the message path free of reads.
 */
@Injectable()
export class RoomFanout extends RoomBroadcaster implements OnApplicationShutdown {
  private readonly logger = new Logger('RoomFanout');
  private relay: Server | null = null;
  /** Relayed deliveries waiting for a reconcile; null while the relay is trusted. */
  private held: (() => void)[] | null = null;
  /** Counts the subscriber's disconnects, so a run knows whether another gap began during it. */
  private gaps = 0;
  private reconciling: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  /** Ends a subscriber gap whose `back` event never comes (SubscriberGaps.overAfterMs). */
  private gapBound: NodeJS.Timeout | null = null;
  private pub: RedisClients['pub'] | null = null;
  /** An eviction was published while the publisher was not connected: it may not have reached anyone. */
  private evictionsUnsent = false;

  constructor(
    private readonly local: LocalConnections,
    @Optional() private readonly metrics?: ChatMetrics,
    @Optional() private readonly reconciler?: PrivateRoomReconciler,
  ) {
    super();
  }

  /**
   * Enables the cross-instance relay; only with an adapter that spans instances (Redis). `redis`
   * holds the adapter's connections, watched for the gaps in which evictions can be lost: the
   * subscriber's (this instance missed some) and the publisher's (the others may have missed ours,
   * while their subscribers stayed up; they are asked to reconcile when it returns). On a cluster
   * the subscriber's gap is one shard's failover (RedisClients.subscriberGaps).
   */
  relayThrough(io: Server, redis?: Pick<RedisClients, 'pub' | 'sub' | 'subscriberGaps'>): void {
    this.relay = io;
    io.on(RELAY_EVENT, (roomId: string, event: string, data: unknown) =>
      this.deliverRelayed(() => {
        this.local.deliver(roomId, event, data);
        if (event === SERVER_EVENTS.messageNew)
          this.metrics?.fanoutLag.observe((Date.now() - Date.parse((data as Message).createdAt)) / 1000);
      }),
    );
    // Evictions only take connections out, so they apply at once, held or not.
    io.on(EVICT_EVENT, (roomId: string, who: Eviction) => this.evictLocally(roomId, who));
    io.on(RELAY_TO_OTHERS_EVENT, (roomId: string, event: string, data: unknown, exceptUserId: string) =>
      this.deliverRelayed(() => this.local.deliver(roomId, event, data, exceptUserId)),
    );
    if (!redis || !this.reconciler) return;
    this.pub = redis.pub;
    const gaps = redis.subscriberGaps;
    redis.sub.on(gaps.lost, () => {
      this.hold();
      if (gaps.overAfterMs === undefined) return;
      // Each loss restarts the bound; a run then delivers what was held unless a newer gap began.
      if (this.gapBound) clearTimeout(this.gapBound);
      this.gapBound = setTimeout(() => {
        if (this.held) void this.reconcile(true);
      }, gaps.overAfterMs).unref();
    });
    // ioredis emits 'ready' before it re-subscribes, so the run's reads start after the gap ended.
    redis.sub.on(gaps.back, () => {
      if (this.held) void this.reconcile(true);
    });
    redis.pub.on('ready', () => {
      if (!this.evictionsUnsent) return;
      this.evictionsUnsent = false;
      io.serverSideEmit(RECONCILE_EVENT);
    });
    io.on(RECONCILE_EVENT, () => {
      this.hold();
      void this.reconcile(true);
    });
    this.timer = setInterval(() => void this.reconcile(), RECONCILE_EVERY_MS).unref();
  }

  /** From now on relayed pushes wait for a reconcile run. */
  private hold(): void {
    this.gaps++;
    this.held ??= [];
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.gapBound) clearTimeout(this.gapBound);
  }

  /**
   * Re-reads private-room membership and evicts the connections whose membership is gone. A run
   * after a reconnect then delivers what was held, in order, unless the subscriber dropped again
   * meanwhile (the next reconnect's run does it). Runs never overlap; a failed one is retried.
   */
  reconcile(afterReconnect = false): Promise<void> {
    const run = this.reconciling.then(async () => {
      if (!this.reconciler) return;
      const gap = this.gaps;
      try {
        const stale = await this.reconciler.staleJoins();
        for (const { conn, roomId } of stale) this.evictConnection(conn, roomId);
        if (stale.length) this.logger.warn(`reconcile evicted ${stale.length} connection(s) whose room membership was removed`);
      } catch (err) {
        this.logger.warn(`membership reconcile failed${afterReconnect ? ', retrying' : ''}: ${(err as Error).message}`);
        if (afterReconnect) setTimeout(() => void this.reconcile(true), RECONCILE_RETRY_MS).unref();
        return;
      }
      if (!afterReconnect || gap !== this.gaps || !this.held) return;
      const held = this.held;
      this.held = null;
      for (const deliver of held) deliver();
    });
    this.reconciling = run.catch(() => undefined);
    return run;
  }

  publish(roomId: string, event: string, data: unknown): void {
    if (event === SERVER_EVENTS.messageNew) this.metrics?.messagesStored.inc();
    this.local.deliver(roomId, event, data);
    this.relay?.serverSideEmit(RELAY_EVENT, roomId, event, data);
  }

  publishToOthers(roomId: string, event: string, data: unknown, exceptUserId: string): void {
    this.local.deliver(roomId, event, data, exceptUserId);
    this.relay?.serverSideEmit(RELAY_TO_OTHERS_EVENT, roomId, event, data, exceptUserId);
  }

  private deliverRelayed(deliver: () => void): void {
    if (!this.held) return deliver();
    if (this.held.length >= MAX_HELD_EVENTS) this.held.shift();
    this.held.push(deliver);
  }

  removeUsers(roomId: string, userIds: string[]): void {
    this.evict(roomId, { userIds });
  }

  removeNonMembers(roomId: string, memberIds: string[]): void {
    this.evict(roomId, { keepMembers: memberIds });
  }

  private evict(roomId: string, who: Eviction): void {
    this.evictLocally(roomId, who);
    if (this.pub && this.pub.status !== 'ready') this.evictionsUnsent = true;
    this.relay?.serverSideEmit(EVICT_EVENT, roomId, who);
  }

  private evictLocally(roomId: string, who: Eviction): void {
    const leaves =
      'userIds' in who
        ? (userId: string) => who.userIds.includes(userId)
        : (
            (members) => (userId: string) =>
              !members.has(userId)
          )(new Set(who.keepMembers));
    for (const conn of [...this.local.all()]) {
      if (conn.rooms.has(roomId) && leaves(conn.user.userId)) this.evictConnection(conn, roomId);
    }
  }

  private evictConnection(conn: ChatConnection, roomId: string): void {
    if (!conn.rooms.has(roomId)) return;
    conn.leave(roomId);
    conn.push(SERVER_EVENTS.roomRemoved, { roomId });
  }
}
