import type { io as IoFunction, Socket } from 'socket.io-client';
import { isReply, PendingReplies, type CloseKind, type Connection, type ConnectionHandlers, type Reply } from './connection.js';
import { ChatRequestError } from './errors.js';
import { clearTimer, parseUrl, setTimer } from './host.js';

export type Io = typeof IoFunction;

let loading: Promise<Io> | null = null;

/**
 * Loads socket.io-client on first use: it is an optional peer dependency, so a ws-only user need
 * not install it. Rejects with a TypeError saying what to install when it is missing.
 */
export function loadSocketIo(): Promise<Io> {
  loading ??= import('socket.io-client').then(
    (mod) => mod.io,
    (err: unknown) => {
      loading = null; // installed later (or a flaky network for a browser's import): try again next time
      throw new TypeError(
        `the socket.io transport needs the socket.io-client package (npm install socket.io-client), or use transport: 'ws' (${err instanceof Error ? err.message : String(err)})`,
      );
    },
  );
  return loading;
}

/**
 * One socket.io connection attempt. socket.io's own reconnection is off: the chat client drives
 * every retry itself, so both transports share one backoff, one URL rotation and one state machine.
 */
export class SocketIoConnection implements Connection {
  private readonly socket: Socket;
  private readonly pending = new PendingReplies();
  private ended = false;
  /** The server pushes error UNAUTHORIZED right before it disconnects an expired token. */
  private sawUnauthorized = false;

  constructor(
    io: Io,
    baseUrl: string,
    token: string,
    handshakeTimeoutMs: number,
    private readonly handlers: ConnectionHandlers,
  ) {
    // The URL's path would name a socket.io namespace; the service serves the default one only.
    this.socket = io(parseUrl(baseUrl).origin, { auth: { token }, reconnection: false, forceNew: true, timeout: handshakeTimeoutMs });
    const handshake = setTimer(() => this.end('LOST', 'no session within the handshake timeout'), handshakeTimeoutMs);
    this.socket.on('session', (data: { userId: string; connectionId: string }) => {
      clearTimer(handshake);
      handlers.session(data);
    });
    this.socket.onAny((event: string, data: unknown) => {
      if (event === 'session') return;
      if (event === 'error' && (data as { code?: unknown } | null)?.code === 'UNAUTHORIZED') this.sawUnauthorized = true;
      handlers.push(event, data);
    });
    this.socket.on('connect_error', (err: Error) => {
      clearTimer(handshake);
      this.end(err.message === 'UNAUTHORIZED' ? 'UNAUTHORIZED' : 'LOST', `connect_error: ${err.message}`);
    });
    this.socket.on('disconnect', (reason: string) => {
      clearTimer(handshake);
      let kind: CloseKind = 'LOST';
      if (reason === 'io server disconnect') kind = this.sawUnauthorized ? 'EXPIRED' : 'KICKED';
      this.end(kind, reason);
    });
  }

  request(event: string, data: unknown, timeoutMs: number): Promise<Reply> {
    if (this.ended) return Promise.reject(new ChatRequestError('DISCONNECTED', 'not connected'));
    const { id, reply } = this.pending.add(timeoutMs);
    this.socket.emit(event, data, (answer: unknown) =>
      this.pending.settle(id, isReply(answer) ? answer : { ok: false, error: { code: 'INTERNAL', message: 'malformed reply' } }),
    );
    return reply;
  }

  close(): void {
    this.end('LOST', 'closed by the client');
  }

  private end(kind: CloseKind, detail: string): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.off();
    this.socket.offAny();
    this.socket.disconnect();
    this.pending.failAll();
    this.handlers.closed(kind, detail);
  }
}
