import type { Socket } from 'socket.io';
import type { Identity } from '../auth/identity.js';
import type { Reply, ServerEvent, ServerEventMap } from '../chat/chat.events.js';
import { ChatConnection, type CloseReason, type RequestListener } from './chat-connection.js';
import { ioRoom } from './io-rooms.js';

/** A socket.io client. Rooms are socket.io rooms, so broadcasts encode each packet once. */
export class IoConnection extends ChatConnection {
  constructor(
    readonly socket: Socket,
    user: Identity,
    maxRooms: number,
  ) {
    super(socket.id, 'socket.io', user, maxRooms);
    socket.once('disconnect', (reason) => this.notifyClosed(reason));
  }

  push<E extends ServerEvent>(event: E, data: ServerEventMap[E]): void {
    this.socket.emit(event, data);
  }

  protected subscribe(roomId: string): void {
    void this.socket.join(ioRoom(roomId));
  }

  protected unsubscribe(roomId: string): void {
    void this.socket.leave(ioRoom(roomId));
  }

  bufferedBytes(): number {
    // engine.io keeps packets it could not hand to the transport yet in writeBuffer (private in
    // its typings); the websocket transport's own ws queue comes on top.
    const conn = this.socket.conn as unknown as EngineSocketInternals;
    let bytes = 0;
    for (const packet of conn.writeBuffer) bytes += byteLength(packet.data);
    if (conn.transport.name === 'websocket') bytes += conn.transport.socket?.bufferedAmount ?? 0;
    return bytes;
  }

  terminate(): void {
    this.socket.disconnect(true);
  }

  /**
   * restart closes the transport, not the socket.io session: the client sees "transport close" and
   * reconnects. Otherwise (expired, abuse, disconnected) a server-side disconnect ("io server
   * disconnect"), after which socket.io-client does not reconnect by itself.
   */
  close(reason: CloseReason): void {
    if (reason === 'restart') this.socket.conn.close();
    else this.socket.disconnect(true);
  }

  onRequest(listener: RequestListener): void {
    // onAny sees every event, so unknown names get UNKNOWN_EVENT instead of a silent drop.
    this.socket.onAny((event: unknown, ...args: unknown[]) => {
      const last = args.at(-1);
      const ack = typeof last === 'function' ? (args.pop() as (r: Reply) => void) : undefined;
      // socket.io also carries numeric event names; the protocol has none, so they are unknown.
      listener(typeof event === 'string' ? event : `#${String(event)}`, args[0], this.responder(String(event), ack));
    });
  }
}

interface EngineSocketInternals {
  writeBuffer: { data?: unknown }[];
  transport: { name: string; socket?: { bufferedAmount?: number } };
}

function byteLength(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}
