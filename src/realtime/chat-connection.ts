import type { Identity } from '../auth/identity.js';
import type { Transport } from '../common/transport.js';
import { ChatError } from '../chat/chat.errors.js';
import { SERVER_EVENTS, type Reply, type ServerEvent, type ServerEventMap } from '../chat/chat.events.js';

/**
 * Why the server closes a connection, which decides how:
 * - restart: the instance shuts down; the client should reconnect (to another instance);
 * - expired: the token expired; the client must not reconnect with it;
 * - abuse: the client kept sending after being rate limited;
 * - disconnected: a backend service disconnected the user (POST /v1/users/{userId}/disconnect);
 *   the client must not reconnect by itself.
 */
export type CloseReason = 'restart' | 'expired' | 'abuse' | 'disconnected';

/** Sends the reply to one request: through its ack / id, or as an `error` push when it has none. */
export type Responder = (reply: Reply) => void;

/**
 * One inbound frame or packet. `malformed` is set when it could not be read as a request: the
 * dispatcher still counts it against the rate limit, then answers it with `malformed`.
 */
export type RequestListener = (event: string, data: unknown, respond: Responder, malformed?: Reply & { ok: false }) => void;

const MAX_ECHOED_EVENT_LENGTH = 128;

/**
 * One client connection, whatever its transport. The gateway sees only this, so its handlers
 * are the same for socket.io and raw WebSocket clients.
 */
export abstract class ChatConnection {
  private closeListeners: ((reason: string) => void)[] = [];
  private leaveListeners: ((roomId: string) => void)[] = [];
  private joinListeners: ((roomId: string) => Promise<void>)[] = [];
  /** Joins whose listeners have not all resolved yet: joining such a room again waits for the same. */
  private readonly entering = new Map<string, Promise<void>>();
  private closed = false;
  private identity: Identity;
  private readonly joined = new Set<string>();

  protected constructor(
    readonly id: string,
    readonly transport: Transport,
    identity: Identity,
    private readonly maxRooms: number,
  ) {
    this.identity = identity;
  }

  get user(): Identity {
    return this.identity;
  }

  /** auth.refresh: the same user with a fresh token, and so a later expiry. */
  replaceIdentity(next: Identity): void {
    this.identity = next;
  }

  get rooms(): ReadonlySet<string> {
    return this.joined;
  }

  assertCanJoin(roomId: string): void {
    if (!this.joined.has(roomId) && this.joined.size >= this.maxRooms) {
      throw new ChatError('LIMIT_EXCEEDED', `a connection may join at most ${this.maxRooms} rooms`, { limit: this.maxRooms });
    }
  }

  /**
   * Subscribes to a room's pushes; refused past the per-connection room cap. Resolves when the
   * join listeners have (the cross-instance relay of the room reaches this instance).
   */
  join(roomId: string): Promise<void> {
    if (this.joined.has(roomId)) return this.entering.get(roomId) ?? Promise.resolve();
    this.assertCanJoin(roomId);
    this.joined.add(roomId);
    this.subscribe(roomId);
    // Without listeners (no per-room relay subscriptions: one Redis server, or none) nothing is awaited.
    if (!this.joinListeners.length) return Promise.resolve();
    const entered = Promise.all(this.joinListeners.map((l) => l(roomId))).then(() => undefined);
    this.entering.set(roomId, entered);
    void entered.then(() => {
      if (this.entering.get(roomId) === entered) this.entering.delete(roomId);
    });
    return entered;
  }

  /** Told of every room newly joined; the join resolves once the promise the listener returns does (it must not reject). */
  onJoin(listener: (roomId: string) => Promise<void>): void {
    this.joinListeners.push(listener);
  }

  /** Leaving, however it happens (room.leave, a failed join, an eviction), tells the leave listeners. */
  leave(roomId: string): void {
    if (!this.joined.delete(roomId)) return;
    this.unsubscribe(roomId);
    for (const l of this.leaveListeners) l(roomId);
  }

  onLeave(listener: (roomId: string) => void): void {
    this.leaveListeners.push(listener);
  }

  /** Closed for good; `rooms` still lists the rooms it was in when it closed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The token expired without a refresh: say so, then disconnect. */
  expire(): void {
    this.push(SERVER_EVENTS.error, { code: 'UNAUTHORIZED', message: 'token expired' });
    this.close('expired');
  }

  abstract push<E extends ServerEvent>(event: E, data: ServerEventMap[E]): void;
  protected abstract subscribe(roomId: string): void;
  protected abstract unsubscribe(roomId: string): void;
  /** Starts delivering the client's requests to `listener`. */
  abstract onRequest(listener: RequestListener): void;
  /** Bytes queued for the client and not yet taken by the network: grows when it stops reading. */
  abstract bufferedBytes(): number;
  /** Drops the connection at once, for a peer that cannot be reached or keeps up no longer. */
  abstract terminate(): void;
  /** Closes the connection the way the transport expresses `reason` (see CloseReason). */
  abstract close(reason: CloseReason): void;

  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  protected notifyClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.closeListeners) l(reason);
    this.closeListeners = [];
    this.leaveListeners = [];
    this.joinListeners = [];
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
