import { Injectable } from '@nestjs/common';
import type { Server } from 'socket.io';
import { RoomBroadcaster } from '../chat/chat.ports.js';
import { LocalConnections } from './local-connections.js';

/** Carried between instances by the socket.io adapter's serverSideEmit. */
const RELAY_EVENT = 'chat:room-event';

/**
 * Delivers locally first (no Redis round trip for members on this instance), then relays once
 * through the socket.io adapter; every other instance delivers to its own members. So each
 * joined connection gets each event exactly once, on any instance and either transport.
 */
@Injectable()
export class RoomFanout extends RoomBroadcaster {
  private relay: Server | null = null;

  constructor(private readonly local: LocalConnections) {
    super();
  }

  /** Enables the cross-instance relay; only with an adapter that spans instances (Redis). */
  relayThrough(io: Server): void {
    this.relay = io;
    io.on(RELAY_EVENT, (roomId: string, event: string, data: unknown) => this.local.deliver(roomId, event, data));
  }

  publish(roomId: string, event: string, data: unknown): void {
    this.local.deliver(roomId, event, data);
    this.relay?.serverSideEmit(RELAY_EVENT, roomId, event, data);
  }
}
