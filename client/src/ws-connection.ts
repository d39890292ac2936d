import { isReply, PendingReplies, type CloseKind, type Connection, type ConnectionHandlers, type Reply } from './connection.js';
import { ChatRequestError } from './errors.js';
import { clearTimer, parseUrl, setTimer } from './host.js';

/** The part of the WebSocket API the client uses: browsers' WebSocket and the `ws` package both have it. */
interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: unknown }) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;

/** The raw WebSocket endpoint for a base URL: http→ws, and path /ws unless the URL names another one. */
export function wsEndpoint(baseUrl: string, token: string): string {
  const url = parseUrl(baseUrl);
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/ws';
  // Browsers cannot set an Authorization header on a WebSocket: the protocol accepts the query parameter.
  url.searchParams.set('access_token', token);
  return url.toString();
}

/** One raw WebSocket connection attempt (frames `{event, data, id}` → `{id, ok, …}`). */
export class WsConnection implements Connection {
  private readonly ws: WebSocketLike;
  private readonly pending = new PendingReplies();
  private ended = false;
  private refusedWith401 = false;

  constructor(
    Ctor: WebSocketConstructor,
    baseUrl: string,
    token: string,
    handshakeTimeoutMs: number,
    private readonly handlers: ConnectionHandlers,
  ) {
    this.ws = new Ctor(wsEndpoint(baseUrl, token));
    const handshake = setTimer(() => this.end('LOST', 'no session within the handshake timeout'), handshakeTimeoutMs);
    this.ws.onmessage = (ev) => {
      let frame: { id?: unknown; event?: unknown; data?: unknown };
      try {
        frame = JSON.parse(String(ev.data));
      } catch {
        return; // the service sends JSON text frames only; anything else is not ours to act on
      }
      if (typeof frame !== 'object' || frame === null) return;
      if (typeof frame.id === 'string' && isReply(frame)) {
        this.pending.settle(frame.id, frame);
        return;
      }
      if (typeof frame.event !== 'string') return;
      if (frame.event === 'session') {
        clearTimer(handshake);
        handlers.session(frame.data as { userId: string; connectionId: string });
      } else handlers.push(frame.event, frame.data);
    };
    this.ws.onerror = (ev) => {
      // Browsers hide a refused upgrade's status; Node's `ws` names it in the error message.
      if (typeof ev?.message === 'string' && /\b401\b/.test(ev.message)) this.refusedWith401 = true;
    };
    this.ws.onclose = (ev) => {
      clearTimer(handshake);
      let kind: CloseKind = 'LOST';
      if (ev.code === 4001) kind = 'EXPIRED';
      else if (ev.code === 4003) kind = 'KICKED';
      else if (this.refusedWith401) kind = 'UNAUTHORIZED';
      this.end(kind, `close ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`);
    };
  }

  request(event: string, data: unknown, timeoutMs: number): Promise<Reply> {
    if (this.ended || this.ws.readyState !== OPEN) return Promise.reject(new ChatRequestError('DISCONNECTED', 'not connected'));
    const { id, reply } = this.pending.add(timeoutMs);
    this.ws.send(JSON.stringify({ event, data, id }));
    return reply;
  }

  close(): void {
    this.end('LOST', 'closed by the client');
  }

  private end(kind: CloseKind, detail: string): void {
    if (this.ended) return;
    this.ended = true;
    this.ws.onmessage = this.ws.onclose = null;
    // Node's `ws` emits an error when a handshake in progress is aborted, and an error event
    // without a listener would be thrown: keep a silent one.
    this.ws.onerror = () => undefined;
    try {
      this.ws.close();
    } catch {
      // closing a socket that never opened may throw in some implementations; it is gone either way
    }
    this.pending.failAll();
    this.handlers.closed(kind, detail);
  }
}
