import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { finalize, from, isObservable, mergeAll, of, throwError, type Observable } from 'rxjs';
import type { Server as IoServer } from 'socket.io';
import { io as ioClient, type Socket as IoClientSocket } from 'socket.io-client';
import WebSocket from 'ws';
import type { Identity } from '../auth/identity.js';
import type { Reply } from '../chat/chat.events.js';
import { ChatConnection, type RequestListener, type Responder } from './chat-connection.js';
import { DualTransportAdapter, type DualTransportOptions } from './dual-transport.adapter.js';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { LocalConnections } from './local-connections.js';
import { RoomFanout } from './room-fanout.js';

// The adapter logs INTERNAL failures on purpose in several tests; keep the test output readable.
Logger.overrideLogger(false);

const WAIT_MS = 5000;
const MAX_PAYLOAD_BYTES = 4096;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Resolves or rejects like `promise`, but rejects after `ms` so no wait is unbounded. */
function within<T>(promise: Promise<T>, label: string, ms = WAIT_MS): Promise<T> {
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
function nestTransform(result: unknown): Observable<unknown> {
  return from(pickResult(result)).pipe(mergeAll());
}

type Handler = (...args: unknown[]) => unknown;

/** Handler descriptors shaped like the ones Nest hands to `bindMessageHandlers`. */
function handlersOf(table: Record<string, Handler>): MessageMappingProperties[] {
  return Object.entries(table).map(([message, fn]) => ({
    message,
    methodName: message,
    callback: (...args: unknown[]) => fn(...args) as Promise<unknown>,
    isAckHandledManually: false,
  }));
}

const forbidden: Reply = { ok: false, error: { code: 'FORBIDDEN', message: 'not allowed here' } };

interface WireError {
  code: string;
  message: string;
  event?: string;
  details?: unknown;
}

/** Any frame or reply seen by a test client. */
interface Wire {
  id?: unknown;
  ok?: unknown;
  event?: unknown;
  data?: unknown;
  error?: WireError;
}

interface Push {
  event: string;
  data: unknown;
}

type PayloadWithN = { n?: unknown } | null | undefined;

function countWithN(pushes: Push[], event: string, n: number): number {
  return pushes.filter((p) => p.event === event && (p.data as PayloadWithN)?.n === n).length;
}

// ---------------------------------------------------------------------------------------------
// 1. Dispatch, through a fake ChatConnection
// ---------------------------------------------------------------------------------------------

class FakeConnection extends ChatConnection {
  readonly pushes: Push[] = [];
  private listener: RequestListener | null = null;

  constructor() {
    super('fake-1', 'ws', { userId: 'fake', name: null, expiresAt: Date.now() + 3600e3 });
  }

  push(event: string, data: unknown): void {
    this.pushes.push({ event, data });
  }
  join(): void {}
  leave(): void {}
  bufferedBytes(): number {
    return 0;
  }
  terminate(): void {}
  closeForRestart(): void {}
  onRequest(listener: RequestListener): void {
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

interface Dispatch {
  conn: FakeConnection;
  replies: Reply[];
  ack: Responder | undefined;
  firstReply: () => Promise<Reply>;
  /** Resolves once the handler's result stream has completed or failed and the adapter reacted. */
  settled: () => Promise<void>;
}

function dispatch(adapter: DualTransportAdapter, table: Record<string, Handler>, event: string, data: unknown, withAck = true): Dispatch {
  const conn = new FakeConnection();
  let markSettled!: () => void;
  const settledP = new Promise<void>((resolve) => (markSettled = resolve));
  // finalize runs after the adapter's subscriber has seen next/error/complete.
  adapter.bindMessageHandlers(conn, handlersOf(table), (r) => nestTransform(r).pipe(finalize(markSettled)));
  const { replies, ack, firstReply } = conn.request(event, data, withAck);
  return {
    conn,
    replies,
    ack,
    firstReply: () => within(firstReply, `a reply to ${event}`),
    settled: () => within(settledP, `the handler of ${event} to settle`),
  };
}

function stubAdapterOptions(connections = new LocalConnections()): DualTransportOptions {
  return {
    wsPath: '/ws',
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    corsAnyOrigin: false,
    heartbeat: { intervalMs: 25_000, timeoutMs: 20_000 },
    gate: new ShutdownGate(),
    authenticate,
    connections,
    onServer: () => undefined,
  };
}

/** AbstractWsAdapter accepts a bare http server; the subclass's parameter type names only the app. */
function adapterOn(httpServer: HttpServer, options: DualTransportOptions): DualTransportAdapter {
  return new DualTransportAdapter(httpServer as unknown as INestApplicationContext, options);
}

describe('DualTransportAdapter.bindMessageHandlers (dispatch)', () => {
  const adapter = adapterOn(createServer(), stubAdapterOptions());

  it('calls the matching handler once with (data, respond) and replies its sync value as {ok:true,data}', async () => {
    const calls: unknown[][] = [];
    const payload = { text: 'hi' };
    const d = dispatch(
      adapter,
      {
        echo: (...args) => {
          calls.push(args);
          return { echoed: args[0] };
        },
        other: () => assert.fail('wrong handler called'),
      },
      'echo',
      payload,
    );
    assert.deepEqual(await d.firstReply(), { ok: true, data: { echoed: payload } });
    await d.settled();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.length, 2);
    assert.equal(calls[0]?.[0], payload);
    assert.equal(calls[0]?.[1], d.ack, 'the second argument is the request responder (the ack)');
    assert.equal(d.replies.length, 1);
  });

  it('replies the resolved value of a Promise-returning handler', async () => {
    const d = dispatch(adapter, { later: async (data) => ({ later: data }) }, 'later', 7);
    assert.deepEqual(await d.firstReply(), { ok: true, data: { later: 7 } });
    await d.settled();
    assert.equal(d.replies.length, 1);
  });

  it('replies the value emitted by an Observable-returning handler', async () => {
    const d = dispatch(adapter, { stream: (data) => of({ streamed: data }) }, 'stream', 'x');
    assert.deepEqual(await d.firstReply(), { ok: true, data: { streamed: 'x' } });
    await d.settled();
    assert.equal(d.replies.length, 1);
  });

  for (const name of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '']) {
    it(`answers UNKNOWN_EVENT for the undefined event name ${JSON.stringify(name)} without calling any handler`, () => {
      let called = false;
      const d = dispatch(
        adapter,
        {
          echo: () => {
            called = true;
            return 'should not run';
          },
        },
        name,
        {},
      );
      assert.equal(d.replies.length, 1);
      const reply = d.replies[0];
      assert.equal(reply?.ok, false);
      assert.equal(reply.ok === false && reply.error.code, 'UNKNOWN_EVENT');
      assert.equal(typeof (reply.ok === false && reply.error.message), 'string');
      assert.equal(called, false);
    });
  }

  it('pushes UNKNOWN_EVENT as an `error` carrying the event name when the request has no ack', () => {
    const d = dispatch(adapter, { echo: (x) => x }, 'no.such.event', {}, false);
    assert.equal(d.conn.pushes.length, 1);
    const push = d.conn.pushes[0];
    assert.equal(push?.event, 'error');
    const body = push.data as WireError;
    assert.equal(body.code, 'UNKNOWN_EVENT');
    assert.equal(body.event, 'no.such.event');
  });

  it('sends no success reply when the handler returns undefined', async () => {
    let ran = false;
    const d = dispatch(
      adapter,
      {
        quiet: () => {
          ran = true;
          return undefined;
        },
      },
      'quiet',
      {},
    );
    await d.settled();
    assert.equal(ran, true);
    assert.deepEqual(d.replies, []);
  });

  it('sends exactly the reply a handler gave through respond (as the exception filter does) and no success reply', async () => {
    const d = dispatch(
      adapter,
      {
        guarded: (_data, respond) => {
          (respond as Responder)(forbidden);
          return undefined;
        },
      },
      'guarded',
      {},
    );
    await d.settled();
    assert.deepEqual(d.replies, [forbidden]);
  });

  it('answers INTERNAL when the handler returns an Observable that errors', async () => {
    const d = dispatch(adapter, { explode: () => throwError(() => new Error('boom')) }, 'explode', {});
    const reply = await d.firstReply();
    assert.equal(reply.ok, false);
    assert.equal(reply.ok === false && reply.error.code, 'INTERNAL');
    assert.doesNotMatch(JSON.stringify(reply), /boom/, 'no internal detail leaks to the client');
    await d.settled();
    assert.equal(d.replies.length, 1);
  });

  it('answers INTERNAL when the handler returns a rejected Promise', async () => {
    const d = dispatch(adapter, { reject: () => Promise.reject(new Error('boom')) }, 'reject', {});
    const reply = await d.firstReply();
    assert.equal(reply.ok === false && reply.error.code, 'INTERNAL');
  });

  it('pushes a failure of a request without ack as an `error` carrying the event name', async () => {
    const d = dispatch(adapter, { explode: () => throwError(() => new Error('boom')) }, 'explode', {}, false);
    await d.settled();
    assert.deepEqual(
      d.conn.pushes.map((p) => p.event),
      ['error'],
    );
    const body = d.conn.pushes[0]?.data as WireError;
    assert.equal(body.code, 'INTERNAL');
    assert.equal(body.event, 'explode');
  });

  it('pushes nothing for a successful request without ack', async () => {
    const d = dispatch(adapter, { echo: (x) => ({ echoed: x }) }, 'echo', 1, false);
    await d.settled();
    assert.deepEqual(d.conn.pushes, []);
  });
});

// ---------------------------------------------------------------------------------------------
// Real server: one http server carrying socket.io and raw ws
// ---------------------------------------------------------------------------------------------

interface TestClient {
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

class WsClient implements TestClient {
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

class IoClient implements TestClient {
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
function wsRefusal(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
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
function ioRefusal(url: string, auth: Record<string, unknown>, transport: 'websocket' | 'polling'): Promise<Error & { data?: unknown }> {
  const c = new IoClient(url, auth, transport);
  return within(
    new Promise<Error & { data?: unknown }>((resolve, reject) => {
      c.socket.on('connect_error', resolve);
      c.socket.on('connect', () => reject(new Error('socket.io handshake was accepted')));
    }),
    'socket.io connect_error',
  ).finally(() => c.close());
}

function assertBadRequestPush(frame: Wire, label: string): void {
  assert.equal(frame.event, 'error', `${label}: an error push`);
  assert.equal(frame.id, undefined, `${label}: a push carries no id`);
  assert.equal((frame.data as WireError | undefined)?.code, 'BAD_REQUEST', label);
  assert.equal(typeof (frame.data as WireError | undefined)?.message, 'string', label);
}

describe('DualTransportAdapter on a real HTTP server', () => {
  let httpServer: HttpServer;
  let adapter: DualTransportAdapter;
  let io: IoServer;
  let connections: LocalConnections;
  let baseUrl: string;
  let wsUrl: string;
  const onServerCalls: IoServer[] = [];
  /** The server-side connection of each user, as the gateway's connection handler saw it. */
  const serverConns = new Map<string, ChatConnection>();
  const disconnectReasons = new Map<string, Promise<string>>();
  const clients: TestClient[] = [];

  function track<T extends TestClient>(c: T): T {
    clients.push(c);
    return c;
  }

  async function connectWs(user: string, via: 'header' | 'query' = 'header'): Promise<WsClient> {
    const c =
      via === 'header'
        ? track(new WsClient(wsUrl, { Authorization: `Bearer good-${user}` }))
        : track(new WsClient(`${wsUrl}?access_token=${encodeURIComponent(`good-${user}`)}`));
    await within(once(c.ws, 'open'), `ws open for ${user}`);
    await c.waitPush('session');
    return c;
  }

  async function connectIo(user: string, transport: 'websocket' | 'polling' = 'websocket'): Promise<IoClient> {
    const c = track(new IoClient(baseUrl, { token: `good-${user}` }, transport));
    await c.waitPush('session');
    return c;
  }

  function serverConn(user: string): ChatConnection {
    const conn = serverConns.get(user);
    assert.ok(conn, `no server-side connection for ${user}`);
    return conn;
  }

  let sentinelSeq = 0;
  /** Pushes a marker on each connection and waits for it: everything sent before it has arrived. */
  async function drain(members: [TestClient, string][]): Promise<void> {
    const mark = `mark-${++sentinelSeq}`;
    for (const [, user] of members) serverConn(user).push('sentinel', mark);
    await Promise.all(members.map(([c]) => c.waitPush('sentinel', (d) => d === mark)));
  }

  before(async () => {
    httpServer = createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    const { port } = httpServer.address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
    wsUrl = `ws://127.0.0.1:${port}/ws`;
    connections = new LocalConnections();
    adapter = adapterOn(httpServer, { ...stubAdapterOptions(connections), onServer: (s) => onServerCalls.push(s) });
    io = adapter.create(0);
    adapter.bindClientConnect(io, (conn: ChatConnection) => {
      serverConns.set(conn.user.userId, conn);
      disconnectReasons.set(conn.user.userId, new Promise((resolve) => adapter.bindClientDisconnect(conn, resolve)));
      // What the gateway does: a `session` push, then the message handlers.
      conn.push('session', { userId: conn.user.userId, connectionId: conn.id });
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
          join: (data) => {
            const roomId = (data as { roomId: string }).roomId;
            conn.join(roomId);
            return { roomId };
          },
          leave: (data) => {
            const roomId = (data as { roomId: string }).roomId;
            conn.leave(roomId);
            return { roomId };
          },
        }),
        nestTransform,
      );
    });
  });

  after(async () => {
    for (const c of clients) c.close();
    if (io) await within(adapter.close(io), 'adapter.close');
    if (httpServer.listening) {
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    }
  });

  it('calls onServer once, with the socket.io server it creates', () => {
    assert.equal(onServerCalls.length, 1);
    assert.equal(onServerCalls[0], io);
  });

  describe('raw WebSocket upgrade', () => {
    it('accepts `Authorization: Bearer <token>` on /ws and hands the gateway a ws connection for that user', async () => {
      const c = await connectWs('hdr');
      assert.equal(c.ws.readyState, WebSocket.OPEN);
      assert.deepEqual(await c.waitPush('session'), { userId: 'hdr', connectionId: serverConn('hdr').id });
      assert.equal(serverConn('hdr').transport, 'ws');
    });

    it('accepts the `access_token` query parameter on /ws', async () => {
      const c = await connectWs('qry', 'query');
      assert.equal(c.ws.readyState, WebSocket.OPEN);
      assert.equal(((await c.waitPush('session')) as { userId: string }).userId, 'qry');
    });

    for (const [label, headers, query] of [
      ['a bad bearer token', { Authorization: 'Bearer bad-u1' }, ''],
      ['a bad access_token', {}, '?access_token=bad-u1'],
      ['no token at all', {}, ''],
      ['a non-Bearer Authorization scheme', { Authorization: 'Basic good-u1' }, ''],
    ] as const) {
      it(`answers the upgrade with HTTP 401 and opens no connection for ${label}`, async () => {
        const before = connections.count('ws');
        const { status } = await wsRefusal(`${wsUrl}${query}`, { ...headers });
        assert.equal(status, 401);
        assert.equal(connections.count('ws'), before);
      });
    }

    it('answers an upgrade on a path other than /ws (and not socket.io) with HTTP 404, even with a valid token', async () => {
      const { status } = await wsRefusal(`${baseUrl.replace('http', 'ws')}/nope`, { Authorization: 'Bearer good-u1' });
      assert.equal(status, 404);
    });
  });

  describe('raw WebSocket frames', () => {
    let c: WsClient;
    before(async () => {
      c = await connectWs('frames');
    });

    async function assertStillServes(label: string): Promise<void> {
      assert.equal(c.ws.readyState, WebSocket.OPEN, `${label}: connection still open`);
      const reply = await c.request('echo', { still: label });
      assert.equal(reply.ok, true, `${label}: connection still answers`);
    }

    it('replies {id, ok:true, data} to a request carrying an id (sync, Promise and Observable handlers)', async () => {
      const replies = await Promise.all([
        c.requestWithId('echo', { a: 1 }, 'id-sync'),
        c.requestWithId('later', { b: 2 }, 'id-promise'),
        c.requestWithId('stream', { c: 3 }, 'id-observable'),
      ]);
      assert.deepEqual(replies, [
        { id: 'id-sync', ok: true, data: { echo: { a: 1 } } },
        { id: 'id-promise', ok: true, data: { later: { b: 2 } } },
        { id: 'id-observable', ok: true, data: { stream: { c: 3 } } },
      ]);
    });

    it('pushes never carry an id', async () => {
      const session = c.frames.find((f) => f.event === 'session');
      assert.ok(session);
      assert.equal('id' in session, false);
    });

    for (const [label, frame] of [
      ['non-JSON text', '{not json'],
      ['a JSON array', '[{"event":"echo"}]'],
      ['a JSON number', '42'],
      ['JSON null', 'null'],
      ['a JSON string', '"echo"'],
      ['an object without event', '{"data":{}}'],
      ['an object whose event is not a string', '{"event":5,"data":{}}'],
      ['an object whose id is not a string', '{"event":null,"id":7}'],
    ] as const) {
      it(`pushes BAD_REQUEST as an \`error\` for ${label} and keeps the connection open`, async () => {
        const next = c.next(label);
        c.send(frame);
        assertBadRequestPush(await next, label);
        await assertStillServes(label);
      });
    }

    for (const [label, frame, id] of [
      ['an object with a string id but no event', '{"id":"bad-1"}', 'bad-1'],
      ['an object with a string id and a numeric event', '{"event":5,"id":"bad-2"}', 'bad-2'],
      ['an object with a string id and an array event', '{"event":["echo"],"id":"bad-3","data":{}}', 'bad-3'],
    ] as const) {
      it(`replies {id, ok:false, error:BAD_REQUEST} for ${label} and keeps the connection open`, async () => {
        const next = c.next(label);
        c.send(frame);
        const reply = await next;
        assert.equal(reply.id, id);
        assert.equal(reply.ok, false);
        assert.equal(reply.error?.code, 'BAD_REQUEST');
        assert.equal(typeof reply.error?.message, 'string');
        await assertStillServes(label);
      });
    }

    it('answers a binary frame with BAD_REQUEST and keeps the connection open', async () => {
      const next = c.next('binary frame');
      c.send(Buffer.from(JSON.stringify({ event: 'echo', data: 1 })), { binary: true });
      assertBadRequestPush(await next, 'binary frame');
      await assertStillServes('binary frame');
    });

    it('replies UNKNOWN_EVENT with the id for an event without a handler', async () => {
      for (const event of ['no.such.event', '__proto__', 'constructor', 'toString']) {
        const reply = await c.request(event, {});
        assert.equal(reply.ok, false, event);
        assert.equal(reply.error?.code, 'UNKNOWN_EVENT', event);
      }
    });

    it('replies the failure a handler gave through respond, with the id', async () => {
      const reply = await c.request('refuse', {});
      assert.equal(reply.ok, false);
      assert.deepEqual(reply.error, forbidden.ok === false ? forbidden.error : undefined);
    });

    it("replies INTERNAL with the id when the handler's Observable errors", async () => {
      const reply = await c.request('explode', {});
      assert.equal(reply.ok, false);
      assert.equal(reply.error?.code, 'INTERNAL');
    });

    it('pushes `error` carrying the event name when a request without id fails', async () => {
      const refused = c.next('error push for refuse');
      c.send(JSON.stringify({ event: 'refuse', data: {} }));
      const push = await refused;
      assert.equal(push.event, 'error');
      assert.equal(push.id, undefined);
      assert.deepEqual(push.data, { code: 'FORBIDDEN', message: 'not allowed here', event: 'refuse' });

      const unknown = c.next('error push for unknown event');
      c.send(JSON.stringify({ event: 'no.such.event', data: {} }));
      const push2 = await unknown;
      assert.equal(push2.event, 'error');
      assert.equal((push2.data as WireError).code, 'UNKNOWN_EVENT');
      assert.equal((push2.data as WireError).event, 'no.such.event');
    });

    it('sends nothing back for a successful request without id', async () => {
      const next = c.next('frame after a request without id');
      c.send(JSON.stringify({ event: 'echo', data: { silent: true } }));
      c.send(JSON.stringify({ event: 'later', data: { silent: true } }));
      const reply = await c.request('echo', 'marker');
      assert.deepEqual(await next, reply, 'the first frame back is the reply to the later request');
    });

    it('sends no success reply when the handler returns undefined', async () => {
      const next = c.next('frame after quiet');
      c.send(JSON.stringify({ event: 'quiet', data: {}, id: 'quiet-1' }));
      const reply = await c.request('echo', 'marker');
      assert.deepEqual(await next, reply, 'nothing was sent for quiet-1');
    });

    it('closes the connection with code 1009 on a frame larger than maxPayloadBytes', async () => {
      const big = await connectWs('big');
      big.send(JSON.stringify({ event: 'echo', data: 'x'.repeat(MAX_PAYLOAD_BYTES + 100) }));
      const { code } = await within(big.closed, 'close after oversized frame');
      assert.equal(code, 1009);
    });
  });

  describe('socket.io on the same port', () => {
    for (const transport of ['websocket', 'polling'] as const) {
      it(`connects over the ${transport} transport with auth {token} and answers requests through the ack`, async () => {
        const user = `io-${transport}`;
        const c = await connectIo(user, transport);
        assert.equal(c.socket.io.engine.transport.name, transport);
        assert.deepEqual(await c.waitPush('session'), { userId: user, connectionId: serverConn(user).id });
        assert.equal(serverConn(user).transport, 'socket.io');
        assert.deepEqual(await c.request('echo', { t: transport }), { ok: true, data: { echo: { t: transport } } });
      });

      it(`refuses a bad token over ${transport} with connect_error 'UNAUTHORIZED'`, async () => {
        const err = await ioRefusal(baseUrl, { token: 'bad-u1' }, transport);
        assert.equal(err.message, 'UNAUTHORIZED');
      });
    }

    it("refuses a handshake without token with connect_error 'UNAUTHORIZED'", async () => {
      const err = await ioRefusal(baseUrl, {}, 'websocket');
      assert.equal(err.message, 'UNAUTHORIZED');
    });

    it('replies through the ack for sync, Promise and Observable handlers', async () => {
      const c = await connectIo('io-acks');
      assert.deepEqual(await c.request('echo', 1), { ok: true, data: { echo: 1 } });
      assert.deepEqual(await c.request('later', 2), { ok: true, data: { later: 2 } });
      assert.deepEqual(await c.request('stream', 3), { ok: true, data: { stream: 3 } });
    });

    it('acks UNKNOWN_EVENT for events without a handler, including Object.prototype names', async () => {
      const c = await connectIo('io-unknown');
      for (const event of ['no.such.event', '__proto__', 'constructor', 'toString']) {
        const reply = await c.request(event, {});
        assert.equal(reply.ok, false, event);
        assert.equal(reply.error?.code, 'UNKNOWN_EVENT', event);
      }
    });

    it("acks INTERNAL when the handler's Observable errors, and the handler's own failure reply otherwise", async () => {
      const c = await connectIo('io-fail');
      const internal = await c.request('explode', {});
      assert.equal(internal.ok, false);
      assert.equal(internal.error?.code, 'INTERNAL');
      assert.deepEqual(await c.request('refuse', {}), forbidden);
    });

    it('pushes `error` carrying the event name when an emit without ack fails', async () => {
      const c = await connectIo('io-noack');
      c.emit('refuse', {});
      assert.deepEqual(await c.waitPush('error', (d) => (d as WireError).event === 'refuse'), {
        code: 'FORBIDDEN',
        message: 'not allowed here',
        event: 'refuse',
      });
      c.emit('no.such.event', {});
      const unknown = (await c.waitPush('error', (d) => (d as WireError).event === 'no.such.event')) as WireError;
      assert.equal(unknown.code, 'UNKNOWN_EVENT');
    });
  });

  describe('LocalConnections.deliver', () => {
    let ioIn: IoClient;
    let ioOut: IoClient;
    let wsIn: WsClient;
    let wsOut: WsClient;
    let all: [TestClient, string][];

    before(async () => {
      [ioIn, ioOut, wsIn, wsOut] = await Promise.all([
        connectIo('lc-io-in'),
        connectIo('lc-io-out', 'polling'),
        connectWs('lc-ws-in'),
        connectWs('lc-ws-out'),
      ]);
      all = [
        [ioIn, 'lc-io-in'],
        [ioOut, 'lc-io-out'],
        [wsIn, 'lc-ws-in'],
        [wsOut, 'lc-ws-out'],
      ];
      for (const c of [ioIn, wsIn]) assert.equal((await c.request('join', { roomId: 'room-a' })).ok, true);
      // The "out" clients are in another room, so a leak across rooms would show too.
      for (const c of [ioOut, wsOut]) assert.equal((await c.request('join', { roomId: 'room-b' })).ok, true);
    });

    it('reaches a joined socket.io and a joined ws connection exactly once each, and no one else', async () => {
      connections.deliver('room-a', 'message.new', { n: 1 });
      await drain(all);
      assert.equal(countWithN(ioIn.pushes, 'message.new', 1), 1);
      assert.equal(countWithN(wsIn.pushes, 'message.new', 1), 1);
      assert.equal(countWithN(ioOut.pushes, 'message.new', 1), 0);
      assert.equal(countWithN(wsOut.pushes, 'message.new', 1), 0);
    });

    it('sends ws members the frame {event, data} without an id', async () => {
      connections.deliver('room-a', 'message.new', { n: 2 });
      await drain(all);
      const frame = wsIn.frames.find((f) => (f.data as PayloadWithN)?.n === 2);
      assert.deepEqual(frame, { event: 'message.new', data: { n: 2 } });
    });

    it('stops delivering to connections that left the room', async () => {
      const ioLeaver = await connectIo('lc-io-leaver');
      const wsLeaver = await connectWs('lc-ws-leaver');
      for (const c of [ioLeaver, wsLeaver]) assert.equal((await c.request('join', { roomId: 'room-c' })).ok, true);
      connections.deliver('room-c', 'message.new', { n: 3 });
      await drain([
        [ioLeaver, 'lc-io-leaver'],
        [wsLeaver, 'lc-ws-leaver'],
      ]);
      assert.equal(countWithN(ioLeaver.pushes, 'message.new', 3), 1, 'precondition: joined members get the event');
      assert.equal(countWithN(wsLeaver.pushes, 'message.new', 3), 1, 'precondition: joined members get the event');

      for (const c of [ioLeaver, wsLeaver]) assert.equal((await c.request('leave', { roomId: 'room-c' })).ok, true);
      connections.deliver('room-c', 'message.new', { n: 4 });
      await drain([
        [ioLeaver, 'lc-io-leaver'],
        [wsLeaver, 'lc-ws-leaver'],
      ]);
      assert.equal(countWithN(ioLeaver.pushes, 'message.new', 4), 0);
      assert.equal(countWithN(wsLeaver.pushes, 'message.new', 4), 0);
    });

    it('forgets the rooms of a ws connection that closed', async () => {
      const closer = await connectWs('lc-ws-closer');
      assert.equal((await closer.request('join', { roomId: 'room-d' })).ok, true);
      const conn = serverConn('lc-ws-closer');
      assert.equal(conn.transport, 'ws');
      const wsCount = connections.count('ws');

      // Record every frame LocalConnections still tries to hand this connection.
      const attempted: string[] = [];
      const spied = conn as unknown as { sendFrame(frame: string): void };
      const original = spied.sendFrame.bind(conn);
      spied.sendFrame = (frame: string) => {
        attempted.push(frame);
        original(frame);
      };
      connections.deliver('room-d', 'message.new', { n: 5 });
      assert.equal(attempted.length, 1, 'precondition: a member of room-d is delivered to');

      closer.ws.close(1000, 'bye');
      const reason = await within(
        disconnectReasons.get('lc-ws-closer') ?? Promise.reject(new Error('no disconnect hook')),
        'server-side close',
      );
      assert.match(reason, /1000/);
      connections.deliver('room-d', 'message.new', { n: 6 });
      assert.equal(attempted.length, 1, 'a closed connection is no longer a member of room-d');
      assert.equal(connections.count('ws'), wsCount - 1, 'a closed connection is no longer counted');
    });
  });

  describe('RoomFanout', () => {
    let ioIn: IoClient;
    let ioOut: IoClient;
    let wsIn: WsClient;
    let wsOut: WsClient;
    let all: [TestClient, string][];

    before(async () => {
      [ioIn, ioOut, wsIn, wsOut] = await Promise.all([
        connectIo('rf-io-in'),
        connectIo('rf-io-out'),
        connectWs('rf-ws-in'),
        connectWs('rf-ws-out'),
      ]);
      all = [
        [ioIn, 'rf-io-in'],
        [ioOut, 'rf-io-out'],
        [wsIn, 'rf-ws-in'],
        [wsOut, 'rf-ws-out'],
      ];
      for (const c of [ioIn, wsIn]) assert.equal((await c.request('join', { roomId: 'fan-a' })).ok, true);
    });

    function assertReachedMembersOnce(n: number): void {
      assert.equal(countWithN(ioIn.pushes, 'message.new', n), 1, 'io member');
      assert.equal(countWithN(wsIn.pushes, 'message.new', n), 1, 'ws member');
      assert.equal(countWithN(ioOut.pushes, 'message.new', n), 0, 'io non-member');
      assert.equal(countWithN(wsOut.pushes, 'message.new', n), 0, 'ws non-member');
    }

    it('without a relay, delivers to the local members of the room exactly once', async () => {
      const fanout = new RoomFanout(connections);
      fanout.publish('fan-a', 'message.new', { n: 101 });
      await drain(all);
      assertReachedMembersOnce(101);
    });

    it('with a relay, delivers locally once and relays once through serverSideEmit', async () => {
      const { fakeIo, listeners, emitted } = fakeRelayServer();
      const fanout = new RoomFanout(connections);
      fanout.relayThrough(fakeIo);
      assert.equal(listeners.length, 1, 'subscribes to one relay event');
      const relayEvent = listeners[0]?.[0];

      fanout.publish('fan-a', 'message.new', { n: 102 });
      assert.deepEqual(emitted, [[relayEvent, 'fan-a', 'message.new', { n: 102 }]]);
      await drain(all);
      assertReachedMembersOnce(102);
    });

    it('delivers an event relayed from another instance to local members once, without relaying it again', async () => {
      const { fakeIo, listeners, emitted } = fakeRelayServer();
      const fanout = new RoomFanout(connections);
      fanout.relayThrough(fakeIo);
      const listener = listeners[0]?.[1];
      assert.ok(listener, 'a relay listener is registered');

      listener('fan-a', 'message.new', { n: 103 });
      await drain(all);
      assertReachedMembersOnce(103);
      assert.deepEqual(emitted, [], 'a relayed event is not sent back out');
    });
  });
});

/** A stand-in for the socket.io server that records the relay's on/serverSideEmit calls. */
function fakeRelayServer(): {
  fakeIo: IoServer;
  listeners: [string, (...args: unknown[]) => void][];
  emitted: unknown[][];
} {
  const listeners: [string, (...args: unknown[]) => void][] = [];
  const emitted: unknown[][] = [];
  const fake = {
    on(event: string, listener: (...args: unknown[]) => void) {
      listeners.push([event, listener]);
      return fake;
    },
    serverSideEmit(...args: unknown[]) {
      emitted.push(args);
      return true;
    },
  };
  return { fakeIo: fake as unknown as IoServer, listeners, emitted };
}

describe('DualTransportAdapter.close', () => {
  it('closes ws clients with 1012, closes socket.io transports (clients reconnect) and stops the HTTP server', async () => {
    const httpServer = createServer();
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    const { port } = httpServer.address() as AddressInfo;
    const adapter = adapterOn(httpServer, stubAdapterOptions());
    const io = adapter.create(0);
    const disconnects: Promise<string>[] = [];
    adapter.bindClientConnect(io, (conn: ChatConnection) => {
      disconnects.push(new Promise((resolve) => adapter.bindClientDisconnect(conn, resolve)));
      conn.push('session', { userId: conn.user.userId, connectionId: conn.id });
    });
    const ws = new WsClient(`ws://127.0.0.1:${port}/ws`, { Authorization: 'Bearer good-closing' });
    const sio = new IoClient(`http://127.0.0.1:${port}`, { token: 'good-closing-io' }, 'websocket');
    try {
      await Promise.all([ws.waitPush('session'), sio.waitPush('session')]);
      const ioDisconnected = within(new Promise<string>((resolve) => sio.socket.once('disconnect', resolve)), 'socket.io disconnect');
      await within(adapter.close(io), 'adapter.close');
      assert.equal((await within(ws.closed, 'ws close')).code, 1012);
      assert.equal(await ioDisconnected, 'transport close');
      assert.equal(httpServer.listening, false);
      assert.equal(disconnects.length, 2);
      await within(Promise.all(disconnects), 'both server-side connections to report their disconnect');
    } finally {
      ws.close();
      sio.close();
      if (httpServer.listening) {
        httpServer.closeAllConnections();
        httpServer.close();
      }
    }
  });
});
