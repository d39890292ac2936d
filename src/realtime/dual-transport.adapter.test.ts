import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { finalize, from, isObservable, mergeAll, of, throwError, type Observable } from 'rxjs';
import type { Server as IoServer } from 'socket.io';
import { io as ioClient, type Socket as IoClientSocket } from 'socket.io-client';
import WebSocket from 'ws';
import type { Identity } from '../auth/identity.js';
import { ChatError } from '../chat/chat.errors.js';
import type { Reply } from '../chat/chat.events.js';
import type { AppConfig } from '../config/config.schema.js';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { Admission } from './admission.js';
import { ChatConnection, type CloseReason, type RequestListener, type Responder } from './chat-connection.js';
import { LocalConnectionSlots } from '../presence/connection-slots.js';
import { DualTransportAdapter, type DualTransportOptions } from './dual-transport.adapter.js';
import { HandshakeGuard } from './limits/handshake-guard.js';
import { RequestLimiter, type UserMessageCounter } from './limits/request-limiter.js';
import { LocalConnections } from './local-connections.js';
import { OriginPolicy } from './origin-policy.js';
import { RequestDispatcher } from './request-dispatcher.js';
import { RoomFanout } from './room-fanout.js';

// The adapter logs INTERNAL failures on purpose in several tests; keep the test output readable.
Logger.overrideLogger(false);

const WAIT_MS = 5000;
const MAX_PAYLOAD_BYTES = 4096;
/** Limits generous enough that only the tests about limits reach them. */
const GENEROUS_HANDSHAKES: AppConfig['handshakes'] = {
  connectTimeoutMs: 5000,
  maxUnauthenticated: 10_000,
  perSecond: 10_000,
  burst: 10_000,
};
const GENEROUS_LIMITS: AppConfig['rateLimits'] = {
  perConnection: { perSecond: 1000, burst: 1000 },
  perUser: { messages: 1000, windowMs: 60_000 },
  disconnectAfter: 50,
  roomCreations: { perUser: 20, windowMs: 60_000 },
};
const MAX_CONNECTIONS_PER_USER = 2;
const MAX_ROOMS_PER_CONNECTION = 3;

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

/** Builds data nested `levels` deep ({} is one level), without recursion. */
function nested(levels: number): unknown {
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
async function eventually(pred: () => boolean, label: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Dispatch, through a fake ChatConnection
// ---------------------------------------------------------------------------------------------

/** The dispatcher answers after the (asynchronous) rate-limit check; this lets that check settle. */
const afterLimits = () => new Promise<void>((resolve) => setImmediate(resolve));

class FakeConnection extends ChatConnection {
  readonly pushes: Push[] = [];
  readonly closes: CloseReason[] = [];
  readonly subscriptions: string[] = [];
  private listener: RequestListener | null = null;

  constructor(maxRooms = MAX_ROOMS_PER_CONNECTION) {
    super('fake-1', 'ws', { userId: 'fake', name: null, expiresAt: Date.now() + 3600e3 }, maxRooms);
  }

  push(event: string, data: unknown): void {
    this.pushes.push({ event, data });
  }
  protected subscribe(roomId: string): void {
    this.subscriptions.push(roomId);
  }
  protected unsubscribe(roomId: string): void {
    this.subscriptions.splice(this.subscriptions.indexOf(roomId), 1);
  }
  bufferedBytes(): number {
    return 0;
  }
  terminate(): void {}
  close(reason: CloseReason): void {
    this.closes.push(reason);
  }
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

/** What a test server (or a dispatch-only adapter) is built with; everything has a default. */
interface AdapterSetup {
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

/** The adapter's options wired the way createTransportAdapter wires them, with a fake token check and user counter. */
function adapterOptions(setup: AdapterSetup = {}): DualTransportOptions {
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
    dispatcher: new RequestDispatcher(gate, new RequestLimiter(setup.rateLimits ?? GENEROUS_LIMITS, new InMemoryMessageCounter())),
    connections,
    onServer: setup.onServer ?? (() => undefined),
  };
}

/** AbstractWsAdapter accepts a bare http server; the subclass's parameter type names only the app. */
function adapterOn(httpServer: HttpServer, options: DualTransportOptions): DualTransportAdapter {
  return new DualTransportAdapter(httpServer as unknown as INestApplicationContext, options);
}

describe('DualTransportAdapter.bindMessageHandlers (dispatch)', () => {
  const adapter = adapterOn(createServer(), adapterOptions());

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
    it(`answers UNKNOWN_EVENT for the undefined event name ${JSON.stringify(name)} without calling any handler`, async () => {
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
      await d.firstReply();
      assert.equal(d.replies.length, 1);
      const reply = d.replies[0];
      assert.equal(reply?.ok, false);
      assert.equal(reply.ok === false && reply.error.code, 'UNKNOWN_EVENT');
      assert.equal(typeof (reply.ok === false && reply.error.message), 'string');
      assert.equal(called, false);
    });
  }

  it('pushes UNKNOWN_EVENT as an `error` carrying the event name when the request has no ack', async () => {
    const d = dispatch(adapter, { echo: (x) => x }, 'no.such.event', {}, false);
    await afterLimits();
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

  it('answers VALIDATION_FAILED for data nested deeper than 32 levels, without calling the handler', async () => {
    let calls = 0;
    const table = { echo: () => ({ n: ++calls }) };
    const ok = dispatch(adapter, table, 'echo', nested(32));
    assert.deepEqual(await ok.firstReply(), { ok: true, data: { n: 1 } }, '32 levels are fine');

    const deep = dispatch(adapter, table, 'echo', nested(33));
    const reply = await deep.firstReply();
    assert.equal(reply.ok === false && reply.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(reply.ok === false && reply.error.details, { fields: ['child'] });
    assert.equal(calls, 1, 'the handler did not run for 33 levels');

    const noAck = dispatch(adapter, table, 'echo', nested(40), false);
    await afterLimits();
    assert.equal((noAck.conn.pushes[0]?.data as WireError | undefined)?.code, 'VALIDATION_FAILED');
    assert.equal((noAck.conn.pushes[0]?.data as WireError | undefined)?.event, 'echo');
  });

  it('answers UNKNOWN_EVENT before looking at the data', async () => {
    const d = dispatch(adapter, { echo: (x) => x }, 'nope', nested(100));
    const reply = await d.firstReply();
    assert.equal(reply.ok === false && reply.error.code, 'UNKNOWN_EVENT');
  });
});

describe('DualTransportAdapter.bindMessageHandlers (limits and shutdown)', () => {
  function bound(setup: AdapterSetup, table: Record<string, Handler>, options: Partial<DualTransportOptions> = {}) {
    const adapter = adapterOn(createServer(), { ...adapterOptions(setup), ...options });
    const conn = new FakeConnection();
    adapter.bindMessageHandlers(conn, handlersOf(table), nestTransform);
    const ask = (event: string, data: unknown = {}) => within(conn.request(event, data, true).firstReply, `a reply to ${event}`);
    return { conn, ask };
  }

  it('answers RATE_LIMITED with details.retryAfterMs past the burst, and closes for abuse after RATE_LIMIT_DISCONNECT_AFTER refusals in a row', async () => {
    let calls = 0;
    const rateLimits = { ...GENEROUS_LIMITS, perConnection: { perSecond: 1, burst: 2 }, disconnectAfter: 2 };
    const { conn, ask } = bound({ rateLimits }, { echo: () => ++calls });
    assert.deepEqual(
      [await ask('echo'), await ask('echo')],
      [
        { ok: true, data: 1 },
        { ok: true, data: 2 },
      ],
    );
    const first = await ask('echo');
    assert.equal(first.ok === false && first.error.code, 'RATE_LIMITED');
    const retryAfterMs = first.ok === false ? first.error.details?.retryAfterMs : undefined;
    assert.ok(typeof retryAfterMs === 'number' && retryAfterMs > 0 && retryAfterMs <= 1000, `retryAfterMs ${String(retryAfterMs)}`);
    assert.deepEqual(conn.closes, [], 'one refusal does not close');
    const second = await ask('echo');
    assert.equal(second.ok === false && second.error.code, 'RATE_LIMITED');
    assert.deepEqual(conn.closes, ['abuse']);
    assert.equal(calls, 2, 'refused requests never reach the handler');
  });

  it('answers INTERNAL when the rate limit check fails', async () => {
    const failing: UserMessageCounter = { hit: () => Promise.reject(new Error('redis down')) };
    const gate = new ShutdownGate();
    const { ask } = bound(
      { gate },
      { 'message.send': () => 'sent' },
      { dispatcher: new RequestDispatcher(gate, new RequestLimiter(GENEROUS_LIMITS, failing)) },
    );
    const reply = await ask('message.send');
    assert.deepEqual(reply, { ok: false, error: { code: 'INTERNAL', message: 'internal error' } });
  });

  it('serves while draining, and answers UNAVAILABLE without calling the handler once closing', async () => {
    let calls = 0;
    const gate = new ShutdownGate();
    const { ask } = bound({ gate }, { echo: () => ++calls });
    gate.beginDraining();
    assert.deepEqual(await ask('echo'), { ok: true, data: 1 });
    gate.beginClosing();
    const reply = await ask('echo');
    assert.equal(reply.ok === false && reply.error.code, 'UNAVAILABLE');
    assert.equal(calls, 1);
  });

  it('counts a request in flight until its handler settles, whether it succeeds or fails', async () => {
    const gate = new ShutdownGate();
    let finish!: (v: unknown) => void;
    let fail!: (e: Error) => void;
    const { ask } = bound(
      { gate },
      {
        slow: () => new Promise((resolve) => (finish = resolve)),
        doomed: () => new Promise((_, reject) => (fail = reject)),
      },
    );
    const slow = ask('slow');
    const doomed = ask('doomed');
    await eventually(() => finish !== undefined && fail !== undefined, 'both handlers to start');
    assert.equal(await gate.whenIdle(20), false, 'two requests in flight');
    finish('done');
    assert.deepEqual(await slow, { ok: true, data: 'done' });
    assert.equal(await gate.whenIdle(20), false, 'one request still in flight');
    fail(new Error('boom'));
    assert.equal((await doomed).ok, false);
    assert.equal(await within(gate.whenIdle(WAIT_MS), 'the gate to be idle'), true);
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

/** An engine.io polling handshake, the first request of a socket.io client, sent by hand so its headers are ours. */
function pollingHandshake(
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

/** One ws handshake that may be accepted or refused: 'open' (the client is closed by srv.stop()) or the HTTP status. */
function attemptWs(srv: TestServer, headers: Record<string, string>): Promise<'open' | number> {
  const ws = srv.track(new WebSocket(srv.wsUrl, { headers }));
  return within(
    new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.once('open', () => resolve('open'));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
    }),
    'a ws handshake outcome',
  );
}

/** One socket.io handshake that may be accepted or refused: 'open' or the connect_error message. */
function attemptIo(srv: TestServer, token: string): Promise<string> {
  const c = srv.track(new IoClient(srv.baseUrl, { token }, 'websocket'));
  return within(
    new Promise((resolve) => {
      c.socket.once('connect', () => resolve('open'));
      c.socket.once('connect_error', (err) => resolve(err.message));
    }),
    'a socket.io handshake outcome',
  );
}

/** Resolves with the reason of the socket.io client's next disconnect. */
function ioDisconnected(c: IoClient): Promise<string> {
  return within(new Promise<string>((resolve) => c.socket.once('disconnect', (reason) => resolve(reason))), 'socket.io disconnect');
}

/**
 * A socket.io client speaking engine.io's websocket transport by hand, so a test can send frames
 * socket.io-client never would.
 */
class RawEngineIoClient {
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
class TestServer {
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
    for (const [, user] of members) this.serverConn(user).push('sentinel', mark);
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

describe('DualTransportAdapter on a real HTTP server', () => {
  let srv: TestServer;
  let io: IoServer;
  let connections: LocalConnections;
  let baseUrl: string;
  let wsUrl: string;
  let disconnectReasons: Map<string, Promise<string>>;
  const connectWs = (user: string, via: 'header' | 'query' = 'header') => srv.connectWs(user, via);
  const connectIo = (user: string, transport: 'websocket' | 'polling' = 'websocket') => srv.connectIo(user, transport);
  const serverConn = (user: string) => srv.serverConn(user);
  const drain = (members: [TestClient, string][]) => srv.drain(members);

  before(async () => {
    srv = await TestServer.start();
    ({ io, connections, baseUrl, wsUrl, disconnectReasons } = srv);
  });

  after(() => srv.stop());

  it('calls onServer once, with the socket.io server it creates', () => {
    assert.equal(srv.onServerCalls.length, 1);
    assert.equal(srv.onServerCalls[0], io);
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
      const relayEvent = relayEventName();
      assert.equal(listeners.filter(([name]) => name === relayEvent).length, 1, 'subscribes once to the relay event');

      fanout.publish('fan-a', 'message.new', { n: 102 });
      assert.deepEqual(emitted, [[relayEvent, 'fan-a', 'message.new', { n: 102 }]]);
      await drain(all);
      assertReachedMembersOnce(102);
    });

    it('delivers an event relayed from another instance to local members once, without relaying it again', async () => {
      const { fakeIo, listeners, emitted } = fakeRelayServer();
      const fanout = new RoomFanout(connections);
      fanout.relayThrough(fakeIo);
      const listener = listeners.find(([name]) => name === relayEventName())?.[1];
      assert.ok(listener, 'a relay listener is registered');

      listener('fan-a', 'message.new', { n: 103 });
      await drain(all);
      assertReachedMembersOnce(103);
      assert.deepEqual(emitted, [], 'a relayed event is not sent back out');
    });

    it("removeUsers takes the user's socket.io and ws connections out of the room on this instance, with room.removed", async () => {
      const [io1, ws1, ioStay, wsStay] = await Promise.all([
        connectIo('rf-evict-a'),
        connectWs('rf-evict-b'),
        connectIo('rf-stay-a'),
        connectWs('rf-stay-b'),
      ]);
      const members: [TestClient, string][] = [
        [io1, 'rf-evict-a'],
        [ws1, 'rf-evict-b'],
        [ioStay, 'rf-stay-a'],
        [wsStay, 'rf-stay-b'],
      ];
      for (const [c] of members) assert.equal((await c.request('join', { roomId: 'fan-evict' })).ok, true);
      const fanout = new RoomFanout(connections);
      fanout.removeUsers('fan-evict', ['rf-evict-a', 'rf-evict-b']);
      assert.deepEqual(await io1.waitPush('room.removed'), { roomId: 'fan-evict' });
      assert.deepEqual(await ws1.waitPush('room.removed'), { roomId: 'fan-evict' });

      fanout.publish('fan-evict', 'message.new', { n: 104 });
      await drain(members);
      assert.equal(countWithN(io1.pushes, 'message.new', 104), 0, 'the evicted socket.io connection left the socket.io room');
      assert.equal(countWithN(ws1.pushes, 'message.new', 104), 0, 'the evicted ws connection left the ws room');
      assert.equal(countWithN(ioStay.pushes, 'message.new', 104), 1);
      assert.equal(countWithN(wsStay.pushes, 'message.new', 104), 1);
      assert.equal(ioStay.pushes.filter((p) => p.event === 'room.removed').length, 0);
      assert.equal(wsStay.pushes.filter((p) => p.event === 'room.removed').length, 0);
    });

    it('removeNonMembers keeps the given members and takes everyone else out', async () => {
      const [member, outsider] = await Promise.all([connectWs('rf-member'), connectIo('rf-outsider')]);
      for (const c of [member, outsider]) assert.equal((await c.request('join', { roomId: 'fan-private' })).ok, true);
      new RoomFanout(connections).removeNonMembers('fan-private', ['rf-member']);
      assert.deepEqual(await outsider.waitPush('room.removed'), { roomId: 'fan-private' });
      await drain([
        [member, 'rf-member'],
        [outsider, 'rf-outsider'],
      ]);
      assert.equal(member.pushes.filter((p) => p.event === 'room.removed').length, 0);
      assert.equal(serverConn('rf-member').rooms.has('fan-private'), true);
      assert.equal(serverConn('rf-outsider').rooms.has('fan-private'), false);
    });
  });

  describe('origins in development (no ALLOWED_ORIGINS)', () => {
    it('accepts a ws upgrade from any Origin', async () => {
      const c = srv.track(new WsClient(wsUrl, { Authorization: 'Bearer good-dev-origin', Origin: 'https://anywhere.example' }));
      await within(once(c.ws, 'open'), 'ws open');
      assert.deepEqual(await c.waitPush('session'), { userId: 'dev-origin', connectionId: serverConn('dev-origin').id });
    });

    it('answers a polling handshake from any Origin, with CORS headers for that origin', async () => {
      const res = await pollingHandshake(srv.port, { Origin: 'https://anywhere.example' });
      assert.equal(res.status, 200);
      assert.match(res.body, /^0\{"sid"/);
      assert.equal(res.headers['access-control-allow-origin'], 'https://anywhere.example');
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
    });

    it('sends no CORS headers to a request without Origin', async () => {
      const res = await pollingHandshake(srv.port);
      assert.equal(res.status, 200);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    });
  });

  describe('connection cap per user', () => {
    it('refuses the connection past maxConnectionsPerUser: ws with HTTP 429 LIMIT_EXCEEDED, socket.io with connect_error LIMIT_EXCEEDED', async () => {
      const ws = await connectWs('capped');
      await connectIo('capped', 'polling');
      assert.equal(connections.countForUser('capped'), MAX_CONNECTIONS_PER_USER);

      const wsCount = connections.count('ws');
      const refused = await wsRefusal(wsUrl, { Authorization: 'Bearer good-capped' });
      assert.equal(refused.status, 429);
      const body = JSON.parse(refused.body) as { ok: unknown; error: WireError };
      assert.equal(body.ok, false);
      assert.equal(body.error.code, 'LIMIT_EXCEEDED');
      assert.equal(connections.count('ws'), wsCount, 'no connection opened');

      for (const transport of ['websocket', 'polling'] as const) {
        const err = await ioRefusal(baseUrl, { token: 'good-capped' }, transport);
        assert.equal(err.message, 'LIMIT_EXCEEDED', transport);
        assert.equal((err.data as WireError | undefined)?.code, 'LIMIT_EXCEEDED', transport);
      }
      assert.equal(connections.countForUser('capped'), MAX_CONNECTIONS_PER_USER);

      ws.close();
      await eventually(() => connections.countForUser('capped') < MAX_CONNECTIONS_PER_USER, 'the closed connection to be uncounted');
      const again = await connectIo('capped');
      assert.equal(((await again.waitPush('session')) as { userId: string }).userId, 'capped', 'a slot freed by a close is usable again');
    });

    it('counts each user on its own', async () => {
      await connectWs('cap-one');
      await connectWs('cap-one');
      assert.equal((await wsRefusal(wsUrl, { Authorization: 'Bearer good-cap-one' })).status, 429);
      const other = await connectWs('cap-two');
      assert.equal(other.ws.readyState, WebSocket.OPEN);
    });
  });

  describe('request limits on both transports', () => {
    it('answers VALIDATION_FAILED for data nested 40 levels deep, and still serves 32 levels', async () => {
      const clients: [string, TestClient][] = [
        ['ws', await connectWs('deep-ws')],
        ['socket.io', await connectIo('deep-io')],
      ];
      for (const [label, c] of clients) {
        const reply = await c.request('echo', nested(40));
        assert.equal(reply.ok, false, label);
        assert.equal(reply.error?.code, 'VALIDATION_FAILED', label);
        assert.deepEqual((reply.error?.details as { fields?: unknown } | undefined)?.fields, ['child'], label);
        const fine = await c.request('echo', nested(32));
        assert.equal(fine.ok, true, `${label}: 32 levels are accepted`);
      }
    });

    it('answers LIMIT_EXCEEDED to a join past maxRoomsPerConnection and keeps the joined rooms', async () => {
      const clients: [string, TestClient][] = [
        ['ws', await connectWs('rooms-ws')],
        ['socket.io', await connectIo('rooms-io')],
      ];
      for (const [label, c] of clients) {
        for (let i = 1; i <= MAX_ROOMS_PER_CONNECTION; i++) {
          assert.equal((await c.request('join', { roomId: `cap-${i}` })).ok, true, `${label}: room ${i}`);
        }
        const refused = await c.request('join', { roomId: 'cap-extra' });
        assert.equal(refused.ok, false, label);
        assert.equal(refused.error?.code, 'LIMIT_EXCEEDED', label);
        assert.deepEqual(refused.error?.details, { limit: MAX_ROOMS_PER_CONNECTION }, label);
        assert.equal((await c.request('join', { roomId: 'cap-1' })).ok, true, `${label}: joining a joined room again is fine`);
        assert.equal((await c.request('leave', { roomId: 'cap-1' })).ok, true, label);
        assert.equal((await c.request('join', { roomId: 'cap-extra' })).ok, true, `${label}: a left room frees its slot`);
      }
      const conn = serverConn('rooms-ws');
      assert.deepEqual([...conn.rooms].sort(), ['cap-2', 'cap-3', 'cap-extra']);
    });
  });

  describe('socket.io binary packets', () => {
    async function assertOthersStillServed(): Promise<void> {
      const bystander = await connectIo('bin-bystander-' + Math.random().toString(36).slice(2, 8));
      assert.deepEqual(await bystander.request('echo', 'still here'), { ok: true, data: { echo: 'still here' } });
    }

    it('closes a connection that sends a BINARY_EVENT packet, and only that one', async () => {
      const other = await connectIo('bin-other');
      const raw = srv.track(new RawEngineIoClient(srv.port));
      await raw.connect('good-bin-raw');
      const conn = serverConn('bin-raw');
      assert.equal(conn.transport, 'socket.io');
      raw.ws.send('451-["echo",{"_placeholder":true,"num":0}]');
      await within(raw.closed, 'the binary sender to be disconnected');
      await within(disconnectReasons.get('bin-raw') ?? Promise.reject(new Error('no disconnect hook')), 'server-side close');
      assert.equal(connections.countForUser('bin-raw'), 0);
      assert.deepEqual(await other.request('echo', 1), { ok: true, data: { echo: 1 } }, 'another connection is untouched');
      await assertOthersStillServed();
    });

    it('closes a connection that sends a binary engine.io frame', async () => {
      const raw = srv.track(new RawEngineIoClient(srv.port));
      await raw.connect('good-bin-frame');
      raw.ws.send(Buffer.from([0x04, 0x01, 0x02]), { binary: true });
      await within(raw.closed, 'the binary sender to be disconnected');
      await eventually(() => connections.countForUser('bin-frame') === 0, 'the server-side connection to close');
      await assertOthersStillServed();
    });

    for (const transport of ['websocket', 'polling'] as const) {
      it(`disconnects a socket.io-client that emits a Buffer over ${transport}`, async () => {
        const user = `bin-client-${transport}`;
        const c = await connectIo(user, transport);
        const gone = ioDisconnected(c);
        c.socket.emit('echo', Buffer.from('binary'));
        assert.equal(await gone, 'transport close');
        await eventually(() => connections.countForUser(user) === 0, 'the server-side connection to close');
        await assertOthersStillServed();
      });
    }
  });

  describe('closing a connection', () => {
    it('expire(): ws gets error UNAUTHORIZED "token expired", then close 4001 "token expired"', async () => {
      const c = await connectWs('expire-ws');
      serverConn('expire-ws').expire();
      assert.deepEqual(await c.waitPush('error'), { code: 'UNAUTHORIZED', message: 'token expired' });
      assert.deepEqual(await within(c.closed, 'ws close'), { code: 4001, reason: 'token expired' });
    });

    it("expire(): socket.io gets error UNAUTHORIZED, then an 'io server disconnect' (no automatic reconnect)", async () => {
      for (const transport of ['websocket', 'polling'] as const) {
        const user = `expire-io-${transport}`;
        const c = await connectIo(user, transport);
        const gone = ioDisconnected(c);
        serverConn(user).expire();
        assert.equal(await gone, 'io server disconnect', transport);
        assert.deepEqual(await c.waitPush('error'), { code: 'UNAUTHORIZED', message: 'token expired' }, transport);
      }
    });

    it("close('abuse'): ws close 1008, socket.io 'io server disconnect'", async () => {
      const ws = await connectWs('abuse-ws');
      const sio = await connectIo('abuse-io');
      const gone = ioDisconnected(sio);
      serverConn('abuse-ws').close('abuse');
      serverConn('abuse-io').close('abuse');
      assert.equal((await within(ws.closed, 'ws close')).code, 1008);
      assert.equal(await gone, 'io server disconnect');
    });

    it("close('restart'): ws close 1012, socket.io 'transport close' (the client reconnects)", async () => {
      const ws = await connectWs('restart-ws');
      const sio = await connectIo('restart-io');
      const gone = ioDisconnected(sio);
      serverConn('restart-ws').close('restart');
      serverConn('restart-io').close('restart');
      assert.equal((await within(ws.closed, 'ws close')).code, 1012);
      assert.equal(await gone, 'transport close');
    });
  });
});

describe('DualTransportAdapter connection cap with a token check that takes time (as a real one does)', () => {
  let slow: TestServer;
  before(async () => {
    slow = await TestServer.start({ authDelayMs: 50 });
  });
  after(() => slow.stop());

  it('holds the cap when handshakes of one user arrive at the same time', async () => {
    const user = 'cap-burst';
    const attempts = await Promise.all([
      ...Array.from({ length: 4 }, () => attemptWs(slow, { Authorization: `Bearer good-${user}` })),
      ...Array.from({ length: 2 }, () => attemptIo(slow, `good-${user}`)),
    ]);
    const opened = attempts.filter((a) => a === 'open').length;
    assert.ok(
      opened <= MAX_CONNECTIONS_PER_USER,
      `${opened} of ${attempts.length} simultaneous handshakes were accepted (outcomes ${attempts.join(', ')}); the cap is ${MAX_CONNECTIONS_PER_USER}`,
    );
    assert.ok(slow.connections.countForUser(user) <= MAX_CONNECTIONS_PER_USER);
  });
});

describe('DualTransportAdapter origin checks (ALLOWED_ORIGINS set, or production without it)', () => {
  const ALLOWED = 'https://app.example.com';

  for (const [label, origins, allowed] of [
    ['ALLOWED_ORIGINS set', new OriginPolicy([ALLOWED], true), ALLOWED],
    ['production without ALLOWED_ORIGINS', new OriginPolicy(null, false), null],
  ] as const) {
    describe(label, () => {
      let srv: TestServer;
      let ownOrigin: string;
      before(async () => {
        srv = await TestServer.start({ origins });
        ownOrigin = `http://127.0.0.1:${srv.port}`;
      });
      after(() => srv.stop());

      for (const foreign of ['https://evil.example', `${ALLOWED}.evil.example`, 'null', 'http://localhost']) {
        it(`answers a ws upgrade from Origin ${foreign} with HTTP 403 FORBIDDEN, even with a valid token`, async () => {
          const before = srv.connections.count('ws');
          const res = await wsRefusal(srv.wsUrl, { Authorization: 'Bearer good-foreign', Origin: foreign });
          assert.equal(res.status, 403);
          assert.equal((JSON.parse(res.body) as { error: WireError }).error.code, 'FORBIDDEN');
          assert.equal(srv.connections.count('ws'), before);
        });

        it(`answers a socket.io polling handshake from Origin ${foreign} with HTTP 403 and no CORS grant`, async () => {
          const res = await pollingHandshake(srv.port, { Origin: foreign });
          assert.equal(res.status, 403);
          assert.notEqual(res.headers['access-control-allow-origin'], foreign);
        });
      }

      it('answers a socket.io websocket-transport upgrade from a foreign Origin with HTTP 403', async () => {
        const res = await wsRefusal(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`, { Origin: 'https://evil.example' });
        assert.equal(res.status, 403);
      });

      it('allows requests without Origin (not a browser) on both transports', async () => {
        const ws = await srv.connectWs('no-origin-ws');
        assert.equal(ws.ws.readyState, WebSocket.OPEN);
        const sio = await srv.connectIo('no-origin-io', 'polling');
        assert.deepEqual(await sio.request('echo', 1), { ok: true, data: { echo: 1 } });
        assert.equal((await pollingHandshake(srv.port)).status, 200);
      });

      it('allows the same origin (Origin = http://<Host>) on both transports', async () => {
        const ws = await srv.connectWs('same-origin', 'header', { Origin: ownOrigin });
        assert.equal(ws.ws.readyState, WebSocket.OPEN);
        const res = await pollingHandshake(srv.port, { Origin: ownOrigin });
        assert.equal(res.status, 200);
        assert.match(res.body, /^0\{"sid"/);
      });

      if (allowed) {
        it('allows a listed origin on both transports, with CORS headers for it', async () => {
          const ws = await srv.connectWs('listed-origin', 'header', { Origin: allowed });
          assert.equal(ws.ws.readyState, WebSocket.OPEN);
          const res = await pollingHandshake(srv.port, { Origin: allowed });
          assert.equal(res.status, 200);
          assert.equal(res.headers['access-control-allow-origin'], allowed);
          assert.equal(res.headers['access-control-allow-credentials'], 'true');
        });
      }
    });
  }
});

describe('DualTransportAdapter while the instance drains', () => {
  let srv: TestServer;
  let ws: WsClient;
  let sio: IoClient;
  before(async () => {
    srv = await TestServer.start();
    ws = await srv.connectWs('drain-ws');
    sio = await srv.connectIo('drain-io');
    srv.gate.beginDraining();
  });
  after(() => srv.stop());

  it('answers a new ws upgrade with HTTP 503 UNAVAILABLE, before checking the token or the origin', async () => {
    for (const headers of [
      { Authorization: 'Bearer good-late' },
      { Authorization: 'Bearer bad' },
      { Origin: 'https://evil.example' },
    ] as Record<string, string>[]) {
      const res = await wsRefusal(srv.wsUrl, headers);
      assert.equal(res.status, 503, JSON.stringify(headers));
      assert.equal((JSON.parse(res.body) as { error: WireError }).error.code, 'UNAVAILABLE');
    }
  });

  it('answers a new socket.io polling handshake with HTTP 403, and socket.io-client gets connect_error', async () => {
    assert.equal((await pollingHandshake(srv.port)).status, 403);
    const upgrade = await wsRefusal(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
    assert.ok(upgrade.status >= 400, `the socket.io websocket transport is refused too: ${upgrade.status}`);
    const err = await ioRefusal(srv.baseUrl, { token: 'good-late-io' }, 'polling');
    assert.ok(err instanceof Error);
    assert.equal(srv.connections.countForUser('late-io'), 0);
  });

  it('still serves the connections it has while draining, and answers UNAVAILABLE once closing', async () => {
    const wsReply = await ws.request('echo', 1);
    assert.equal(wsReply.ok, true);
    assert.deepEqual(wsReply.data, { echo: 1 });
    assert.deepEqual(await sio.request('echo', 2), { ok: true, data: { echo: 2 } });
    srv.gate.beginClosing();
    for (const c of [ws, sio] as TestClient[]) {
      const reply = await c.request('echo', 3);
      assert.equal(reply.ok, false);
      assert.equal(reply.error?.code, 'UNAVAILABLE');
    }
  });
});

describe('DualTransportAdapter rate limits', () => {
  const BURST = 5;
  const DISCONNECT_AFTER = 3;
  const USER_MESSAGES = 2;
  let srv: TestServer;
  before(async () => {
    srv = await TestServer.start({
      rateLimits: {
        perConnection: { perSecond: 1, burst: BURST },
        perUser: { messages: USER_MESSAGES, windowMs: 60_000 },
        disconnectAfter: DISCONNECT_AFTER,
        roomCreations: { perUser: 20, windowMs: 60_000 },
      },
    });
  });
  after(() => srv.stop());

  function assertRateLimited(reply: Wire, label: string): void {
    assert.equal(reply.ok, false, label);
    assert.equal(reply.error?.code, 'RATE_LIMITED', label);
    const retryAfterMs = (reply.error?.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    assert.ok(typeof retryAfterMs === 'number' && retryAfterMs > 0, `${label}: retryAfterMs ${String(retryAfterMs)}`);
  }

  for (const transport of ['ws', 'socket.io'] as const) {
    const connect = (user: string) => (transport === 'ws' ? srv.connectWs(user) : srv.connectIo(user));

    it(`${transport}: serves a burst, then answers RATE_LIMITED with details.retryAfterMs and stays connected`, async () => {
      const c = await connect(`burst-${transport}`);
      const burst = await Promise.all(Array.from({ length: BURST }, (_, i) => c.request('echo', i)));
      assert.deepEqual(
        burst.map((r) => r.ok),
        Array(BURST).fill(true),
      );
      const refused = await c.request('echo', 'one too many');
      assertRateLimited(refused, transport);
      const retryAfterMs = (refused.error?.details as { retryAfterMs: number }).retryAfterMs;
      assert.ok(retryAfterMs <= 1000, `one token at 1/s comes within a second: ${retryAfterMs}`);
      const conn = srv.serverConn(`burst-${transport}`);
      assert.equal(srv.connections.countForUser(conn.user.userId), 1, 'still connected');
    });

    it(`${transport}: closes a connection that keeps sending after RATE_LIMIT_DISCONNECT_AFTER refusals`, async () => {
      const user = `abuser-${transport}`;
      const c = await connect(user);
      const burst = await Promise.all(Array.from({ length: BURST }, (_, i) => c.request('echo', i)));
      assert.deepEqual(
        burst.map((r) => r.ok),
        Array(BURST).fill(true),
      );
      const disconnected =
        c instanceof WsClient ? within(c.closed, 'ws close').then(({ code }) => `close ${code}`) : ioDisconnected(c as IoClient);
      // The refusals in a row, sent without waiting, as a client ignoring RATE_LIMITED does.
      const replies = await Promise.all(Array.from({ length: DISCONNECT_AFTER }, (_, i) => c.request('echo', i)));
      for (const r of replies) assertRateLimited(r, transport);
      assert.equal(await disconnected, transport === 'ws' ? 'close 1008' : 'io server disconnect');
      await eventually(() => srv.connections.countForUser(user) === 0, 'the server-side connection to close');
    });
  }

  it('ws: frames that are not requests (non-JSON, binary, no event) count against the limit, up to the abuse close', async () => {
    const c = await srv.connectWs('garbage-ws');
    const answers: Wire[] = [];
    c.ws.on('message', (raw) => answers.push(JSON.parse(raw.toString()) as Wire));
    const frames = ['{not json', '[]', '{"event":5,"id":"bad"}'];
    for (let i = 0; i < 2000 && c.ws.readyState === WebSocket.OPEN; i++) c.send(frames[i % frames.length]);
    c.send(Buffer.from('{}'), { binary: true });
    assert.equal((await within(c.closed, 'ws close')).code, 1008);
    const codes = answers.map((a) => (a.id === undefined ? (a.data as { code?: string }).code : a.error?.code));
    assert.deepEqual(codes.slice(0, BURST), Array(BURST).fill('BAD_REQUEST'), 'the burst is answered BAD_REQUEST');
    assert.deepEqual(codes.slice(BURST, BURST + DISCONNECT_AFTER), Array(DISCONNECT_AFTER).fill('RATE_LIMITED'), 'then RATE_LIMITED');
    assert.ok(answers.length <= BURST + DISCONNECT_AFTER, `no answers after the abuse close: ${answers.length}`);
    await eventually(() => srv.connections.countForUser('garbage-ws') === 0, 'the server-side connection to close');
  });

  it('socket.io: a packet that fails to decode closes the connection at once, so a flood of them gets no answers', async () => {
    const raw = srv.track(new RawEngineIoClient(srv.port));
    await raw.connect('good-garbage-io');
    const before = raw.frames.length;
    for (let i = 0; i < 2000; i++) raw.ws.send('42not json');
    await within(raw.closed, 'the engine.io connection to close');
    assert.deepEqual(raw.frames.slice(before), [], 'no answer to any of them');
    await eventually(() => srv.connections.countForUser('garbage-io') === 0, 'the server-side connection to close');
  });

  it("limits message.send per user across the user's connections on both transports", async () => {
    const ws = await srv.connectWs('sender');
    const sio = await srv.connectIo('sender');
    assert.equal((await ws.request('message.send', { body: 1 })).ok, true);
    assert.equal((await sio.request('message.send', { body: 2 })).ok, true);
    const refused = await ws.request('message.send', { body: 3 });
    assertRateLimited(refused, 'third message of the window');
    const retryAfterMs = (refused.error?.details as { retryAfterMs: number }).retryAfterMs;
    assert.ok(retryAfterMs > 50_000 && retryAfterMs <= 60_000, `until the window ends: ${retryAfterMs}`);
    assertRateLimited(await sio.request('message.send', { body: 4 }), 'the other transport shares the window');
    assert.deepEqual(await sio.request('echo', 5), { ok: true, data: { echo: 5 } }, 'other requests still pass');
  });
});

/** The event RoomFanout relays published events under, as another instance would receive it. */
function relayEventName(): string {
  const { fakeIo, emitted } = fakeRelayServer();
  const fanout = new RoomFanout(new LocalConnections());
  fanout.relayThrough(fakeIo);
  fanout.publish('probe', 'message.new', {});
  assert.equal(emitted.length, 1);
  return emitted[0]?.[0] as string;
}

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
    const adapter = adapterOn(httpServer, adapterOptions());
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
