// DualTransportAdapter rate limits on a real server: per connection and per user, on both transports.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  eventually,
  ioDisconnected,
  RawEngineIoClient,
  TestServer,
  within,
  WsClient,
  type IoClient,
  type Wire,
} from './dual-transport.test-support.js';

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
