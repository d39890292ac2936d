import { Injectable, Logger, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import type { RedisClients } from '../redis/redis-clients.js';
import { SERVER_EVENTS, type Message, type RemovalReason, type ServerEvent, type ServerEventMap } from '../chat/chat.events.js';
import { RoomBroadcaster } from '../chat/chat.ports.js';
import { RoomSanctions } from '../chat/room-sanctions.js';
import type { ChatConnection } from './chat-connection.js';
import { InstanceRelay, type Removal } from './instance-relay.js';
import { LocalConnections } from './local-connections.js';
import { RoomAccessReconciler } from './room-access-reconciler.js';
import { RoomChannels, type Eviction, type RoomRelay } from './room-channels.js';
import { Tracing } from '../tracing/tracing.js';

/** The longest a moderator's answer waits for the other instances (the adapter's own request timeout is 5 s). */
const MODERATION_CONFIRM_MS = 5_500;

/** The subscriber's events for one received message: classic, pattern (the adapter's) and sharded. */
const SUBSCRIBER_MESSAGES = ['messageBuffer', 'pmessageBuffer', 'smessageBuffer'] as const;

/** Catches an eviction lost without a visible disconnect (a Redis that hangs instead of closing). */
export const RECONCILE_EVERY_MS = 30_000;
/** A reconcile that failed (Postgres unreachable) is tried again this soon, relayed events still held. */
const RECONCILE_RETRY_MS = 1000;
/** Relayed events held during one reconcile at most; beyond, the oldest go (clients recover them from history). */
const MAX_HELD_EVENTS = 10_000;

/**
 * Delivers locally first (no Redis round trip for members on this instance), then relays once
 * through the InstanceRelay on one Redis server (its classic pub/sub copies every message to every
 * subscriber anyway, so a subscription per room would only add work) or, on a cluster, on the
 * room's channel, which only the instances with members in the room subscribe to; every other instance delivers to its own members. So each
 * joined connection gets each event exactly once, on any instance and either transport.
 * Evictions from a room travel the same way and apply synchronously on arrival.
 *
 * Pub/sub forgets what it could not deliver, evictions included. So from the moment the Redis
 * subscriber loses its connection until membership of the private rooms joined here was re-read
 * from Postgres (RoomAccessReconciler), relayed events are held, not delivered: a member removed
 * on another instance meanwhile is evicted (`room.removed`) before the room's next push can reach
 * them. A reconcile also runs every RECONCILE_EVERY_MS for a Redis that hangs without closing.
 * Holding instead of re-checking each push keeps the message path free of reads.
 */
@Injectable()
export class RoomFanout extends RoomBroadcaster implements OnApplicationShutdown {
  private readonly logger = new Logger('RoomFanout');
  /** On a cluster: the per-room channels that carry relayed pushes and evictions instead of serverSideEmit. */
  private channels: RoomChannels | null = null;
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
    @Optional() private readonly relay: InstanceRelay = new InstanceRelay(),
    @Optional() private readonly metrics?: ChatMetrics,
    @Optional() private readonly reconciler?: RoomAccessReconciler,
    @Optional() private readonly tracing: Tracing = Tracing.off,
    @Optional() private readonly sanctions?: RoomSanctions,
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
  relayThrough(redis?: Pick<RedisClients, 'pub' | 'sub' | 'subscriberGaps' | 'names' | 'isCluster'>): void {
    const relay = this.relay;
    if (redis?.isCluster) {
      this.channels = new RoomChannels(redis.pub, redis.sub, redis.names, (roomId, relay) => this.receive(roomId, relay));
      this.local.watchRooms(this.channels);
    }
    // What the subscriber receives, whoever it is for: on one server every instance gets every
    // relayed message (its own too), on a cluster only the channels of rooms it has members in.
    const counter = this.metrics?.relayMessagesReceived;
    if (redis && counter) for (const event of SUBSCRIBER_MESSAGES) redis.sub.on(event, () => counter.inc());
    // Listened to on a cluster too: replicas of an older version relay this way during a rollout.
    relay.on('chat:room-event', (roomId, event, data) => this.receive(roomId, { kind: 'event', event, data }));
    relay.on('chat:room-evict', (roomId, who) => this.receive(roomId, { kind: 'evict', who }));
    relay.on('chat:room-event-to-others', (roomId, event, data, exceptUserId) =>
      this.receive(roomId, { kind: 'others', event, data, exceptUserId }),
    );
    relay.on('chat:room-moderated', (roomId, removal, ack?: () => void) => {
      this.applyModeration(roomId, removal);
      if (typeof ack === 'function') ack();
    });
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
      relay.send('chat:membership-reconcile');
    });
    relay.on('chat:membership-reconcile', () => {
      this.hold();
      void this.reconcile(true);
    });
    this.timer = setInterval(() => void this.reconcile(), RECONCILE_EVERY_MS).unref();
  }

  /** What another instance relayed, on a room's channel or by serverSideEmit. */
  private receive(roomId: string, relay: RoomRelay): void {
    // Evictions only take connections out, so they apply at once, held or not.
    if (relay.kind === 'evict') return this.evictLocally(roomId, relay.who);
    this.deliverRelayed(() => {
      if (relay.kind === 'others') return this.local.deliver(roomId, relay.event, relay.data, relay.exceptUserId);
      this.local.deliver(roomId, relay.event, relay.data);
      // Another instance's publish paired the event with its payload.
      if (relay.event === SERVER_EVENTS.messageNew)
        this.metrics?.fanoutLag.observe((Date.now() - Date.parse((relay.data as Message).createdAt)) / 1000);
    });
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
        // Relays of moderation may have been missed too: what this instance reads next is fresh.
        if (afterReconnect) this.sanctions?.forgetAll();
        const stale = await this.reconciler.staleJoins();
        for (const { conn, roomId, reason } of stale) this.evictConnection(conn, roomId, reason);
        if (stale.length) this.logger.warn(`reconcile evicted ${stale.length} connection(s) whose user was removed or banned`);
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

  publish<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E]): void {
    if (this.tracing.on) this.tracing.fanout(roomId, event, this.relayName(), () => this.deliver(roomId, event, data));
    else this.deliver(roomId, event, data);
  }

  /** How a publish reaches the other instances, for its span. */
  private relayName(): string {
    return this.channels ? 'redis-cluster' : this.relay.attached ? 'redis' : 'none';
  }

  private deliver<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E]): void {
    this.local.deliver(roomId, event, data);
    if (this.channels) this.channels.publish(roomId, { kind: 'event', event, data });
    else this.relay.send('chat:room-event', roomId, event, data);
  }

  publishToOthers<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E], exceptUserId: string): void {
    this.local.deliver(roomId, event, data, exceptUserId);
    if (this.channels) this.channels.publish(roomId, { kind: 'others', event, data, exceptUserId });
    else this.relay.send('chat:room-event-to-others', roomId, event, data, exceptUserId);
  }

  private deliverRelayed(deliver: () => void): void {
    if (!this.held) return deliver();
    if (this.held.length >= MAX_HELD_EVENTS) this.held.shift();
    this.held.push(deliver);
  }

  async moderated(roomId: string, removal: Removal | null): Promise<void> {
    this.applyModeration(roomId, removal);
    if (!this.relay.attached) return;
    if (this.pub && this.pub.status !== 'ready') {
      // Nobody could confirm it: as for an eviction, the others reconcile (bans included) once the publisher is back.
      this.evictionsUnsent = true;
      this.logger.warn(`moderation of room ${roomId} not relayed (Redis away); every instance reconciles when it is back`);
      return;
    }
    const confirmed = await this.relay.sendConfirmed('chat:room-moderated', [roomId, removal], MODERATION_CONFIRM_MS);
    if (confirmed !== null)
      this.logger.warn(
        `moderation of room ${roomId} not confirmed by every instance (${confirmed}); ` +
          'each reconciles after its Redis gap, and reads sanctions within their cache lifetime',
      );
  }

  relayReachable(): boolean {
    return !this.relay.attached || !this.pub || this.pub.status === 'ready';
  }

  /** Forgets the room's cached sanctions here and takes a banned or kicked user's connections out of it. */
  private applyModeration(roomId: string, removal: Removal | null): void {
    this.sanctions?.forget(roomId);
    if (removal) this.evictLocally(roomId, { userIds: [removal.userId] }, removal.reason);
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
    if (this.channels) this.channels.publish(roomId, { kind: 'evict', who });
    else this.relay.send('chat:room-evict', roomId, who);
  }

  private evictLocally(roomId: string, who: Eviction, reason?: RemovalReason): void {
    const leaves =
      'userIds' in who
        ? (userId: string) => who.userIds.includes(userId)
        : (
            (members) => (userId: string) =>
              !members.has(userId)
          )(new Set(who.keepMembers));
    for (const conn of [...this.local.all()]) {
      if (conn.rooms.has(roomId) && leaves(conn.user.userId)) this.evictConnection(conn, roomId, reason);
    }
  }

  private evictConnection(conn: ChatConnection, roomId: string, reason?: RemovalReason): void {
    if (!conn.rooms.has(roomId)) return;
    conn.leave(roomId);
    conn.push(SERVER_EVENTS.roomRemoved, reason ? { roomId, reason } : { roomId });
  }
}
