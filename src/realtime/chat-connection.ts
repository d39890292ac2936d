import type { Identity } from '../auth/identity.js';
import { SERVER_EVENTS, type Reply } from '../chat/chat.events.js';

export type Transport = 'socket.io' | 'ws';

/** Sends the reply to one request: through its ack / id, or as an `error` push when it has none. */
export type Responder = (reply: Reply) => void;

export type RequestListener = (event: string, data: unknown, respond: Responder) => void;

const MAX_ECHOED_EVENT_LENGTH = 128;

/**
 * One client connection, whatever its transport. The gateway sees only this, so its handlers
 * are the same for socket.io and raw WebSocket clients.
 */
export abstract class ChatConnection {
  private closeListeners: ((reason: string) => void)[] = [];
  private closed = false;

  protected constructor(
    readonly id: string,
    readonly transport: Transport,
    readonly user: Identity,
  ) {}

  abstract push(event: string, data: unknown): void;
  abstract join(roomId: string): void;
  abstract leave(roomId: string): void;
  /** Starts delivering the client's requests to `listener`. */
  abstract onRequest(listener: RequestListener): void;
  /** Bytes queued for the client and not yet taken by the network: grows when it stops reading. */
  abstract bufferedBytes(): number;
  /** Drops the connection at once, for a peer that cannot be reached or keeps up no longer. */
  abstract terminate(): void;
  /** Closes so that the client reconnects by itself, to another instance: the shutdown path. */
  abstract closeForRestart(): void;

  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  protected notifyClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.closeListeners) l(reason);
    this.closeListeners = [];
  }

  /** Builds the responder for one request; `reply` is undefined when the client asked for none. */
  protected responder(event: string, reply: ((r: Reply) => void) | undefined): Responder {
    if (reply) return reply;
    return (r) => {
      if (r.ok) return;
      this.push(SERVER_EVENTS.error, { ...r.error, event: event.slice(0, MAX_ECHOED_EVENT_LENGTH) });
    };
  }
}
