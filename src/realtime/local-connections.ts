import { Injectable, Optional } from '@nestjs/common';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import type { Server } from 'socket.io';
import { SERVER_EVENTS, type ServerEvent, type ServerEventMap } from '../chat/chat.events.js';
import type { Identity } from '../auth/identity.js';
import type { Transport } from '../common/transport.js';
import type { OpenConnections } from '../presence/connection-slots.js';
import type { ChatConnection } from './chat-connection.js';
import type { WsConnection } from './ws-connection.js';
import { ioRoom } from './io-rooms.js';

/** Told when a connection of this instance joins a room and when it leaves it (or closes). */
export interface RoomWatcher {
  /** Resolves (never rejects) once the room's relayed pushes reach this instance. */
  joined(roomId: string): Promise<void>;
  left(roomId: string): void;
}

/**
 * The connections of this instance and their rooms. socket.io keeps its own rooms; raw ws
 * room membership lives here. Delivery to a room reaches each local member exactly once.
 */
@Injectable()
export class LocalConnections implements OpenConnections {
  private io: Server | null = null;
  private readonly connections = new Set<ChatConnection>();
  private readonly perUser = new Map<string, number>();
  private readonly addedListeners: ((conn: ChatConnection) => void)[] = [];

  constructor(@Optional() private readonly metrics?: ChatMetrics) {
    metrics?.countConnectionsWith((transport) => this.count(transport));
  }
  private readonly wsRooms = new Map<string, Set<WsConnection>>();
  private watcher: RoomWatcher | null = null;

  attach(io: Server): void {
    this.io = io;
  }

  /** Set before the first connection is added (the relay is set up with the server). */
  watchRooms(watcher: RoomWatcher): void {
    this.watcher = watcher;
  }

  add(conn: ChatConnection): void {
    this.connections.add(conn);
    const userId = conn.user.userId;
    this.perUser.set(userId, (this.perUser.get(userId) ?? 0) + 1);
    const watcher = this.watcher;
    if (watcher) {
      conn.onJoin((roomId) => watcher.joined(roomId));
      conn.onLeave((roomId) => watcher.left(roomId));
    }
    conn.onClose(() => {
      // A closed connection keeps its rooms listed but is told of no leave.
      if (watcher) for (const roomId of conn.rooms) watcher.left(roomId);
      this.connections.delete(conn);
      const left = (this.perUser.get(userId) ?? 1) - 1;
      if (left > 0) this.perUser.set(userId, left);
      else this.perUser.delete(userId);
    });
    for (const listener of this.addedListeners) listener(conn);
  }

  /** Every connection this instance opens, once it is open (the connection cap's slots follow them). */
  onAdded(listener: (conn: ChatConnection) => void): void {
    this.addedListeners.push(listener);
  }

  countForUser(userId: string): number {
    return this.perUser.get(userId) ?? 0;
  }

  all(): Iterable<ChatConnection> {
    return this.connections;
  }

  count(transport: Transport): number {
    let n = 0;
    for (const c of this.connections) if (c.transport === transport) n++;
    return n;
  }

  joinWs(roomId: string, conn: WsConnection): void {
    let members = this.wsRooms.get(roomId);
    if (!members) this.wsRooms.set(roomId, (members = new Set()));
    members.add(conn);
  }

  leaveWs(roomId: string, conn: WsConnection): void {
    const members = this.wsRooms.get(roomId);
    if (members?.delete(conn) && members.size === 0) this.wsRooms.delete(roomId);
  }

  /**
   * Delivers to this instance's members of the room only; other instances do the same for theirs.
   * With `exceptUserId`, that user's connections are skipped (typing): socket.io then encodes per
   * socket instead of once per room, which is fine for those small, rare pushes.
   */
  deliver<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E], exceptUserId?: string): void {
    if (exceptUserId === undefined) this.io?.local.to(ioRoom(roomId)).emit(event, data);
    else this.emitToOtherSockets(roomId, event, data, exceptUserId);
    const members = this.wsRooms.get(roomId);
    if (this.metrics && event === SERVER_EVENTS.messageNew) {
      const ioMembers = this.io?.sockets.adapter.rooms.get(ioRoom(roomId))?.size ?? 0;
      if (ioMembers) this.metrics.messagesDelivered.inc({ transport: 'socket.io' }, ioMembers);
      if (members?.size) this.metrics.messagesDelivered.inc({ transport: 'ws' }, members.size);
    }
    if (!members?.size) return;
    const frame = JSON.stringify({ event, data });
    for (const conn of members) if (conn.user.userId !== exceptUserId) conn.sendFrame(frame);
  }

  private emitToOtherSockets<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E], exceptUserId: string): void {
    const sockets = this.io?.sockets;
    for (const socketId of sockets?.adapter.rooms.get(ioRoom(roomId)) ?? []) {
      const socket = sockets?.sockets.get(socketId);
      if (socket && (socket.data.user as Identity).userId !== exceptUserId) socket.emit(event, data);
    }
  }
}
