import { Injectable, Optional } from '@nestjs/common';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import type { Server } from 'socket.io';
import { SERVER_EVENTS, type Message } from '../chat/chat.events.js';
import { RoomBroadcaster } from '../chat/chat.ports.js';
import { LocalConnections } from './local-connections.js';

/** Carried between instances by the socket.io adapter's serverSideEmit. */
const RELAY_EVENT = 'chat:room-event';
const EVICT_EVENT = 'chat:room-evict';
const RELAY_TO_OTHERS_EVENT = 'chat:room-event-to-others';

/** Whom to take out of a room: these users, or everybody but these members. */
type Eviction = { userIds: string[] } | { keepMembers: string[] };

/**
 * Delivers locally first (no Redis round trip for members on this instance), then relays once
 * through the socket.io adapter; every other instance delivers to its own members. So each
 * joined connection gets each event exactly once, on any instance and either transport.
 * Evictions from a room travel the same way and apply synchronously on arrival.
 */
@Injectable()
export class RoomFanout extends RoomBroadcaster {
  private relay: Server | null = null;

  constructor(
    private readonly local: LocalConnections,
    @Optional() private readonly metrics?: ChatMetrics,
  ) {
    super();
  }

  /** Enables the cross-instance relay; only with an adapter that spans instances (Redis). */
  relayThrough(io: Server): void {
    this.relay = io;
    io.on(RELAY_EVENT, (roomId: string, event: string, data: unknown) => {
      this.local.deliver(roomId, event, data);
      if (event === SERVER_EVENTS.messageNew)
        this.metrics?.fanoutLag.observe((Date.now() - Date.parse((data as Message).createdAt)) / 1000);
    });
    io.on(EVICT_EVENT, (roomId: string, who: Eviction) => this.evictLocally(roomId, who));
    io.on(RELAY_TO_OTHERS_EVENT, (roomId: string, event: string, data: unknown, exceptUserId: string) =>
      this.local.deliver(roomId, event, data, exceptUserId),
    );
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

  removeUsers(roomId: string, userIds: string[]): void {
    this.evict(roomId, { userIds });
  }

  removeNonMembers(roomId: string, memberIds: string[]): void {
    this.evict(roomId, { keepMembers: memberIds });
  }

  private evict(roomId: string, who: Eviction): void {
    this.evictLocally(roomId, who);
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
      if (!conn.rooms.has(roomId) || !leaves(conn.user.userId)) continue;
      conn.leave(roomId);
      conn.push(SERVER_EVENTS.roomRemoved, { roomId });
    }
  }
}
