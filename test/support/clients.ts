import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import WebSocket from 'ws';

export type Kind = 'io' | 'io-polling' | 'ws';
export const KINDS: Kind[] = ['io', 'io-polling', 'ws'];

export interface Reply {
  ok: boolean;
  data?: any;
  error?: { code: string; message: string; details?: any };
  id?: string;
}

export interface Push {
  event: string;
  data: any;
}

const WAIT_MS = 5000;

/** One test-facing API over socket.io (websocket or polling) and raw ws clients. */
export abstract class TestClient {
  readonly pushes: Push[] = [];
  session: { userId: string; connectionId: string } | null = null;
  private waiters: { event: string; pred: (d: any) => boolean; resolve: (d: any) => void }[] = [];

  constructor(readonly kind: Kind) {}

  abstract request(event: string, data?: unknown, timeoutMs?: number): Promise<Reply>;
  /** A request without ack callback / id. */
  abstract emit(event: string, data?: unknown): void;
  abstract close(): void;
  /** Resolves with the close reason (socket.io) or code (ws) once the connection is gone. */
  abstract whenClosed(): Promise<string>;
  abstract get isOpen(): boolean;

  async ok(event: string, data?: unknown): Promise<any> {
    const r = await this.request(event, data);
    if (!r.ok) throw new Error(`${this.kind} ${event} failed: ${JSON.stringify(r)}`);
    return r.data;
  }

  protected onPush(event: string, data: any): void {
    this.pushes.push({ event, data });
    if (event === 'session') this.session = data;
    for (const w of [...this.waiters]) {
      if (w.event === event && w.pred(data)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(data);
      }
    }
  }

  pushesOf(event: string): any[] {
    return this.pushes.filter((p) => p.event === event).map((p) => p.data);
  }

  messagesIn(roomId: string): any[] {
    return this.pushesOf('message.new').filter((m) => m.roomId === roomId);
  }

  /** Resolves with the first push (past or future) of `event` matching `pred`; rejects after timeoutMs. */
  waitFor(event: string, pred: (d: any) => boolean = () => true, timeoutMs = WAIT_MS): Promise<any> {
    const seen = this.pushes.find((p) => p.event === event && pred(p.data));
    if (seen) return Promise.resolve(seen.data);
    return new Promise((resolve, reject) => {
      const waiter = {
        event,
        pred,
        resolve: (d: any) => {
          clearTimeout(timer);
          resolve(d);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`${this.kind}: no '${event}' push within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

export class IoTestClient extends TestClient {
  readonly socket: Socket;
  private readonly closedReason: Promise<string>;

  constructor(url: string, token: string | undefined, polling: boolean, options: Partial<ManagerOptions & SocketOptions> = {}) {
    super(polling ? 'io-polling' : 'io');
    this.socket = io(url, {
      transports: polling ? ['polling'] : ['websocket'],
      upgrade: false,
      reconnection: false,
      forceNew: true,
      auth: token === undefined ? {} : { token },
      ...options,
    });
    this.socket.onAny((event: string, data: any) => this.onPush(event, data));
    this.closedReason = new Promise((resolve) => {
      this.socket.once('disconnect', (reason) => resolve(reason));
      this.socket.once('connect_error', (err) => resolve(`connect_error ${err.message}`));
    });
  }

  request(event: string, data?: unknown, timeoutMs = WAIT_MS): Promise<Reply> {
    const s = this.socket.timeout(timeoutMs);
    return data === undefined ? s.emitWithAck(event) : s.emitWithAck(event, data);
  }

  emit(event: string, data?: unknown): void {
    this.socket.emit(event, data);
  }

  close(): void {
    this.socket.disconnect();
  }

  whenClosed(): Promise<string> {
    return this.closedReason;
  }

  get isOpen(): boolean {
    return this.socket.connected;
  }
}

let frameId = 0;

export class WsTestClient extends TestClient {
  readonly ws: WebSocket;
  readonly replies = new Map<string, (r: Reply) => void>();
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, token: string | undefined, { queryToken = false } = {}) {
    super('ws');
    const target = new URL('/ws', url.replace(/^http/, 'ws'));
    const headers: Record<string, string> = {};
    if (token !== undefined) {
      if (queryToken) target.searchParams.set('access_token', token);
      else headers.Authorization = `Bearer ${token}`;
    }
    this.ws = new WebSocket(target, { headers });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (typeof frame.id === 'string' && typeof frame.ok === 'boolean') this.replies.get(frame.id)?.(frame);
      else this.onPush(frame.event, frame.data);
    });
  }

  request(event: string, data?: unknown, timeoutMs = WAIT_MS): Promise<Reply> {
    const id = `t${++frameId}`;
    return this.requestRaw(JSON.stringify({ event, data, id }), id, timeoutMs);
  }

  /** Sends a hand-made frame and waits for the reply carrying `id`. */
  requestRaw(frame: string, id: string, timeoutMs = WAIT_MS): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.replies.delete(id);
        reject(new Error(`ws: no reply to ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.replies.set(id, (r) => {
        clearTimeout(timer);
        this.replies.delete(id);
        resolve(r);
      });
      this.ws.send(frame);
    });
  }

  emit(event: string, data?: unknown): void {
    this.ws.send(JSON.stringify({ event, data }));
  }

  sendRaw(frame: string | Buffer): void {
    this.ws.send(frame);
  }

  close(): void {
    this.ws.terminate();
  }

  whenClosed(): Promise<string> {
    return this.closed.then(({ code }) => String(code));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }
}

/** Connects and waits for the `session` push. */
export async function connect(kind: Kind, url: string, token: string, opts: { queryToken?: boolean } = {}): Promise<TestClient> {
  const client = kind === 'ws' ? new WsTestClient(url, token, opts) : new IoTestClient(url, token, kind === 'io-polling');
  try {
    await client.waitFor('session', () => true, 10_000);
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** Tries a handshake; resolves how it was refused (socket.io connect_error message or ws HTTP status), or `accepted`. */
export function handshakeRefusal(kind: Kind, url: string, token: string | undefined, opts: { queryToken?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind}: handshake neither accepted nor refused`)), WAIT_MS);
    if (kind === 'ws') {
      const c = new WsTestClient(url, token, opts);
      c.ws.on('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        resolve(`HTTP ${res.statusCode}`);
        c.ws.terminate();
      });
      c.ws.on('error', () => undefined);
      c.ws.on('open', () => {
        clearTimeout(timer);
        c.close();
        resolve('accepted');
      });
    } else {
      const c = new IoTestClient(url, token, kind === 'io-polling');
      c.socket.on('connect_error', (err) => {
        clearTimeout(timer);
        resolve(err.message);
        c.close();
      });
      c.socket.on('connect', () => {
        clearTimeout(timer);
        c.close();
        resolve('accepted');
      });
    }
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
