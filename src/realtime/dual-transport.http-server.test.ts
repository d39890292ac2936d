// DualTransportAdapter on a real HTTP server: both transports on one port, frames and packets, delivery, fanout, limits, closes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server as IoServer } from 'socket.io';
import type { Message } from '../chat/chat.events.js';
import WebSocket from 'ws';
import { fakeRelay } from './fake-relay.test-support.js';
import { LocalConnections } from './local-connections.js';
import { RoomFanout } from './room-fanout.js';
import {
  eventually,
  forbidden,
  ioDisconnected,
  ioRefusal,
  MAX_CONNECTIONS_PER_USER,
  MAX_PAYLOAD_BYTES,
  MAX_ROOMS_PER_CONNECTION,
  nested,
  pollingHandshake,
  RawEngineIoClient,
  TestServer,
  within,
  wsRefusal,
  WsClient,
  type IoClient,
  type Push,
  type TestClient,
  type Wire,
  type WireError,
} from './dual-transport.test-support.js';

type PayloadWithN = { n?: unknown } | null | undefined;

function countWithN(pushes: Push[], event: string, n: number): number {
  return pushes.filter((p) => p.event === event && (p.data as PayloadWithN)?.n === n).length;
}

/** A payload the fan-out carries without looking into it, told apart by `n`. */
function numbered(n: number): Message {
  return { n } as unknown as Message;
}

function assertBadRequestPush(frame: Wire, label: string): void {
  assert.equal(frame.event, 'error', `${label}: an error push`);
  assert.equal(frame.id, undefined, `${label}: a push carries no id`);
  assert.equal((frame.data as WireError | undefined)?.code, 'BAD_REQUEST', label);
  assert.equal(typeof (frame.data as WireError | undefined)?.message, 'string', label);
}

/** The event RoomFanout relays published events under, as another instance would receive it. */
function relayEventName(): string {
  const { relay, emitted } = fakeRelay();
  const fanout = new RoomFanout(new LocalConnections(), relay);
  fanout.relayThrough();
  fanout.publish('probe', 'message.new', numbered(0));
  assert.equal(emitted.length, 1);
  return emitted[0]?.[0] as string;
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
      connections.deliver('room-a', 'message.new', numbered(1));
      await drain(all);
      assert.equal(countWithN(ioIn.pushes, 'message.new', 1), 1);
      assert.equal(countWithN(wsIn.pushes, 'message.new', 1), 1);
      assert.equal(countWithN(ioOut.pushes, 'message.new', 1), 0);
      assert.equal(countWithN(wsOut.pushes, 'message.new', 1), 0);
    });

    it('sends ws members the frame {event, data} without an id', async () => {
      connections.deliver('room-a', 'message.new', numbered(2));
      await drain(all);
      const frame = wsIn.frames.find((f) => (f.data as PayloadWithN)?.n === 2);
      assert.deepEqual(frame, { event: 'message.new', data: { n: 2 } });
    });

    it('stops delivering to connections that left the room', async () => {
      const ioLeaver = await connectIo('lc-io-leaver');
      const wsLeaver = await connectWs('lc-ws-leaver');
      for (const c of [ioLeaver, wsLeaver]) assert.equal((await c.request('join', { roomId: 'room-c' })).ok, true);
      connections.deliver('room-c', 'message.new', numbered(3));
      await drain([
        [ioLeaver, 'lc-io-leaver'],
        [wsLeaver, 'lc-ws-leaver'],
      ]);
      assert.equal(countWithN(ioLeaver.pushes, 'message.new', 3), 1, 'precondition: joined members get the event');
      assert.equal(countWithN(wsLeaver.pushes, 'message.new', 3), 1, 'precondition: joined members get the event');

      for (const c of [ioLeaver, wsLeaver]) assert.equal((await c.request('leave', { roomId: 'room-c' })).ok, true);
      connections.deliver('room-c', 'message.new', numbered(4));
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
      connections.deliver('room-d', 'message.new', numbered(5));
      assert.equal(attempted.length, 1, 'precondition: a member of room-d is delivered to');

      closer.ws.close(1000, 'bye');
      const reason = await within(
        disconnectReasons.get('lc-ws-closer') ?? Promise.reject(new Error('no disconnect hook')),
        'server-side close',
      );
      assert.match(reason, /1000/);
      connections.deliver('room-d', 'message.new', numbered(6));
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
      fanout.publish('fan-a', 'message.new', numbered(101));
      await drain(all);
      assertReachedMembersOnce(101);
    });

    it('with a relay, delivers locally once and relays once through serverSideEmit', async () => {
      const { relay, listeners, emitted } = fakeRelay();
      const fanout = new RoomFanout(connections, relay);
      fanout.relayThrough();
      const relayEvent = relayEventName();
      assert.ok(listeners.has(relayEvent), 'subscribes to the relay event');

      fanout.publish('fan-a', 'message.new', numbered(102));
      assert.deepEqual(emitted, [[relayEvent, 'fan-a', 'message.new', { n: 102 }]]);
      await drain(all);
      assertReachedMembersOnce(102);
    });

    it('delivers an event relayed from another instance to local members once, without relaying it again', async () => {
      const { relay, listeners, emitted } = fakeRelay();
      const fanout = new RoomFanout(connections, relay);
      fanout.relayThrough();
      const listener = listeners.get(relayEventName());
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

      fanout.publish('fan-evict', 'message.new', numbered(104));
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
