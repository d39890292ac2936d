// DualTransportAdapter limits: rate limits and shutdown at dispatch, and the per-user connection cap under simultaneous handshakes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import WebSocket from 'ws';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import type { DualTransportOptions } from './dual-transport.adapter.js';
import type { UserMessageCounter } from '../chat/chat.ports.js';
import { RequestLimiter } from './limits/request-limiter.js';
import { RequestDispatcher } from './request-dispatcher.js';
import {
  adapterOn,
  adapterOptions,
  eventually,
  GENEROUS_LIMITS,
  handlersOf,
  IoClient,
  MAX_CONNECTIONS_PER_USER,
  nestTransform,
  RecordingConnection,
  SENDS,
  TestServer,
  WAIT_MS,
  within,
  type AdapterSetup,
  type Handler,
} from './dual-transport.test-support.js';

describe('DualTransportAdapter.bindMessageHandlers (limits and shutdown)', () => {
  function bound(setup: AdapterSetup, table: Record<string, Handler>, options: Partial<DualTransportOptions> = {}) {
    const adapter = adapterOn(createServer(), { ...adapterOptions(setup), ...options });
    const conn = new RecordingConnection();
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
      { dispatcher: new RequestDispatcher(gate, new RequestLimiter(GENEROUS_LIMITS, failing), SENDS) },
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
