import type { Socket } from 'socket.io';
import type { Identity } from '../auth/identity.js';
import type { Reply } from '../chat/chat.events.js';
import { ChatConnection, type RequestListener } from './chat-connection.js';

/** A socket.io client. Rooms are socket.io rooms, so broadcasts encode each packet once. */
export class IoConnection extends ChatConnection {
  constructor(
    readonly socket: Socket,
    user: Identity,
  ) {
    super(socket.id, 'socket.io', user);
    socket.once('disconnect', (reason) => this.notifyClosed(reason));
  }

  push(event: string, data: unknown): void {
    this.socket.emit(event, data);
  }

  join(roomId: string): void {
    void this.socket.join(roomId);
  }

  leave(roomId: string): void {
    void this.socket.leave(roomId);
  }

  onRequest(listener: RequestListener): void {
    // onAny sees every event, so unknown names get UNKNOWN_EVENT instead of a silent drop.
    this.socket.onAny((event: string, ...args: unknown[]) => {
      const last = args.at(-1);
      const ack = typeof last === 'function' ? (args.pop() as (r: Reply) => void) : undefined;
      listener(event, args[0], this.responder(event, ack));
    });
  }
}
