// Helpers shared by the dual-transport.*.test.ts files: a fake token check, the adapter's options, a
// RecordingConnection for dispatch without a network, and a TestServer (one http server carrying socket.io
// and raw ws) with its ws and socket.io test clients. Importing it silences Nest's logger.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { from, isObservable, mergeAll, of, throwError, type Observable } from 'rxjs';
import type { Server as IoServer } from 'socket.io';
import { io as ioClient, type Socket as IoClientSocket } from 'socket.io-client';
import WebSocket from 'ws';
import type { Identity } from '../auth/identity.js';
import { ChatError } from '../chat/chat.errors.js';
import type { Reply } from '../chat/chat.events.js';
import type { AppConfig } from '../config/config.schema.js';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { Admission } from './admission.js';
import type { ChatConnection, CloseReason, RequestListener, Responder } from './chat-connection.js';
import { LocalConnectionSlots } from '../presence/connection-slots.js';
import { DualTransportAdapter, type DualTransportOptions } from './dual-transport.adapter.js';
import { FakeConnection } from './fake-connection.test-support.js';
import { HandshakeGuard } from './limits/handshake-guard.js';
import type { UserMessageCounter } from '../chat/chat.ports.js';
import { RequestLimiter } from './limits/request-limiter.js';
import { LocalConnections } from './local-connections.js';
import { OriginPolicy } from './origin-policy.js';
import { RequestDispatcher } from './request-dispatcher.js';

// The adapter logs INTERNAL failures on purpose in several tests; keep the test output readable.
Logger.overrideLogger(false);

export const WAIT_MS = 5000;
export const MAX_PAYLOAD_BYTES = 4096;
/** Limits generous enough that only the tests about limits reach them. */
const GENEROUS_HANDSHAKES: AppConfig['handshakes'] = {
  connectTimeoutMs: 5000,
  maxUnauthenticated: 10_000,
  perSecond: 10_000,
  burst: 10_000,
};
export const GENEROUS_LIMITS: AppConfig['rateLimits'] = {
  perConnection: { perSecond: 1000, burst: 1000 },
  perUser: { messages: 1000, windowMs: 60_000 },
  disconnectAfter: 50,
  roomCreations: { perUser: 20, windowMs: 60_000 },
};
export const MAX_CONNECTIONS_PER_USER = 2;
/** The events the tests' dispatchers treat as a user's messages, as the gateway declares message.send. */
export const SENDS: ReadonlySet<string> = new Set(['message.send']);
export const MAX_ROOMS_PER_CONNECTION = 3;

/** Resolves or rejects like `promise`, but rejects after `ms` so no wait is unbounded. */
export function within<T>(promise: Promise<T>, label: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Fake token check: 'good-<user>' is user <user>; anything else is refused. */
function authenticate(token: unknown): Promise<Identity> {
  if (typeof token === 'string' && /^good-.+/.test(token)) {
    return Promise.resolve({ userId: token.slice('good-'.length), name: null, expiresAt: Date.now() + 3600e3 });
  }
  return Promise.reject(new Error('invalid token'));
}

/** What Nest's WebSocketsController passes as `transform`: await the result, flatten Observables. */
async function pickResult(result: unknown): Promise<Observable<unknown>> {
  const value: unknown = await result;
  return isObservable(value) ? value : of(value);
}
export function nestTransform(result: unknown): Observable<unknown> {
  return from(pickResult(result)).pipe(mergeAll());
}

export type Handler = (...args: unknown[]) => unknown;

/** Handler descriptors shaped like the ones Nest hands to `bindMessageHandlers`. */
export function handlersOf(table: Record<string, Handler>): MessageMappingProperties[] {
  return Object.entries(table).map(([message, fn]) => ({
    message,
    methodName: message,
    callback: (...args: unknown[]) => fn(...args) as Promise<unknown>,
    isAckHandledManually: false,
  }));
}

export const forbidden: Reply = { ok: false, error: { code: 'FORBIDDEN', message: 'not allowed here' } };

export interface WireError {
  code: string;
  message: string;
  event?: string;
  details?: unknown;
}

/** Any frame or reply seen by a test client. */
export interface Wire {
  id?: unknown;
  ok?: unknown;
  event?: unknown;
  data?: unknown;
  error?: WireError;
}

export interface Push {
  event: string;
  data: unknown;
}

/** Builds data nested `levels` deep ({} is one level), without recursion. */
export function nested(levels: number): unknown {
  let value: unknown = {};
  for (let i = 1; i < levels; i++) value = { child: value };
  return value;
}

/** The in-memory stand-in for the Redis-backed per-user message counter: one window per user. */
class InMemoryMessageCounter implements UserMessageCounter {
  private readonly counts = new Map<string, number>();
  hit(userId: string, windowMs: number): Promise<{ count: number; resetAt: number }> {
    const count = (this.counts.get(userId) ?? 0) + 1;
    this.counts.set(userId, count);
    return Promise.resolve({ count, resetAt: Date.now() + windowMs });
  }
}

/** Resolves once `pred` holds, polling; rejects after WAIT_MS. */
export async function eventually(pred: () => boolean, label: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A FakeConnection that records what the adapter sends it and delivers requests the way a transport does. */
export class RecordingConnection extends FakeConnection {
  readonly pushes: Push[] = [];
  readonly closes: CloseReason[] = [];
  private listener: RequestListener | null = null;

  constructor() {
    super('fake');
  }

  override push(event: string, data: unknown): void {
    this.pushes.push({ event, data });
  }
  override close(reason: CloseReason): void {
    this.closes.push(reason);
  }
  override onRequest(listener: RequestListener): void {
    this.listener = listener;
  }

  /** Delivers one request the way a transport does; `withAck: false` is a request without ack / id. */
  request(event: string, data: unknown, withAck: boolean): { replies: Reply[]; ack: Responder | undefined; firstReply: Promise<Reply> } {
    if (!this.listener) throw new Error('bindMessageHandlers did not register a request listener');
    const replies: Reply[] = [];
    let gotReply!: (r: Reply) => void;
    const firstReply = new Promise<Reply>((resolve) => (gotReply = resolve));
    const ack = withAck
      ? (r: Reply) => {
          replies.push(r);
          gotReply(r);
        }
      : undefined;
    this.listener(event, data, this.responder(event, ack));
    return { replies, ack, firstReply };
  }
}

/** What a test server (or a dispatch-only adapter) is built with; everything has a default. */
export interface AdapterSetup {
  connections?: LocalConnections;
  gate?: ShutdownGate;
  origins?: OriginPolicy;
  maxConnectionsPerUser?: number;
  maxRoomsPerConnection?: number;
  rateLimits?: AppConfig['rateLimits'];
  handshakes?: AppConfig['handshakes'];
  /** Delays every token check, as a real verifier (crypto, a JWKS fetch) does. */
  authDelayMs?: number;
  onServer?: (io: IoServer) => void;
}

/** The adapter's options wired the way TransportAdapterFactory wires them, with a fake token check and user counter. */
export function adapterOptions(setup: AdapterSetup = {}): DualTransportOptions {
  const connections = setup.connections ?? new LocalConnections();
  const gate = setup.gate ?? new ShutdownGate();
  const origins = setup.origins ?? new OriginPolicy(null, true);
  const handshakes = setup.handshakes ?? GENEROUS_HANDSHAKES;
  return {
    wsPath: '/ws',
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    maxRoomsPerConnection: setup.maxRoomsPerConnection ?? MAX_ROOMS_PER_CONNECTION,
    heartbeat: { intervalMs: 25_000, timeoutMs: 20_000 },
    origins,
    admission: new Admission({
      origins,
      gate,
      slots: new LocalConnectionSlots(connections),
      maxConnectionsPerUser: setup.maxConnectionsPerUser ?? MAX_CONNECTIONS_PER_USER,
      authenticate: setup.authDelayMs
        ? (token) => new Promise((resolve) => setTimeout(resolve, setup.authDelayMs)).then(() => authenticate(token))
        : authenticate,
    }),
    handshakes: new HandshakeGuard(handshakes),
    connectTimeoutMs: handshakes.connectTimeoutMs,
    dispatcher: new RequestDispatcher(gate, new RequestLimiter(setup.rateLimits ?? GENEROUS_LIMITS, new InMemoryMessageCounter()), SENDS),
    connections,
    onServer: setup.onServer ?? (() => undefined),
  };
}

/** AbstractWsAdapter accepts a bare http server; the subclass's parameter type names only the app. */
export function adapterOn(httpServer: HttpServer, options: DualTransportOptions): DualTransportAdapter {
  return new DualTransportAdapter(httpServer as unknown as INestApplicationContext, options);
}

// ---------------------------------------------------------------------------------------------
// Real server: one http server carrying socket.io and raw ws
// ---------------------------------------------------------------------------------------------

export interface TestClient {
  readonly pushes: Push[];
  waitPush(event: string, pred?: (data: unknown) => boolean): Promise<unknown>;
  request(event: string, data?: unknown): Promise<Wire>;
  close(): void;
}

type Waiter<T> = { pred: (x: T) => boolean; resolve: (x: T) => void };

class PushLog {
  readonly pushes: Push[] = [];
  private readonly waiters = new Set<Waiter<Push>>();

  record(p: Push): void {
    this.pushes.push(p);
    for (const w of [...this.waiters]) {
      if (w.pred(p)) {
        this.waiters.delete(w);
        w.resolve(p);
      }
    }
  }

  /** The first push of `event` matching `pred`, already received or still to come. */
  wait(event: string, pred: (data: unknown) => boolean, label: string): Promise<unknown> {
    const match = (p: Push) => p.event === event && pred(p.data);
    const seen = this.pushes.find(match);
    if (seen) return Promise.resolve(seen.data);
    const waiter: Waiter<Push> = { pred: match, resolve: () => undefined };
    const p = new Promise<Push>((resolve) => (waiter.resolve = resolve));
    this.waiters.add(waiter);
    return within(p, `${label}: push '${event}'`)
      .then((x) => x.data)
      .finally(() => this.waiters.delete(waiter));
  }
}

let frameSeq = 0;

export class WsClient implements TestClient {
  readonly ws: WebSocket;
  readonly frames: Wire[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly log = new PushLog();
  private readonly frameWaiters = new Set<Waiter<Wire>>();

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (raw) => {
      let frame: Wire;
      try {
        frame = JSON.parse(raw.toString()) as Wire;
      } catch {
        frame = { event: '<non-JSON frame from server>', data: raw.toString() };
      }
      this.frames.push(frame);
      if (frame.id === undefined && typeof frame.event === 'string') this.log.record({ event: frame.event, data: frame.data });
      for (const w of [...this.frameWaiters]) {
        if (w.pred(frame)) {
          this.frameWaiters.delete(w);
          w.resolve(frame);
        }
      }
    });
  }

  get pushes(): Push[] {
    return this.log.pushes;
  }

  waitPush(event: string, pred: (data: unknown) => boolean = () => true): Promise<unknown> {
    return this.log.wait(event, pred, 'ws');
  }

  /** The next frame received from now on that matches `pred`. */
  nextFrame(pred: (f: Wire) => boolean, label: string): Promise<Wire> {
    const waiter: Waiter<Wire> = { pred, resolve: () => undefined };
    const p = new Promise<Wire>((resolve) => (waiter.resolve = resolve));
    this.frameWaiters.add(waiter);
    return within(p, `ws frame: ${label}`).finally(() => this.frameWaiters.delete(waiter));
  }

  /** The very next frame, whatever it is. */
  next(label: string): Promise<Wire> {
    return this.nextFrame(() => true, label);
  }

  send(frame: string | Buffer, opts: { binary?: boolean } = {}): void {
    this.ws.send(frame, { binary: opts.binary ?? false });
  }

  request(event: string, data?: unknown): Promise<Wire> {
    return this.requestWithId(event, data, `req-${++frameSeq}`);
  }

  requestWithId(event: string, data: unknown, id: string): Promise<Wire> {
    const reply = this.nextFrame((f) => f.id === id, `reply to ${event} (${id})`);
    this.send(JSON.stringify({ event, data, id }));
    return reply;
  }

  close(): void {
    this.ws.terminate();
  }
}

export class IoClient implements TestClient {
  readonly socket: IoClientSocket;
  private readonly log = new PushLog();

  constructor(url: string, auth: Record<string, unknown>, transport: 'websocket' | 'polling') {
    this.socket = ioClient(url, { transports: [transport], upgrade: false, reconnection: false, forceNew: true, auth, timeout: WAIT_MS });
    this.socket.onAny((event: string, data: unknown) => this.log.record({ event, data }));
  }

  get pushes(): Push[] {
    return this.log.pushes;
  }

  waitPush(event: string, pred: (data: unknown) => boolean = () => true): Promise<unknown> {
    return this.log.wait(event, pred, 'socket.io');
  }

  request(event: string, data?: unknown): Promise<Wire> {
    return this.socket.timeout(WAIT_MS).emitWithAck(event, data) as Promise<Wire>;
  }

  /** A request without ack callback. */
  emit(event: string, data?: unknown): void {
    this.socket.emit(event, data);
  }

  close(): void {
    this.socket.disconnect();
  }
}

/** Tries a raw ws upgrade that should be refused; resolves with the HTTP answer. */
export function wsRefusal(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.on('error', reject); // after a resolved refusal, terminate() reports an abort here; ignored
      ws.on('open', () => {
        ws.terminate();
        reject(new Error(`upgrade to ${url} was accepted`));
      });
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
          ws.terminate();
        });
      });
    }),
    `refusal of ${url}`,
  );
}

/** Tries a socket.io handshake that should be refused; resolves with the connect_error. */
export function ioRefusal(
  url: string,
  auth: Record<string, unknown>,
  transport: 'websocket' | 'polling',
): Promise<Error & { data?: unknown }> {
  const c = new IoClient(url, auth, transport);
  return within(
    new Promise<Error & { data?: unknown }>((resolve, reject) => {
      c.socket.on('connect_error', resolve);
      c.socket.on('connect', () => reject(new Error('socket.io handshake was accepted')));
    }),
    'socket.io connect_error',
  ).finally(() => c.close());
}

/** An engine.io polling handshake, the first request of a socket.io client, sent by hand so its headers are ours. */
export function pollingHandshake(
  port: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/socket.io/?EIO=4&transport=polling', headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    }),
    'polling handshake',
  );
}

/** Resolves with the reason of the socket.io client's next disconnect. */
export function ioDisconnected(c: IoClient): Promise<string> {
  return within(new Promise<string>((resolve) => c.socket.once('disconnect', (reason) => resolve(reason))), 'socket.io disconnect');
}

/**
 * A socket.io client speaking engine.io's websocket transport by hand, so a test can send frames
 * socket.io-client never would.
 */
export class RawEngineIoClient {
  readonly ws: WebSocket;
  readonly frames: string[] = [];
  readonly closed: Promise<{ code: number }>;

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    this.ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => resolve({ code })));
    this.ws.on('message', (raw) => this.frames.push(raw.toString()));
  }

  /** Opens the engine.io session and the socket.io session on the default namespace. */
  async connect(token: string): Promise<void> {
    await this.frame((f) => f.startsWith('0{'), 'engine.io open packet');
    this.ws.send(`40${JSON.stringify({ token })}`);
    await this.frame((f) => f.startsWith('40{'), 'socket.io CONNECT ack');
  }

  frame(pred: (f: string) => boolean, label: string): Promise<string> {
    return within(
      new Promise<string>((resolve) => {
        const check = () => {
          const found = this.frames.find(pred);
          if (!found) return;
          this.ws.off('message', check);
          resolve(found);
        };
        this.ws.on('message', check);
        check();
      }),
      label,
    );
  }

  close(): void {
    this.ws.terminate();
  }
}

/**
 * One http server carrying socket.io and raw ws through the adapter, with the handlers a gateway
 * would bind. Every client it opens is closed by stop().
 */
export class TestServer {
  readonly httpServer: HttpServer;
  readonly connections: LocalConnections;
  readonly gate: ShutdownGate;
  readonly adapter: DualTransportAdapter;
  readonly onServerCalls: IoServer[] = [];
  /** The latest server-side connection of each user, as the gateway's connection handler saw it. */
  readonly serverConns = new Map<string, ChatConnection>();
  readonly disconnectReasons = new Map<string, Promise<string>>();
  io!: IoServer;
  port = 0;
  private readonly clients: { close(): void }[] = [];
  private sentinelSeq = 0;

  private constructor(setup: AdapterSetup) {
    this.httpServer = createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    this.connections = setup.connections ?? new LocalConnections();
    this.gate = setup.gate ?? new ShutdownGate();
    this.adapter = adapterOn(
      this.httpServer,
      adapterOptions({ ...setup, connections: this.connections, gate: this.gate, onServer: (s) => this.onServerCalls.push(s) }),
    );
  }

  static async start(setup: AdapterSetup = {}): Promise<TestServer> {
    const srv = new TestServer(setup);
    await new Promise<void>((resolve) => srv.httpServer.listen(0, '127.0.0.1', resolve));
    srv.port = (srv.httpServer.address() as AddressInfo).port;
    srv.io = srv.adapter.create(0);
    srv.adapter.bindClientConnect(srv.io, (conn: ChatConnection) => srv.onConnection(conn));
    return srv;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** What the gateway does: a `session` push, then the message handlers. */
  private onConnection(conn: ChatConnection): void {
    const { adapter } = this;
    this.serverConns.set(conn.user.userId, conn);
    this.disconnectReasons.set(conn.user.userId, new Promise((resolve) => adapter.bindClientDisconnect(conn, resolve)));
    conn.push('session', { userId: conn.user.userId, connectionId: conn.id });
    /** Nest's exception filter answers a handler's ChatError through the responder. */
    const filtered =
      (fn: (data: unknown) => unknown): Handler =>
      (data, respond) => {
        try {
          return fn(data);
        } catch (err) {
          if (!(err instanceof ChatError)) throw err;
          (respond as Responder)({ ok: false, error: err.toBody() });
          return undefined;
        }
      };
    adapter.bindMessageHandlers(
      conn,
      handlersOf({
        echo: (data) => ({ echo: data }),
        later: async (data) => ({ later: data }),
        stream: (data) => of({ stream: data }),
        quiet: () => undefined,
        refuse: (_data, respond) => {
          (respond as Responder)(forbidden);
          return undefined;
        },
        explode: () => throwError(() => new Error('boom')),
        join: filtered((data) => {
          const roomId = (data as { roomId: string }).roomId;
          conn.join(roomId);
          return { roomId };
        }),
        leave: filtered((data) => {
          const roomId = (data as { roomId: string }).roomId;
          conn.leave(roomId);
          return { roomId };
        }),
        'message.send': (data) => ({ sent: data }),
      }),
      nestTransform,
    );
  }

  track<T extends { close(): void }>(c: T): T {
    this.clients.push(c);
    return c;
  }

  async connectWs(user: string, via: 'header' | 'query' = 'header', headers: Record<string, string> = {}): Promise<WsClient> {
    const c =
      via === 'header'
        ? this.track(new WsClient(this.wsUrl, { Authorization: `Bearer good-${user}`, ...headers }))
        : this.track(new WsClient(`${this.wsUrl}?access_token=${encodeURIComponent(`good-${user}`)}`, headers));
    await within(once(c.ws, 'open'), `ws open for ${user}`);
    await c.waitPush('session');
    return c;
  }

  async connectIo(user: string, transport: 'websocket' | 'polling' = 'websocket'): Promise<IoClient> {
    const c = this.track(new IoClient(this.baseUrl, { token: `good-${user}` }, transport));
    await c.waitPush('session');
    return c;
  }

  serverConn(user: string): ChatConnection {
    const conn = this.serverConns.get(user);
    assert.ok(conn, `no server-side connection for ${user}`);
    return conn;
  }

  /** Pushes a marker on each connection and waits for it: everything sent before it has arrived. */
  async drain(members: [TestClient, string][]): Promise<void> {
    const mark = `mark-${++this.sentinelSeq}`;
    // A marker outside the protocol, so past the typed push: no test counts it as a real event.
    for (const [, user] of members) (this.serverConn(user) as { push(event: string, data: unknown): void }).push('sentinel', mark);
    await Promise.all(members.map(([c]) => c.waitPush('sentinel', (d) => d === mark)));
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.close();
    if (this.io) await within(this.adapter.close(this.io), 'adapter.close');
    if (this.httpServer.listening) {
      this.httpServer.closeAllConnections();
      await within(new Promise<void>((resolve) => this.httpServer.close(() => resolve())), 'http server close');
    }
  }
}
