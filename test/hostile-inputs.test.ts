/**
 * Hostile inputs: every row of shared/docs/hostile-inputs.md that applies to this service, on
 * both transports where it applies. For each refused input the tests check the documented answer,
 * that nothing was stored (row counts in the test database), that nothing was broadcast (observers
 * on both transports joined to the room receive no `message.new` for it), that the process is
 * alive (/health/live) and that a bystander is still served.
 *
 * Covered elsewhere, not repeated here:
 * - row 2 (a token that expires during the session): test/token-lifetime.test.ts ("pushes error
 *   { UNAUTHORIZED, token expired } and disconnects within 1 s after exp", on every transport), with
 *   unit tests in src/realtime/connection-supervisor.test.ts and src/realtime/dual-transport.*.test.ts;
 * - row 26 (a client that never reads while its room is flooded):
 *   test/slow-consumers-and-heartbeats.test.ts.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import {
  connect,
  handshakeRefusal,
  sleep,
  type IoTestClient,
  type Kind,
  type Reply,
  type TestClient,
  type WsTestClient,
} from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import type { Instance } from './support/instance.js';
import { algNoneToken, TEST_JWT_SECRET, tokenFor } from './support/tokens.js';
import { MESSAGE_KEYS } from './support/message-shape.js';

const API_KEY = 'hostile-test-api-key-0123456789';
const ALLOWED_ORIGIN = 'https://allowed.example';
/** Long enough for a push that was going to come to have arrived; proves absence only. */
const SETTLE_MS = 300;
const WAIT_MS = 5000;
const SOCKET_KINDS: Kind[] = ['io', 'ws'];

let unique = 0;
/** A fresh name per use: users and rooms never collide across tests (limits are per user and per connection). */
const uniq = (prefix: string) => `${prefix}-${++unique}`;

// ---------------------------------------------------------------------------------------------
// Helpers of this file (the shared ones in test/support/ are used as they are)
// ---------------------------------------------------------------------------------------------

/** Rejects when `p` does not settle within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

interface Counts {
  messages: number;
  rooms: number;
  members: number;
}

async function counts(cluster: Cluster): Promise<Counts> {
  const [row] = await cluster.db.query<{ messages: string; rooms: string; members: string }>(
    `SELECT (SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM rooms) AS rooms,
            (SELECT count(*) FROM room_members) AS members`,
  );
  return { messages: Number(row.messages), rooms: Number(row.rooms), members: Number(row.members) };
}

interface HttpAnswer {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

/** A plain HTTP request (node:http, so headers such as Origin go out exactly as given). */
function http(
  url: string,
  method: string,
  path: string,
  { headers = {}, body }: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, url), { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
      });
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`${method} ${path}: no answer within ${WAIT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The HTTP API with a JSON body. */
function api(url: string, method: string, path: string, body?: unknown, key: string | null = API_KEY): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (key !== null) headers['X-API-Key'] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return http(url, method, path, { headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** Tries a raw WebSocket upgrade; resolves 'open' or `HTTP <status>`. */
function upgrade(url: string, path: string, headers: Record<string, string>): Promise<string> {
  return within(
    new Promise<string>((resolve) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, { headers });
      ws.on('error', () => undefined);
      ws.on('unexpected-response', (_req, res) => {
        resolve(`HTTP ${res.statusCode}`);
        ws.terminate();
      });
      ws.on('open', () => {
        resolve('open');
        ws.terminate();
      });
    }),
    WAIT_MS,
    `upgrade of ${path}`,
  );
}

/** A socket.io client written by hand on engine.io's websocket transport, to send packets socket.io-client never would. */
interface RawSocketIo {
  ws: WebSocket;
  frames: string[];
  closed: Promise<number>;
  /** The first frame (past or future) matching `pred`. */
  waitFrame(pred: (frame: string) => boolean, ms?: number): Promise<string>;
}

async function rawSocketIo(url: string, token: string): Promise<RawSocketIo> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  const listeners = new Set<(frame: string) => void>();
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  ws.on('message', (raw) => {
    const text = raw.toString();
    frames.push(text);
    if (text.startsWith('0{')) ws.send(`40${JSON.stringify({ token })}`);
    else if (text === '2') ws.send('3');
    for (const l of [...listeners]) l(text);
  });
  const waitFrame = (pred: (frame: string) => boolean, ms = WAIT_MS) => {
    const seen = frames.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    let listener: (frame: string) => void = () => undefined;
    const found = new Promise<string>((resolve) => {
      listener = (f) => {
        if (pred(f)) resolve(f);
      };
      listeners.add(listener);
    });
    return within(found, ms, 'raw socket.io frame').finally(() => listeners.delete(listener));
  };
  await Promise.race([
    waitFrame((f) => f.startsWith('42["session"')),
    closed.then((code) => Promise.reject(new Error(`raw socket.io closed (${code}) before the session push`))),
  ]);
  return { ws, frames, closed, waitFrame };
}

let packetId = 0;

/** Sends a hand-written socket.io EVENT packet with an ack id and resolves with the reply it acks. */
async function rawRequest(raw: RawSocketIo, event: string | number, dataText: string): Promise<Reply> {
  const id = ++packetId;
  raw.ws.send(`42${id}[${JSON.stringify(event)},${dataText}]`);
  const ack = await raw.waitFrame((f) => f.startsWith(`43${id}[`));
  return (JSON.parse(ack.slice(`43${id}`.length)) as Reply[])[0];
}

/** connect() of the support helpers (which waits up to 10 s for the session), bounded to WAIT_MS. */
function openClient(kind: Kind, url: string, token: string): Promise<TestClient> {
  return within(connect(kind, url, token), WAIT_MS, `${kind} connect`);
}

/** The next `error` push `c` receives after `act`. */
async function nextErrorPush(c: TestClient, act: () => void): Promise<any> {
  const seen = c.pushesOf('error').length;
  act();
  return c.waitFor('error', (e) => c.pushesOf('error').indexOf(e) >= seen);
}

function assertFailed(r: Reply, code: string, fields?: string[], what = ''): void {
  assert.equal(r.ok, false, `${what}: expected ${code}, got ${JSON.stringify(r).slice(0, 300)}`);
  assert.equal(r.error?.code, code, `${what}: ${JSON.stringify(r.error).slice(0, 300)}`);
  assert.equal(typeof r.error?.message, 'string', `${what}: error.message`);
  if (fields) assert.deepEqual(r.error?.details?.fields, fields, `${what}: details.fields of ${JSON.stringify(r.error).slice(0, 300)}`);
}

const describeValue = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 60);

/**
 * One room with two observers joined to it (an io and a ws connection of other users) and a
 * bystander (another user) on the instance the hostile client uses. With `privateRoom`, the room
 * is made private over HTTP first and the observers and the bystander are its members.
 */
interface Scene {
  cluster: Cluster;
  room: string;
  url: string;
  observers: TestClient[];
  bystander: TestClient;
}

async function scene(cluster: Cluster, label: string, { privateRoom = false, observerInstances = [0], instance = 0 } = {}): Promise<Scene> {
  const room = uniq(label);
  const url = cluster.instances[instance].url;
  const observerUsers = observerInstances.flatMap(() => [uniq('observer'), uniq('observer')]);
  const bystanderUser = uniq('bystander');
  if (privateRoom) {
    assert.equal((await api(url, 'PUT', `/v1/rooms/${room}`, { visibility: 'private' })).status, 201);
    for (const u of [...observerUsers, bystanderUser]) assert.equal((await api(url, 'PUT', `/v1/rooms/${room}/members/${u}`)).status, 204);
  }
  const observers: TestClient[] = [];
  for (const [i, inst] of observerInstances.entries()) {
    const at = cluster.instances[inst].url;
    observers.push(cluster.track(await openClient('io', at, await tokenFor(observerUsers[2 * i]))));
    observers.push(cluster.track(await openClient('ws', at, await tokenFor(observerUsers[2 * i + 1]))));
  }
  for (const o of observers) await o.ok('room.join', { roomId: room });
  const bystander = cluster.track(await openClient('ws', url, await tokenFor(bystanderUser)));
  return { cluster, room, url, observers, bystander };
}

/** A hostile client of its own (a fresh user) on the scene's instance. */
async function hostile(sc: Scene, kind: Kind, name = 'mallory'): Promise<TestClient> {
  return sc.cluster.track(await openClient(kind, sc.url, await tokenFor(uniq(name))));
}

/** Every instance still runs and serves /health/live; the bystander's message is stored and reaches every observer. */
async function expectServiceHealthy(sc: Scene): Promise<void> {
  for (const inst of sc.cluster.instances) {
    assert.equal(inst.proc.exitCode, null, `instance ${inst.name} exited:\n${inst.output().slice(-2000)}`);
    assert.equal(inst.proc.signalCode, null, `instance ${inst.name} was killed`);
    const live = await fetch(`${inst.url}/health/live`, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(live.status, 200, `instance ${inst.name} /health/live`);
  }
  assert.ok(sc.bystander.isOpen, 'the bystander is still connected');
  const m = await sc.bystander.ok('message.send', { roomId: sc.room, body: 'bystander still served' });
  for (const o of sc.observers) await o.waitFor('message.new', (d) => d.id === m.id);
}

/**
 * Runs `act` (which asserts the documented answer itself), then checks that nothing was stored,
 * nothing was pushed to the observers, the process lives and the bystander is unaffected.
 */
async function expectRefused(sc: Scene, act: () => Promise<void>): Promise<void> {
  const before = await counts(sc.cluster);
  const pushed = sc.observers.map((o) => o.pushesOf('message.new').length);
  await act();
  await sleep(SETTLE_MS);
  assert.deepEqual(await counts(sc.cluster), before, 'nothing stored');
  sc.observers.forEach((o, i) =>
    assert.equal(
      o.pushesOf('message.new').length,
      pushed[i],
      `nothing broadcast to the ${o.kind} observer: ${JSON.stringify(o.pushes.at(-1))}`,
    ),
  );
  await expectServiceHealthy(sc);
}

/** Resolves how a client's connection ended: the socket.io disconnect reason or the ws close code. */
function closedWithin(c: TestClient, ms = WAIT_MS): Promise<string> {
  return within(c.whenClosed(), ms, `${c.kind} connection close`);
}

/** `p`, or a rejection naming the exit (and the last lines the process wrote) if `inst` dies first. */
function unlessExited<T>(inst: Instance, p: Promise<T>): Promise<T> {
  const died = inst.exited.then(({ code, signal }) =>
    Promise.reject<T>(new Error(`instance ${inst.name} exited (code ${code}, signal ${signal}):\n${inst.output().slice(-800)}`)),
  );
  return Promise.race([p, died]);
}

const nested = (open: string, close: string, depth: number, inner = '0') => open.repeat(depth) + inner + close.repeat(depth);

// ---------------------------------------------------------------------------------------------
// One instance: everything that does not need a second one
// ---------------------------------------------------------------------------------------------

describe('hostile inputs (one instance)', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster(1, {
      API_KEYS: `${API_KEY},second-key-abcdefghijklmnop`,
      ALLOWED_ORIGINS: ALLOWED_ORIGIN,
      MAX_ROOMS_PER_CONNECTION: '5',
      MAX_CONNECTIONS_PER_USER: '3',
    });
  });
  after(() => cluster.stop());

  // Row 1: no token, bad signature, alg none, expired (and other malformed tokens).
  for (const kind of ['io', 'io-polling', 'ws'] as Kind[]) {
    it(`row 1 (${kind}): refuses the handshake without a valid token`, async () => {
      const sc = await scene(cluster, 'r1');
      const now = Math.floor(Date.now() / 1000);
      const key = new TextEncoder().encode(TEST_JWT_SECRET);
      const bad: [string, string | undefined][] = [
        ['no token', undefined],
        ['empty token', ''],
        ['bad signature', await tokenFor('mallory', { secret: 'some-other-secret-0123456789' })],
        ['alg none', algNoneToken('mallory')],
        ['expired', await tokenFor('mallory', { expiresInSec: -60 })],
        ['without exp', await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setIssuedAt(now).sign(key)],
        ['sub of 129 chars', await tokenFor('m'.repeat(129))],
        ['over 8192 chars', `${await tokenFor('mallory')}${'A'.repeat(9000)}`],
        ['not a JWT', 'not-a-jwt'],
      ];
      const expected = kind === 'ws' ? 'HTTP 401' : 'UNAUTHORIZED';
      await expectRefused(sc, async () => {
        for (const [label, token] of bad) {
          assert.equal(await handshakeRefusal(kind, sc.url, token), expected, `${label} over ${kind}`);
          if (kind === 'ws' && token)
            assert.equal(await handshakeRefusal(kind, sc.url, token, { queryToken: true }), expected, `${label} in the query`);
        }
      });
    });
  }

  // Row 2: covered by test/token-lifetime.test.ts (see the header of this file).

  // Row 3: foreign, null and look-alike origins.
  const BAD_ORIGINS = [
    'https://evil.example',
    'null',
    'https://allowed.example.evil.test',
    'http://allowed.example',
    'https://allowed.example:8443',
  ];

  it('row 3 (ws): refuses the upgrade from a foreign, null or look-alike Origin with 403', async () => {
    const sc = await scene(cluster, 'r3ws');
    const auth = { Authorization: `Bearer ${await tokenFor(uniq('mallory'))}` };
    await expectRefused(sc, async () => {
      for (const origin of BAD_ORIGINS) assert.equal(await upgrade(sc.url, '/ws', { ...auth, Origin: origin }), 'HTTP 403', origin);
    });
    assert.equal(await upgrade(sc.url, '/ws', { ...auth, Origin: ALLOWED_ORIGIN }), 'open', 'the allowed origin connects');
    assert.equal(await upgrade(sc.url, '/ws', auth), 'open', 'a request without Origin (not a browser) connects');
  });

  it('row 3 (io-polling): refuses the socket.io polling handshake from a bad Origin with 403', async () => {
    const sc = await scene(cluster, 'r3poll');
    const handshake = '/socket.io/?EIO=4&transport=polling';
    await expectRefused(sc, async () => {
      for (const origin of BAD_ORIGINS) {
        const res = await http(sc.url, 'GET', handshake, { headers: { Origin: origin } });
        assert.equal(res.status, 403, `${origin}: ${JSON.stringify(res.body)}`);
        assert.notEqual(res.headers['access-control-allow-origin'], origin, 'no CORS grant for a refused origin');
      }
    });
    const ok = await http(sc.url, 'GET', handshake, { headers: { Origin: ALLOWED_ORIGIN } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
    assert.equal((await http(sc.url, 'GET', handshake)).status, 200, 'without Origin');
  });

  it('row 3 (io websocket): refuses the socket.io websocket handshake from a bad Origin', async () => {
    const sc = await scene(cluster, 'r3iows');
    const path = '/socket.io/?EIO=4&transport=websocket';
    await expectRefused(sc, async () => {
      for (const origin of BAD_ORIGINS) {
        // engine.io answers every refused websocket handshake with 400, whatever allowRequest says.
        assert.match(await upgrade(sc.url, path, { Origin: origin }), /^HTTP 4\d\d$/, origin);
      }
    });
    assert.equal(await upgrade(sc.url, path, { Origin: ALLOWED_ORIGIN }), 'open');
  });

  // Row 4: a frame or packet over MAX_PAYLOAD_BYTES (64 KiB).
  it('row 4 (ws): closes the connection with 1009 for a frame over the payload limit', async () => {
    const sc = await scene(cluster, 'r4ws');
    const c = (await hostile(sc, 'ws')) as WsTestClient;
    await expectRefused(sc, async () => {
      c.sendRaw(JSON.stringify({ event: 'message.send', id: 'big', data: { roomId: sc.room, body: 'x'.repeat(70 * 1024) } }));
      assert.equal(await closedWithin(c), '1009');
    });
  });

  for (const kind of ['io', 'io-polling'] as Kind[]) {
    it(`row 4 (${kind}): disconnects a socket.io client whose packet is over the payload limit`, async () => {
      const sc = await scene(cluster, 'r4io');
      const c = await hostile(sc, kind);
      await expectRefused(sc, async () => {
        c.emit('message.send', { roomId: sc.room, body: 'x'.repeat(70 * 1024) });
        assert.match(await closedWithin(c), /^transport (close|error)$/);
      });
    });
  }

  it('row 4 (HTTP): answers 413 PAYLOAD_TOO_LARGE for a body over the payload limit', async () => {
    const sc = await scene(cluster, 'r4http');
    await expectRefused(sc, async () => {
      const res = await api(sc.url, 'POST', `/v1/rooms/${sc.room}/messages`, { senderId: 'svc', body: 'x'.repeat(70 * 1024) });
      assert.equal(res.status, 413, JSON.stringify(res.body).slice(0, 200));
      assert.equal(res.body?.error?.code, 'PAYLOAD_TOO_LARGE');
    });
  });

  // Row 5: a text frame that is not valid UTF-8.
  it('row 5 (ws): closes the connection with 1007 for a text frame that is not UTF-8', async () => {
    const sc = await scene(cluster, 'r5ws');
    const c = (await hostile(sc, 'ws')) as WsTestClient;
    await expectRefused(sc, async () => {
      const frame = Buffer.concat([
        Buffer.from(`{"event":"message.send","data":{"roomId":"${sc.room}","body":"`),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('"}}'),
      ]);
      c.ws.send(frame, { binary: false });
      assert.equal(await closedWithin(c), '1007');
    });
  });

  it('row 5 (io websocket): closes a socket.io websocket whose text frame is not UTF-8', async () => {
    const sc = await scene(cluster, 'r5io');
    const raw = await rawSocketIo(sc.url, await tokenFor(uniq('mallory')));
    await expectRefused(sc, async () => {
      raw.ws.send(
        Buffer.concat([Buffer.from(`42["message.send",{"roomId":"${sc.room}","body":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}]')]),
        {
          binary: false,
        },
      );
      assert.equal(await within(raw.closed, WAIT_MS, 'socket.io websocket close'), 1007);
    });
  });

  // Row 6: raw ws frames that are not requests at all.
  const NOT_REQUESTS: [string, (room: string) => string | Buffer][] = [
    ['text that is not JSON', () => 'not json {'],
    ['truncated JSON', (room) => `{"event":"message.send","data":{"roomId":"${room}","body":"x"`],
    ['JSON null', () => 'null'],
    ['JSON 123', () => '123'],
    ['JSON []', () => '[]'],
    ['JSON "x"', () => '"x"'],
    [
      'a binary frame holding a valid request',
      (room) => Buffer.from(JSON.stringify({ event: 'message.send', data: { roomId: room, body: 'binary' } })),
    ],
  ];
  for (const [label, frame] of NOT_REQUESTS) {
    it(`row 6 (ws): ${label} gets a BAD_REQUEST push and the connection stays usable`, async () => {
      const sc = await scene(cluster, 'r6');
      const c = (await hostile(sc, 'ws')) as WsTestClient;
      await expectRefused(sc, async () => {
        const e = await nextErrorPush(c, () => c.sendRaw(frame(sc.room)));
        assert.equal(e.code, 'BAD_REQUEST');
        assert.equal(typeof e.message, 'string');
        assert.equal(e.event, undefined, 'no event name for a frame that is not a request');
      });
      assert.ok(c.isOpen);
      assert.ok((await c.request('message.history', { roomId: sc.room })).ok, 'the connection is still usable');
    });
  }

  // Rows 6 and 7 on socket.io: the contract's BAD_REQUEST is raw ws only; socket.io's own parser
  // refuses malformed packets by closing that one connection, which must store nothing.
  it('rows 6-7 (socket.io): a malformed socket.io packet closes only that connection', async () => {
    const sc = await scene(cluster, 'r6io');
    const healthyIo = await hostile(sc, 'io', 'healthy');
    const packets = (room: string) => [
      `42["message.send",{"roomId":"${room}","body":"x"`,
      '42not json',
      '42[]',
      '42{"event":"message.send"}',
      `42[null,{"roomId":"${room}","body":"x"}]`,
      `42[{"event":"message.send"},{"roomId":"${room}","body":"x"}]`,
      '4x',
    ];
    await expectRefused(sc, async () => {
      for (const packet of packets(sc.room)) {
        const raw = await rawSocketIo(sc.url, await tokenFor(uniq('mallory')));
        raw.ws.send(packet);
        await within(raw.closed, WAIT_MS, `close after ${packet}`);
      }
    });
    assert.ok(healthyIo.isOpen, 'another socket.io client on the instance is unaffected');
    assert.ok((await healthyIo.request('message.history', { roomId: sc.room })).ok);
  });

  // Row 7: frames without `event` or with a non-string one.
  const NO_STRING_EVENT: [string, (room: string) => object][] = [
    ['without event', (room) => ({ data: { roomId: room, body: 'x' } })],
    ['with event 7', (room) => ({ event: 7, data: { roomId: room, body: 'x' } })],
    ['with event null', (room) => ({ event: null, data: { roomId: room, body: 'x' } })],
    ['with event ["message.send"]', (room) => ({ event: ['message.send'], data: { roomId: room, body: 'x' } })],
    ['with event {}', (room) => ({ event: {}, data: { roomId: room, body: 'x' } })],
  ];
  it('row 7 (ws): a frame without a string event gets BAD_REQUEST as a push, or as a reply to a string id', async () => {
    const sc = await scene(cluster, 'r7');
    const c = (await hostile(sc, 'ws')) as WsTestClient;
    await expectRefused(sc, async () => {
      for (const [label, frame] of NO_STRING_EVENT) {
        const e = await nextErrorPush(c, () => c.sendRaw(JSON.stringify(frame(sc.room))));
        assert.equal(e.code, 'BAD_REQUEST', `${label}, no id`);
        const e2 = await nextErrorPush(c, () => c.sendRaw(JSON.stringify({ ...frame(sc.room), id: 42 })));
        assert.equal(e2.code, 'BAD_REQUEST', `${label}, a numeric id counts as none`);
        const id = uniq('r7');
        const reply = await c.requestRaw(JSON.stringify({ ...frame(sc.room), id }), id);
        assertFailed(reply, 'BAD_REQUEST', undefined, `${label}, id`);
        assert.equal(reply.id, id);
      }
    });
    assert.ok((await c.request('message.history', { roomId: sc.room })).ok, 'the connection is still usable');
  });

  // Row 8: unknown events, prototype names included.
  for (const kind of ['io', 'io-polling', 'ws'] as Kind[]) {
    it(`row 8 (${kind}): UNKNOWN_EVENT for unknown and prototype event names, as a reply and as a push`, async () => {
      const sc = await scene(cluster, 'r8');
      const c = await hostile(sc, kind);
      const names = [
        'no.such.event',
        '__proto__',
        'constructor',
        'toString',
        'hasOwnProperty',
        'valueOf',
        'prototype',
        'MESSAGE.SEND',
        'message.send ',
        '',
      ];
      await expectRefused(sc, async () => {
        for (const event of names)
          assertFailed(await c.request(event, { roomId: sc.room, body: 'x' }), 'UNKNOWN_EVENT', undefined, `${kind} '${event}'`);
        for (const event of ['__proto__', 'constructor']) {
          const e = await nextErrorPush(c, () => c.emit(event, { roomId: sc.room, body: 'x' }));
          assert.deepEqual([e.code, e.event], ['UNKNOWN_EVENT', event]);
        }
        const long = `x${'y'.repeat(1000)}`;
        const e = await nextErrorPush(c, () => c.emit(long, {}));
        assert.equal(e.code, 'UNKNOWN_EVENT');
        assert.ok(e.event.length <= 128, 'the echoed event name is cut');
      });
      assert.ok((await c.request('message.history', { roomId: sc.room })).ok, 'the connection is still usable');
    });
  }

  it('row 8 (socket.io): a numeric event name with an ack gets UNKNOWN_EVENT', async () => {
    const sc = await scene(cluster, 'r8num');
    const raw = await rawSocketIo(sc.url, await tokenFor(uniq('mallory')));
    await expectRefused(sc, async () => {
      for (const event of [7, 0, -1]) {
        assertFailed(await rawRequest(raw, event, `{"roomId":"${sc.room}","body":"x"}`), 'UNKNOWN_EVENT', undefined, `event ${event}`);
      }
    });
    assert.ok((await rawRequest(raw, 'message.history', `{"roomId":"${sc.room}"}`)).ok, 'the connection is still usable');
    raw.ws.terminate();
  });
  // Row 8 without an ack on socket.io (a numeric event name) crashes the process: see the last suite.

  // Row 9: `data` that is not an object.
  for (const kind of SOCKET_KINDS) {
    it(`row 9 (${kind}): VALIDATION_FAILED with fields [] for data that is null, a number, an array, a string or missing`, async () => {
      const sc = await scene(cluster, 'r9');
      const c = await hostile(sc, kind);
      await expectRefused(sc, async () => {
        for (const event of [
          'message.send',
          'room.join',
          'room.leave',
          'message.history',
          'message.edit',
          'message.delete',
          'reaction.add',
          'reaction.remove',
          'message.changes',
        ]) {
          for (const data of [null, 42, 0, [sc.room, 'x'], [], 'x', '', true, undefined]) {
            assertFailed(await c.request(event, data), 'VALIDATION_FAILED', [], `${kind} ${event} ${describeValue(data)}`);
          }
        }
      });
      assert.equal(c.isOpen, true);
    });
  }

  // Row 10: prototype keys inside `data`.
  for (const kind of SOCKET_KINDS) {
    it(`row 10 (${kind}): __proto__, constructor and prototype keys in data are dropped, without pollution`, async () => {
      const sc = await scene(cluster, 'r10');
      const c = await hostile(sc, kind);
      const sub = c.session!.userId;
      const text =
        `{"roomId":"${sc.room}","body":"proto","clientMsgId":"proto-1",` +
        `"__proto__":{"polluted":"yes","senderId":"admin","seq":1000,"roomId":"elsewhere"},` +
        `"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"}}`;
      let reply: Reply;
      if (kind === 'ws') {
        const ws = c as WsTestClient;
        reply = await ws.requestRaw(`{"event":"message.send","id":"p10","data":${text}}`, 'p10');
      } else {
        reply = await c.request('message.send', JSON.parse(text));
      }
      assert.equal(reply.ok, true, JSON.stringify(reply));
      const m = reply.data;
      assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS, 'exactly the Message keys');
      assert.deepEqual([m.roomId, m.senderId, m.body, m.clientMsgId, m.seq], [sc.room, sub, 'proto', 'proto-1', 1]);
      const rows = await cluster.db.query<Record<string, unknown>>('SELECT * FROM messages WHERE id = $1', [m.id]);
      assert.equal(rows.length, 1);
      assert.deepEqual(Object.keys(rows[0]).sort(), MESSAGE_KEYS.map((k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).sort());
      assert.deepEqual([rows[0].room_id, rows[0].sender_id, rows[0].body], [sc.room, sub, 'proto']);
      for (const o of sc.observers) {
        const pushed = await o.waitFor('message.new', (d) => d.id === m.id);
        assert.deepEqual(Object.keys(pushed).sort(), MESSAGE_KEYS);
      }
      // A roomId supplied only through __proto__ does not count.
      await expectRefused(sc, async () => {
        const only = `{"__proto__":{"roomId":"${sc.room}","body":"x"}}`;
        const r =
          kind === 'ws'
            ? await (c as WsTestClient).requestRaw(`{"event":"message.send","id":"p10b","data":${only}}`, 'p10b')
            : await c.request('message.send', JSON.parse(only));
        assertFailed(r, 'VALIDATION_FAILED', ['roomId', 'body']);
      });
      const page = await c.ok('message.history', { roomId: sc.room });
      for (const msg of page.messages) assert.deepEqual(Object.keys(msg).sort(), MESSAGE_KEYS);
    });
  }

  for (const kind of SOCKET_KINDS) {
    it(`row 10 (${kind}): prototype names as roomIds and user ids are ordinary names`, async () => {
      const sc = await scene(cluster, 'r10names');
      // Both transports' runs use the same names: a user and a room named like an Object.prototype member.
      for (const name of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__']) {
        const c = cluster.track(await openClient(kind, sc.url, await tokenFor(name)));
        assert.equal(c.session!.userId, name);
        const m = await c.ok('message.send', { roomId: sc.room, body: `from ${name}` });
        assert.equal(m.senderId, name);
        for (const o of sc.observers) await o.waitFor('message.new', (d) => d.id === m.id);
        if (name === '__proto__') continue; // not a valid roomId: it must start with a letter or digit
        const roomId = name;
        const joined = await c.ok('room.join', { roomId });
        assert.deepEqual([joined.roomId, typeof joined.lastSeq], [roomId, 'number']);
        const inRoom = await c.ok('message.send', { roomId, body: 'in a room named after a prototype member' });
        await c.waitFor('message.new', (d) => d.id === inRoom.id);
        const page = await c.ok('message.history', { roomId });
        assert.equal(page.messages.at(-1).id, inRoom.id);
        c.close();
      }
      await expectServiceHealthy(sc);
    });
  }

  it('row 10 (HTTP): __proto__ keys in a posted body are dropped', async () => {
    const sc = await scene(cluster, 'r10http');
    const body = `{"senderId":"svc","body":"proto over http","__proto__":{"senderId":"admin","polluted":true},"constructor":{"prototype":{"polluted":true}}}`;
    const res = await http(sc.url, 'POST', `/v1/rooms/${sc.room}/messages`, {
      headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
      body,
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body).sort(), MESSAGE_KEYS);
    assert.equal(res.body.senderId, 'svc');
    for (const o of sc.observers) await o.waitFor('message.new', (d) => d.id === res.body.id);
    await expectServiceHealthy(sc);
  });

  // Row 11: deeply nested JSON.
  for (const kind of SOCKET_KINDS) {
    it(`row 11 (${kind}): data nested thousands of levels deep is refused with VALIDATION_FAILED`, async () => {
      const sc = await scene(cluster, 'r11');
      const c = await hostile(sc, kind);
      // The ws frame is built as text (up to 25,000 levels, under 64 KiB); socket.io-client serialises objects itself.
      const shapes: [string, string, number[]][] = [
        // socket.io-client cannot serialise much deeper than 3000 (V8's JSON.stringify gives up near 4000).
        ['[', ']', kind === 'ws' ? [32, 5000, 25_000] : [32, 1000, 3000]],
        ['{"a":', '}', kind === 'ws' ? [32, 5000, 10_000] : [32, 1000, 3000]],
      ];
      await expectRefused(sc, async () => {
        for (const [open, close, depths] of shapes) {
          for (const depth of depths) {
            const extra = nested(open, close, depth);
            const dataText = `{"roomId":"${sc.room}","body":"deep","x":${extra}}`;
            const r =
              kind === 'ws'
                ? await (c as WsTestClient).requestRaw(`{"event":"message.send","id":"d${depth}","data":${dataText}}`, `d${depth}`)
                : await c.request('message.send', JSON.parse(dataText));
            assertFailed(r, 'VALIDATION_FAILED', ['x'], `${kind} ${open} x ${depth}`);
          }
        }
        if (kind === 'io') {
          // Deeper than socket.io-client can go: a hand-written packet, 25,000 levels.
          const raw = await rawSocketIo(sc.url, await tokenFor(uniq('mallory')));
          const r = await rawRequest(raw, 'message.send', `{"roomId":"${sc.room}","body":"deep","x":${nested('[', ']', 25_000)}}`);
          assertFailed(r, 'VALIDATION_FAILED', ['x'], 'raw socket.io packet, 25,000 levels');
          raw.ws.terminate();
        }
      });
      // 32 levels in all (data itself is the first) are still fine; the unknown key is dropped.
      const ok = await c.ok('message.send', { roomId: sc.room, body: 'shallow enough', x: JSON.parse(nested('[', ']', 31)) });
      assert.deepEqual(Object.keys(ok).sort(), MESSAGE_KEYS);
    });
  }

  it('row 11 (HTTP): room metadata nested thousands of levels deep is refused with 400 VALIDATION_FAILED', async () => {
    const sc = await scene(cluster, 'r11http');
    await expectRefused(sc, async () => {
      for (const [open, close, depth] of [
        ['{"a":', '}', 10_000],
        ['[', ']', 30_000],
      ] as const) {
        const body = `{"visibility":"private","metadata":{"x":${nested(open, close, depth)}}}`;
        const res = await http(sc.url, 'PUT', `/v1/rooms/${sc.room}`, {
          headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
          body,
        });
        assert.equal(res.status, 400, `${open} x ${depth}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.error?.code, 'VALIDATION_FAILED');
        assert.deepEqual(res.body?.error?.details?.fields, ['metadata']);
      }
    });
    assert.equal((await api(sc.url, 'GET', `/v1/rooms/${sc.room}`)).body.visibility, 'public', 'the room was not changed');
  });

  // Row 12: missing or wrongly typed fields, named in details.fields.
  for (const kind of SOCKET_KINDS) {
    it(`row 12 (${kind}): VALIDATION_FAILED naming the missing or wrongly typed field`, async () => {
      const sc = await scene(cluster, 'r12');
      const c = await hostile(sc, kind);
      const R = sc.room;
      const cases: [string, object, string[]][] = [
        ['message.send', { body: 'x' }, ['roomId']],
        ['message.send', { roomId: R }, ['body']],
        ['message.send', {}, ['roomId', 'body']],
        ['message.send', { roomId: 42, body: 'x' }, ['roomId']],
        ['message.send', { roomId: [R], body: 'x' }, ['roomId']],
        ['message.send', { roomId: R, body: 42 }, ['body']],
        ['message.send', { roomId: R, body: ['x'] }, ['body']],
        ['message.send', { roomId: R, body: { text: 'x' } }, ['body']],
        ['message.send', { roomId: R, body: null }, ['body']],
        ['message.send', { roomId: R, body: 'x', clientMsgId: 42 }, ['clientMsgId']],
        ['message.send', { roomId: R, body: 'x', clientMsgId: null }, ['clientMsgId']],
        ['message.send', { roomId: R, body: 'x', clientMsgId: '' }, ['clientMsgId']],
        ['message.send', { roomId: R, body: 'x', clientMsgId: 'has space' }, ['clientMsgId']],
        ['message.send', { roomId: R, body: 'x', clientMsgId: 'x'.repeat(65) }, ['clientMsgId']],
        ['room.join', {}, ['roomId']],
        ['room.join', { roomId: R, sinceSeq: -1 }, ['sinceSeq']],
        ['room.join', { roomId: R, sinceSeq: '3' }, ['sinceSeq']],
        ['room.join', { roomId: R, sinceSeq: 1.5 }, ['sinceSeq']],
        ['room.join', { roomId: R, sinceSeq: null }, ['sinceSeq']],
        ['room.leave', { roomId: null }, ['roomId']],
        ['message.history', { roomId: R, beforeSeq: '5' }, ['beforeSeq']],
        ['message.history', { roomId: R, afterSeq: -2 }, ['afterSeq']],
        ['message.history', { roomId: R, afterSeq: 2 ** 53 }, ['afterSeq']],
        ['message.history', { roomId: R, afterSeq: null }, ['afterSeq']],
      ];
      await expectRefused(sc, async () => {
        for (const [event, data, fields] of cases) {
          assertFailed(await c.request(event, data), 'VALIDATION_FAILED', fields, `${kind} ${event} ${describeValue(data)}`);
        }
      });
      assert.equal(c.pushesOf('message.new').length, 0, 'a refused join subscribes to nothing');
    });
  }

  // The events of "Message changes": every new field, and the refusals in the contract's order.
  for (const kind of SOCKET_KINDS) {
    it(`message changes (${kind}): bad edits, deletes, reactions, replies, mentions and catch-up queries are refused, take no modSeq and push nothing`, async () => {
      const sc = await scene(cluster, 'mc');
      const c = await hostile(sc, kind);
      const R = sc.room;
      const target = await sc.bystander.ok('message.send', { roomId: R, body: 'the target' });
      const reply = await sc.bystander.ok('message.send', { roomId: R, body: 'a reply', parentSeq: target.seq });
      const { lastModSeq } = await c.ok('message.changes', { roomId: R, afterModSeq: 0 });
      await sleep(SETTLE_MS);
      const updates = sc.observers.map((o) => o.pushesOf('message.updated').length);
      const T = target.seq;
      const V = 'VALIDATION_FAILED';
      const cases: [string, object, string, string[]?][] = [
        ['message.edit', { roomId: R, seq: -1, body: 'x' }, V, ['seq']],
        ['message.edit', { roomId: R, seq: '1', body: 'x' }, V, ['seq']],
        ['message.edit', { roomId: R, seq: 1.5, body: 'x' }, V, ['seq']],
        ['message.edit', { roomId: R, seq: T }, V, ['body']],
        ['message.edit', { roomId: R, seq: T, body: ' \u3000 ' }, V, ['body']],
        ['message.edit', { roomId: R, seq: T, body: 'a\u0000b' }, V, ['body']],
        ['message.edit', { roomId: R, seq: T, body: 'x', expectedVersion: 0 }, V, ['expectedVersion']],
        ['message.edit', { roomId: R, seq: T, body: 'x', mentions: 'bob' }, V, ['mentions']],
        ['message.edit', { roomId: R, seq: T, body: 'x', mentions: [''] }, V, ['mentions']],
        ['message.edit', { roomId: R, seq: 999, body: 'x' }, 'NOT_FOUND'],
        ['message.edit', { roomId: R, seq: T, body: 'not mine' }, 'FORBIDDEN'],
        ['message.edit', { roomId: R, seq: T, body: 'not mine', expectedVersion: 7 }, 'FORBIDDEN'],
        ['message.edit', { roomId: uniq('nowhere'), seq: 1, body: 'x' }, 'NOT_FOUND'],
        ['message.delete', { roomId: R, seq: null }, V, ['seq']],
        ['message.delete', { roomId: R, seq: T }, 'FORBIDDEN'],
        ['message.delete', { roomId: R, seq: 0 }, 'NOT_FOUND'],
        ['reaction.add', { roomId: R, seq: T, key: '' }, V, ['key']],
        ['reaction.add', { roomId: R, seq: T, key: 'a b' }, V, ['key']],
        ['reaction.add', { roomId: R, seq: T, key: 'x'.repeat(33) }, V, ['key']],
        ['reaction.add', { roomId: R, seq: T, key: '\u0000' }, V, ['key']],
        ['reaction.add', { roomId: R, seq: T, key: '\u200b\u2028' }, V, ['key']],
        ['reaction.add', { roomId: R, seq: T, key: '\ud800' }, V, ['key']],
        ['reaction.add', { roomId: R, seq: T, key: 42 }, V, ['key']],
        ['reaction.add', { roomId: R, seq: 999, key: 'x' }, 'NOT_FOUND'],
        ['reaction.remove', { roomId: R, seq: T }, V, ['key']],
        ['message.send', { roomId: R, body: 'x', parentSeq: reply.seq }, V, ['parentSeq']],
        ['message.send', { roomId: R, body: 'x', parentSeq: 999 }, V, ['parentSeq']],
        ['message.send', { roomId: R, body: 'x', parentSeq: -1 }, V, ['parentSeq']],
        ['message.send', { roomId: R, body: 'x', mentions: Array.from({ length: 51 }, (_, i) => `u${i}`) }, V, ['mentions']],
        ['message.send', { roomId: R, body: 'x', mentions: [42] }, V, ['mentions']],
        ['message.changes', { roomId: R }, V, ['afterModSeq']],
        ['message.changes', { roomId: R, afterModSeq: -1 }, V, ['afterModSeq']],
        ['message.changes', { roomId: R, afterModSeq: 0, limit: 101 }, V, ['limit']],
        ['message.changes', { roomId: R, afterModSeq: 0, limit: 0 }, V, ['limit']],
        ['message.history', { roomId: R, parentSeq: 'x' }, V, ['parentSeq']],
        ['room.join', { roomId: R, sinceModSeq: -1 }, V, ['sinceModSeq']],
      ];
      await expectRefused(sc, async () => {
        for (const [event, data, code, fields] of cases)
          assertFailed(await c.request(event, data), code, fields, `${kind} ${event} ${describeValue(data)}`);
      });
      assert.equal(
        (await c.ok('message.changes', { roomId: R, afterModSeq: 0 })).lastModSeq,
        lastModSeq + 1,
        'only the bystander send took a modSeq',
      );
      sc.observers.forEach((o, i) =>
        assert.equal(o.pushesOf('message.updated').length, updates[i], `no message.updated to the ${o.kind} observer`),
      );
    });
  }

  // Row 13: empty, white-space-only and over-length bodies.
  for (const kind of SOCKET_KINDS) {
    it(`row 13 (${kind}): VALIDATION_FAILED for empty, white-space-only and over-length bodies`, async () => {
      const sc = await scene(cluster, 'r13');
      const c = await hostile(sc, kind);
      const bodies = [
        '',
        ' ',
        '\n\t \r',
        '\u00a0\u2003\u3000',
        '\u0085',
        '\u2028\u2029',
        'x'.repeat(4001),
        '😀'.repeat(4001),
        `${'x'.repeat(4000)} `,
      ];
      await expectRefused(sc, async () => {
        for (const body of bodies) {
          assertFailed(
            await c.request('message.send', { roomId: sc.room, body }),
            'VALIDATION_FAILED',
            ['body'],
            `${kind} body ${describeValue(body)}`,
          );
        }
      });
      // The limit counts code points: 4000 emoji (8000 UTF-16 units) are within it, and stored as sent.
      const m = await c.ok('message.send', { roomId: sc.room, body: '😀'.repeat(4000) });
      assert.equal(m.body, '😀'.repeat(4000));
    });
  }

  // Row 14: NUL in the body or the roomId (and lone surrogates, which Postgres could not store either).
  for (const kind of SOCKET_KINDS) {
    it(`row 14 (${kind}): VALIDATION_FAILED for NUL in body or roomId, before the database`, async () => {
      const sc = await scene(cluster, 'r14');
      const c = await hostile(sc, kind);
      const cases: [string, object, string[]][] = [
        ['message.send', { roomId: sc.room, body: 'a\u0000b' }, ['body']],
        ['message.send', { roomId: sc.room, body: '\u0000' }, ['body']],
        ['message.send', { roomId: sc.room, body: 'lone \ud800 surrogate' }, ['body']],
        ['message.send', { roomId: `${sc.room}\u0000`, body: 'x' }, ['roomId']],
        ['message.send', { roomId: `nul\u0000room`, body: 'x' }, ['roomId']],
        ['room.join', { roomId: `${sc.room}\u0000` }, ['roomId']],
        ['room.leave', { roomId: `${sc.room}\u0000` }, ['roomId']],
        ['message.history', { roomId: `${sc.room}\u0000` }, ['roomId']],
      ];
      await expectRefused(sc, async () => {
        for (const [event, data, fields] of cases) {
          assertFailed(await c.request(event, data), 'VALIDATION_FAILED', fields, `${kind} ${event} ${describeValue(data)}`);
        }
      });
      assert.doesNotMatch(cluster.instances[0].output(), /invalid byte sequence/, 'no NUL ever reached Postgres');
    });
  }

  // Row 14, every other stored string: what Postgres text or jsonb would refuse (NUL) or alter (a
  // lone surrogate becomes U+FFFD; jsonb refuses its \ud800 escape) is refused with the field named.
  const UNSTORABLE = ['a\u0000b', 'lone \ud800 high', '\udc00 lone low'];

  it('row 14 (HTTP): VALIDATION_FAILED naming senderId, userId, title or metadata for NUL and lone surrogates, before the database', async () => {
    const sc = await scene(cluster, 'r14http');
    const R = sc.room;
    const cases: [string, string, unknown, string[]][] = [['PUT', `/v1/rooms/${R}/members/a%00b`, undefined, ['userId']]];
    for (const bad of UNSTORABLE)
      cases.push(
        ['POST', `/v1/rooms/${R}/messages`, { senderId: bad, body: 'x' }, ['senderId']],
        ['PUT', `/v1/rooms/${R}`, { visibility: 'public', title: bad }, ['title']],
        ['PUT', `/v1/rooms/${R}`, { visibility: 'public', metadata: { topic: bad } }, ['metadata']],
        ['PUT', `/v1/rooms/${R}`, { visibility: 'public', metadata: { [bad]: 1 } }, ['metadata']],
        ['PUT', `/v1/rooms/${R}`, { visibility: 'public', metadata: { a: { b: [1, { c: bad }] } } }, ['metadata']],
      );
    await expectRefused(sc, async () => {
      for (const [method, path, body, fields] of cases) {
        const res = await api(sc.url, method, path, body);
        const what = `${method} ${path} ${describeValue(body)}`;
        assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.error?.code, 'VALIDATION_FAILED', `${what}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(res.body?.error?.details?.fields, fields, `${what}: ${JSON.stringify(res.body)}`);
      }
      const disconnect = await api(sc.url, 'POST', '/v1/users/a%00b/disconnect');
      assert.equal(disconnect.status, 400, JSON.stringify(disconnect.body));
      assert.deepEqual(disconnect.body?.error?.details?.fields, ['userId']);
    });
    const room = (await api(sc.url, 'GET', `/v1/rooms/${R}`)).body;
    assert.deepEqual([room.title, room.metadata], [null, null], 'the room was not changed');
    assert.doesNotMatch(cluster.instances[0].output(), /invalid byte sequence|Unicode escape|surrogate/i, 'nothing reached Postgres');
  });

  for (const kind of ['io', 'io-polling', 'ws'] as Kind[]) {
    it(`row 14 (${kind}): a token whose sub has NUL or a lone surrogate is refused at the handshake (UNAUTHORIZED / 401)`, async () => {
      const sc = await scene(cluster, 'r14sub');
      const expected = kind === 'ws' ? 'HTTP 401' : 'UNAUTHORIZED';
      await expectRefused(sc, async () => {
        for (const sub of UNSTORABLE)
          assert.equal(await handshakeRefusal(kind, sc.url, await tokenFor(sub)), expected, JSON.stringify(sub));
      });
    });
  }

  // Row 15: roomIds outside ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$.
  const BAD_ROOM_IDS = [
    'has space',
    ' lead',
    'trail ',
    'a/b',
    '../etc/passwd',
    'a\\b',
    'x'.repeat(129),
    'l\u043ebby', // Cyrillic o
    '\uff4cobby', // full-width l
    'lobby\u200b', // zero-width space
    '\u2113obby', // script l
    'caf\u00e9',
    '',
    '-lead',
    '.hidden',
    'a\nb',
    'room%20x',
    'a?b',
  ];
  for (const kind of SOCKET_KINDS) {
    it(`row 15 (${kind}): VALIDATION_FAILED for roomIds with spaces, slashes, 129 chars or unicode look-alikes`, async () => {
      const sc = await scene(cluster, 'r15');
      const c = await hostile(sc, kind);
      await expectRefused(sc, async () => {
        for (const roomId of BAD_ROOM_IDS) {
          for (const [event, data] of [
            ['message.send', { roomId, body: 'x' }],
            ['room.join', { roomId }],
            ['message.history', { roomId }],
          ] as const) {
            assertFailed(await c.request(event, data), 'VALIDATION_FAILED', ['roomId'], `${kind} ${event} ${describeValue(roomId)}`);
          }
        }
      });
      // The longest and most varied valid roomIds are fine.
      for (const roomId of ['R'.repeat(128), `A.b_c:d-${unique}`]) assert.equal((await c.ok('room.join', { roomId })).roomId, roomId);
    });
  }

  // Row 16: server-assigned fields set by the client.
  for (const kind of SOCKET_KINDS) {
    it(`row 16 (${kind}): client-set senderId, seq, id and createdAt are ignored`, async () => {
      const sc = await scene(cluster, 'r16');
      const c = await hostile(sc, kind);
      const sub = c.session!.userId;
      const fake = { senderId: 'admin', seq: 999, id: '00000000-0000-4000-8000-000000000000', createdAt: '2000-01-01T00:00:00.000Z' };
      const started = Date.now();
      const m = await c.ok('message.send', { roomId: sc.room, body: 'who am I', ...fake });
      assert.equal(m.senderId, sub);
      assert.equal(m.seq, 1, 'the first message of the room');
      assert.notEqual(m.id, fake.id);
      assert.match(m.id, /^[0-9a-f-]{36}$/);
      assert.notEqual(m.createdAt, fake.createdAt);
      assert.ok(Math.abs(Date.parse(m.createdAt) - started) < 60_000, `createdAt is the server's: ${m.createdAt}`);
      const [row] = await cluster.db.query<{ sender_id: string; seq: string }>('SELECT sender_id, seq FROM messages WHERE id = $1', [m.id]);
      assert.deepEqual([row.sender_id, Number(row.seq)], [sub, 1]);
      assert.equal((await cluster.db.query('SELECT 1 FROM messages WHERE id = $1', [fake.id])).length, 0);
      for (const o of sc.observers) assert.deepEqual(await o.waitFor('message.new', (d) => d.id === m.id), m);
      const second = await c.ok('message.send', { roomId: sc.room, body: 'again', seq: 1, senderId: sc.observers[0].session!.userId });
      assert.deepEqual([second.seq, second.senderId], [2, sub]);
    });
  }

  // Row 17: markup in bodies.
  for (const kind of SOCKET_KINDS) {
    it(`row 17 (${kind}): <script> and <img onerror> bodies are stored and delivered verbatim`, async () => {
      const sc = await scene(cluster, 'r17');
      const c = await hostile(sc, kind);
      const bodies = [
        '<script>alert(document.cookie)</script>',
        '<img src=x onerror="alert(1)">',
        '</script><script>alert(1)</script>',
        '&lt;b&gt; &amp; "double" \'single\' `tick` \\ ${x}',
        ' <b>kept white space</b> ',
      ];
      for (const body of bodies) {
        const m = await c.ok('message.send', { roomId: sc.room, body });
        assert.equal(m.body, body, 'reply');
        const [row] = await cluster.db.query<{ body: string }>('SELECT body FROM messages WHERE id = $1', [m.id]);
        assert.equal(row.body, body, 'stored');
        for (const o of sc.observers) assert.equal((await o.waitFor('message.new', (d) => d.id === m.id)).body, body, 'pushed');
      }
      const page = await c.ok('message.history', { roomId: sc.room });
      assert.deepEqual(
        page.messages.map((m: any) => m.body),
        bodies,
        'history',
      );
      const viaHttp = await api(sc.url, 'GET', `/v1/rooms/${sc.room}/messages`);
      assert.deepEqual(
        viaHttp.body.messages.map((m: any) => m.body),
        bodies,
        'HTTP history',
      );
    });
  }

  // Row 18: a repeated clientMsgId (across instances: see the two-instance suite below).
  for (const kind of SOCKET_KINDS) {
    it(`row 18 (${kind}): a repeated clientMsgId returns the stored message and is not broadcast again`, async () => {
      const sc = await scene(cluster, 'r18');
      const user = uniq('repeater');
      const c = cluster.track(await openClient(kind, sc.url, await tokenFor(user)));
      const other = cluster.track(await openClient(kind === 'ws' ? 'io' : 'ws', sc.url, await tokenFor(user)));
      const first = await c.ok('message.send', { roomId: sc.room, body: 'original', clientMsgId: 'dup-1' });
      for (const o of sc.observers) await o.waitFor('message.new', (d) => d.id === first.id);
      await expectRefused(sc, async () => {
        const again = await c.ok('message.send', { roomId: sc.room, body: 'changed', clientMsgId: 'dup-1' });
        assert.deepEqual(again, first, 'the same message, body of the repeat ignored');
        const fromOther = await other.ok('message.send', { roomId: sc.room, body: 'other transport', clientMsgId: 'dup-1' });
        assert.deepEqual(fromOther, first, 'the same message from the other transport');
        const burst = await Promise.all(
          [1, 2, 3, 4].map((i) => (i % 2 ? c : other).ok('message.send', { roomId: sc.room, body: `race ${i}`, clientMsgId: 'dup-1' })),
        );
        for (const m of burst) assert.deepEqual(m, first, 'concurrent repeats');
      });
      for (const o of sc.observers)
        assert.equal(o.messagesIn(sc.room).filter((m) => m.clientMsgId === 'dup-1').length, 1, `one push to the ${o.kind} observer`);
      // The key is per sender: another user's clientMsgId is their own.
      const mallory = await hostile(sc, kind);
      const theirs = await mallory.ok('message.send', { roomId: sc.room, body: 'mine', clientMsgId: 'dup-1' });
      assert.notEqual(theirs.id, first.id);
      assert.equal(theirs.body, 'mine');
    });
  }

  // Row 19: requests without ack / id.
  for (const kind of SOCKET_KINDS) {
    it(`row 19 (${kind}): message.send without ack is stored and delivered; its failure comes as an error push`, async () => {
      const sc = await scene(cluster, 'r19');
      const c = await hostile(sc, kind);
      await c.ok('room.join', { roomId: sc.room });
      const before = await counts(cluster);
      c.emit('message.send', { roomId: sc.room, body: 'fire and forget', clientMsgId: 'ff-1' });
      for (const o of [...sc.observers, c]) await o.waitFor('message.new', (d) => d.clientMsgId === 'ff-1' && d.body === 'fire and forget');
      assert.equal((await counts(cluster)).messages, before.messages + 1, 'stored');
      assert.equal(c.pushesOf('error').length, 0, 'success sends nothing but the push');
      await expectRefused(sc, async () => {
        const e = await nextErrorPush(c, () => c.emit('message.send', { roomId: sc.room, body: '   ' }));
        assert.deepEqual([e.code, e.event, e.details?.fields], ['VALIDATION_FAILED', 'message.send', ['body']]);
        const e2 = await nextErrorPush(c, () => c.emit('message.history', { roomId: sc.room, limit: 0 }));
        assert.deepEqual([e2.code, e2.event], ['VALIDATION_FAILED', 'message.history']);
      });
    });
  }

  // Row 20: history limits outside 1-100 or not integers.
  for (const kind of SOCKET_KINDS) {
    it(`row 20 (${kind}): VALIDATION_FAILED for history limit 0, -1, 101, 1e9, "10"`, async () => {
      const sc = await scene(cluster, 'r20');
      const c = await hostile(sc, kind);
      await expectRefused(sc, async () => {
        for (const limit of [0, -1, 101, 1e9, '10', 1.5, null, Number.MAX_SAFE_INTEGER + 2, [10], { n: 10 }]) {
          assertFailed(
            await c.request('message.history', { roomId: sc.room, limit }),
            'VALIDATION_FAILED',
            ['limit'],
            `${kind} limit ${describeValue(limit)}`,
          );
        }
      });
      for (const limit of [1, 100])
        assert.ok((await c.request('message.history', { roomId: sc.room, limit })).ok, `limit ${limit} is fine`);
    });
  }

  // Row 21: beforeSeq and afterSeq together.
  for (const kind of SOCKET_KINDS) {
    it(`row 21 (${kind}): VALIDATION_FAILED for beforeSeq and afterSeq together`, async () => {
      const sc = await scene(cluster, 'r21');
      const c = await hostile(sc, kind);
      await expectRefused(sc, async () => {
        for (const [beforeSeq, afterSeq] of [
          [5, 1],
          [0, 0],
          [1, 100],
        ]) {
          assertFailed(
            await c.request('message.history', { roomId: sc.room, beforeSeq, afterSeq }),
            'VALIDATION_FAILED',
            ['beforeSeq'],
            `${beforeSeq}/${afterSeq}`,
          );
        }
      });
    });
  }

  // Row 22: a private room and a user who is not a member.
  for (const kind of SOCKET_KINDS) {
    it(`row 22 (${kind}): FORBIDDEN for a non-member's join, send and history of a private room`, async () => {
      const sc = await scene(cluster, 'r22', { privateRoom: true });
      await sc.bystander.ok('message.send', { roomId: sc.room, body: 'members only' });
      const c = await hostile(sc, kind);
      const lastSeq = async () =>
        Number((await cluster.db.query<{ last_seq: string }>('SELECT last_seq FROM rooms WHERE id = $1', [sc.room]))[0].last_seq);
      const seqBefore = await lastSeq();
      await expectRefused(sc, async () => {
        assertFailed(await c.request('room.join', { roomId: sc.room }), 'FORBIDDEN', undefined, 'join');
        assertFailed(await c.request('room.join', { roomId: sc.room, sinceSeq: 0 }), 'FORBIDDEN', undefined, 'join with sinceSeq');
        assertFailed(await c.request('message.send', { roomId: sc.room, body: 'let me in' }), 'FORBIDDEN', undefined, 'send');
        assertFailed(
          await c.request('message.send', { roomId: sc.room, body: 'let me in', clientMsgId: 'x1' }),
          'FORBIDDEN',
          undefined,
          'send with clientMsgId',
        );
        assertFailed(await c.request('message.history', { roomId: sc.room }), 'FORBIDDEN', undefined, 'history');
        assertFailed(
          await c.request('message.history', { roomId: sc.room, afterSeq: 0, limit: 100 }),
          'FORBIDDEN',
          undefined,
          'history afterSeq',
        );
        const e = await nextErrorPush(c, () => c.emit('message.send', { roomId: sc.room, body: 'no ack' }));
        assert.deepEqual([e.code, e.event], ['FORBIDDEN', 'message.send']);
      });
      assert.equal(await lastSeq(), seqBefore + 1, 'only the bystander check advanced the room: refused sends took no seq');
      // Members' messages never reach the refused connection.
      const m = await sc.observers[0].ok('message.send', { roomId: sc.room, body: 'secret' });
      await sc.observers[1].waitFor('message.new', (d) => d.id === m.id);
      await sleep(SETTLE_MS);
      assert.equal(c.pushesOf('message.new').length, 0, 'the non-member received nothing');
      assert.ok(
        c.pushes.every(
          (p) => !JSON.stringify(p.data ?? null).includes('secret') && !JSON.stringify(p.data ?? null).includes('members only'),
        ),
        'no private content leaked',
      );
    });
  }

  // Row 23: joining many rooms on one connection (MAX_ROOMS_PER_CONNECTION=5 here).
  for (const kind of SOCKET_KINDS) {
    it(`row 23 (${kind}): joins past MAX_ROOMS_PER_CONNECTION get LIMIT_EXCEEDED`, async () => {
      const sc = await scene(cluster, 'r23');
      const c = await hostile(sc, kind);
      const mine = Array.from({ length: 5 }, () => uniq('r23-own'));
      for (const roomId of mine) await c.ok('room.join', { roomId });
      await c.ok('room.join', { roomId: mine[0] }); // joining a joined room again takes no slot
      await expectRefused(sc, async () => {
        assertFailed(await c.request('room.join', { roomId: sc.room }), 'LIMIT_EXCEEDED', undefined, 'sixth room');
        assertFailed(
          await c.request('room.join', { roomId: sc.room, sinceSeq: 0 }),
          'LIMIT_EXCEEDED',
          undefined,
          'sixth room with sinceSeq',
        );
      });
      assert.equal(c.messagesIn(sc.room).length, 0, 'the refused room pushes nothing to the connection');
      await c.ok('room.leave', { roomId: mine[1] });
      await c.ok('room.join', { roomId: sc.room }); // a freed slot can be used
      const m = await sc.bystander.ok('message.send', { roomId: sc.room, body: 'now joined' });
      await c.waitFor('message.new', (d) => d.id === m.id);
    });
  }

  for (const kind of SOCKET_KINDS) {
    it(`row 23 (${kind}): a join refused with LIMIT_EXCEEDED creates no room`, async () => {
      const sc = await scene(cluster, 'r23new');
      const c = await hostile(sc, kind);
      for (let i = 0; i < 5; i++) await c.ok('room.join', { roomId: uniq('r23-own') });
      const fresh = uniq('r23-fresh');
      await expectRefused(sc, async () => {
        assertFailed(await c.request('room.join', { roomId: fresh }), 'LIMIT_EXCEEDED', undefined, 'a room that does not exist yet');
      });
      assert.equal((await api(sc.url, 'GET', `/v1/rooms/${fresh}`)).status, 404, 'the refused room does not exist');
    });
  }

  // Row 24 (per connection): a flood from one connection; the per-user budget across instances is below.
  for (const kind of SOCKET_KINDS) {
    it(`row 24 (${kind}): a flood from one connection gets RATE_LIMITED with retryAfterMs, then a disconnect`, async () => {
      const sc = await scene(cluster, 'r24');
      const user = uniq('flooder');
      const c = cluster.track(await openClient(kind, sc.url, await tokenFor(user)));
      const second = cluster.track(await openClient(kind === 'ws' ? 'io' : 'ws', sc.url, await tokenFor(user)));
      const replies: Reply[] = [];
      await expectRefused(sc, async () => {
        const closed = c.whenClosed();
        if (kind === 'ws') {
          const ws = (c as WsTestClient).ws;
          ws.on('message', (raw) => {
            const frame = JSON.parse(raw.toString());
            if (typeof frame.id === 'string' && frame.id.startsWith('flood')) replies.push(frame);
          });
          for (let i = 0; i < 400; i++)
            ws.send(JSON.stringify({ event: 'message.history', id: `flood${i}`, data: { roomId: sc.room, limit: 1 } }));
        } else {
          const socket = (c as IoTestClient).socket;
          for (let i = 0; i < 400; i++) socket.emit('message.history', { roomId: sc.room, limit: 1 }, (r: Reply) => replies.push(r));
        }
        assert.equal(await within(closed, WAIT_MS, 'disconnect of the flooder'), kind === 'ws' ? '1008' : 'io server disconnect');
      });
      const limited = replies.filter((r) => r.error?.code === 'RATE_LIMITED');
      assert.ok(limited.length > 0, `RATE_LIMITED among ${replies.length} replies`);
      for (const r of limited)
        assert.ok(Number.isInteger(r.error?.details?.retryAfterMs) && r.error!.details.retryAfterMs > 0, JSON.stringify(r));
      // Answers to allowed requests still in flight at the disconnect are lost, so only the upper bound is exact.
      const okCount = replies.filter((r) => r.ok).length;
      assert.ok(okCount <= 120, `no more than about the burst (100) answered ok: ${okCount}`);
      assert.ok(replies.length < 400, 'the flood was cut off before it was all answered');
      assert.ok((await second.request('message.history', { roomId: sc.room })).ok, "the same user's other connection is unaffected");
    });
  }

  // Row 25: many connections from one user (MAX_CONNECTIONS_PER_USER=3 here).
  it('row 25 (all transports): connections past MAX_CONNECTIONS_PER_USER are refused', async () => {
    const sc = await scene(cluster, 'r25');
    const user = uniq('hoarder');
    const token = await tokenFor(user);
    const open = [
      cluster.track(await openClient('io', sc.url, token)),
      cluster.track(await openClient('io-polling', sc.url, token)),
      cluster.track(await openClient('ws', sc.url, token)),
    ];
    await expectRefused(sc, async () => {
      assert.equal(await handshakeRefusal('io', sc.url, token), 'LIMIT_EXCEEDED');
      assert.equal(await handshakeRefusal('io-polling', sc.url, token), 'LIMIT_EXCEEDED');
      assert.equal(await handshakeRefusal('ws', sc.url, token), 'HTTP 429');
      assert.equal(await handshakeRefusal('ws', sc.url, token, { queryToken: true }), 'HTTP 429');
    });
    for (const c of open) assert.ok((await c.request('message.history', { roomId: sc.room })).ok, `the ${c.kind} connection still works`);
    // A freed slot can be taken again (the server notices the close asynchronously).
    open[2].close();
    let again = '';
    const deadline = Date.now() + WAIT_MS;
    while (again !== 'open' && Date.now() < deadline) {
      again = await upgrade(sc.url, '/ws', { Authorization: `Bearer ${token}` });
      if (again !== 'open') await sleep(100);
    }
    assert.equal(again, 'open', 'a connection is admitted once one closed');
  });

  it('row 25 (ws): a concurrent burst of connections from one user is capped', async () => {
    const sc = await scene(cluster, 'r25burst');
    const token = await tokenFor(uniq('burst'));
    const attempts = Array.from({ length: 30 }, () =>
      within(
        new Promise<'open' | number>((resolve) => {
          const ws = new WebSocket(`${sc.url.replace(/^http/, 'ws')}/ws`, { headers: { Authorization: `Bearer ${token}` } });
          ws.on('error', () => undefined);
          ws.on('open', () => {
            resolve('open');
            setTimeout(() => ws.terminate(), 1000);
          });
          ws.on('unexpected-response', (_req, res) => {
            resolve(res.statusCode ?? 0);
            ws.terminate();
          });
        }),
        WAIT_MS,
        'burst handshake',
      ),
    );
    await expectRefused(sc, async () => {
      const outcomes = await Promise.all(attempts);
      const opened = outcomes.filter((o) => o === 'open').length;
      assert.ok(opened <= 3, `at most 3 of 30 concurrent connections admitted, got ${opened}`);
      assert.deepEqual(outcomes.filter((o) => o !== 'open').map(String), Array(30 - opened).fill('429'));
    });
  });

  // Row 26: covered by test/slow-consumers-and-heartbeats.test.ts.

  // Row 27: socket.io packets announcing binary attachments (the protocol is JSON only).
  const BINARY_PACKETS: [string, (room: string) => string | Buffer][] = [
    ['BINARY_EVENT 451-', (room) => `451-["message.send",{"_placeholder":true,"num":0},"${room}"]`],
    ['BINARY_EVENT with ack 451-0', () => '451-0["message.send",{"_placeholder":true,"num":0}]'],
    ['BINARY_EVENT announcing 1000 attachments', () => '41000-["message.send",{"_placeholder":true,"num":999}]'],
    ['BINARY_ACK 461-', () => '461-0[{"_placeholder":true,"num":0}]'],
    ['a binary websocket frame', (room) => Buffer.from(`42["message.send",{"roomId":"${room}","body":"bin"}]`)],
  ];
  for (const [label, packet] of BINARY_PACKETS) {
    it(`row 27 (socket.io): ${label} closes that connection at once, others unaffected`, async () => {
      const sc = await scene(cluster, 'r27');
      const other = await hostile(sc, 'io', 'neighbour');
      const raw = await rawSocketIo(sc.url, await tokenFor(uniq('mallory')));
      await expectRefused(sc, async () => {
        const started = Date.now();
        raw.ws.send(packet(sc.room));
        await within(raw.closed, 2000, `close after ${label}`);
        assert.ok(Date.now() - started < 2000);
      });
      assert.ok((await other.request('message.history', { roomId: sc.room })).ok, 'another socket.io client is unaffected');
    });
  }

  // Row 28: unknown socket.io namespaces.
  for (const kind of ['io', 'io-polling'] as Kind[]) {
    it(`row 28 (${kind}): an unknown socket.io namespace is refused with connect_error`, async () => {
      const sc = await scene(cluster, 'r28');
      const token = await tokenFor(uniq('mallory'));
      await expectRefused(sc, async () => {
        for (const nsp of ['/admin', '/socket.io', '/__proto__']) {
          assert.equal(await handshakeRefusal(kind, `${sc.url}${nsp}`, token), 'Invalid namespace', nsp);
        }
      });
      const fine = cluster.track(await openClient(kind, sc.url, token));
      assert.ok((await fine.request('message.history', { roomId: sc.room })).ok, 'the default namespace still works for the same user');
    });
  }

  // Row 29: the HTTP API without a key or with a wrong one. Read-only keys do not exist yet, so
  // the "read-only key on a write route → 403" part of the row is not tested here.
  it('row 29 (HTTP): 401 UNAUTHORIZED without X-API-Key or with a wrong one, on every route', async () => {
    const sc = await scene(cluster, 'r29');
    const R = sc.room;
    const routes: [string, string, unknown][] = [
      ['POST', `/v1/rooms/${R}/messages`, { senderId: 'svc', body: 'no key' }],
      ['GET', `/v1/rooms/${R}/messages`, undefined],
      ['PUT', `/v1/rooms/${R}`, { visibility: 'private' }],
      ['PUT', `/v1/rooms/${uniq('r29-new')}`, { visibility: 'public' }],
      ['GET', `/v1/rooms/${R}`, undefined],
      ['PUT', `/v1/rooms/${R}/members/mallory`, undefined],
      ['DELETE', `/v1/rooms/${R}/members/${sc.observers[0].session!.userId}`, undefined],
      ['GET', `/v1/rooms/${R}/members`, undefined],
    ];
    const keys: [string, string | null][] = [
      ['no key', null],
      ['empty key', ''],
      ['wrong key', 'wrong-key-0123456789abcdef'],
      ['a prefix of the key', API_KEY.slice(0, -1)],
      ['the key plus a character', `${API_KEY}x`],
      ['the key in other case', API_KEY.toUpperCase()],
      ['both keys joined', `${API_KEY},second-key-abcdefghijklmnop`],
    ];
    await expectRefused(sc, async () => {
      for (const [method, path, body] of routes) {
        for (const [label, key] of keys) {
          const res = await api(sc.url, method, path, body, key);
          assert.equal(res.status, 401, `${method} ${path} with ${label}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body?.ok, false);
          assert.equal(res.body?.error?.code, 'UNAUTHORIZED', `${method} ${path} with ${label}`);
        }
      }
      const bearer = await http(sc.url, 'GET', `/v1/rooms/${R}/messages`, { headers: { Authorization: `Bearer ${API_KEY}` } });
      assert.equal(bearer.status, 401, 'the key only counts in X-API-Key');
    });
    assert.equal((await api(sc.url, 'GET', `/v1/rooms/${R}`)).body.visibility, 'public', 'the room was not changed');
    assert.equal(
      (await api(sc.url, 'GET', `/v1/rooms/${R}/messages`, undefined, 'second-key-abcdefghijklmnop')).status,
      200,
      'the second key works',
    );
  });

  // Row 30: HTTP bodies that are not JSON, or JSON of the wrong shape.
  it('row 30 (HTTP): 400 BAD_REQUEST for a body that is not JSON', async () => {
    const sc = await scene(cluster, 'r30');
    const post = (body: string, type = 'application/json') =>
      http(sc.url, 'POST', `/v1/rooms/${sc.room}/messages`, { headers: { 'X-API-Key': API_KEY, 'Content-Type': type }, body });
    await expectRefused(sc, async () => {
      for (const body of ['not json', '{"senderId":"svc","body":"x"', "{'senderId':'svc'}", '{"senderId":"svc","body":"x"}}', '\u0000']) {
        const res = await post(body);
        assert.equal(res.status, 400, `${describeValue(body)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.ok, false, `${describeValue(body)}: JSON error body`);
        assert.equal(res.body?.error?.code, 'BAD_REQUEST', describeValue(body));
      }
      // Top-level JSON that is not an object: refused as unreadable or as the wrong shape.
      for (const body of ['null', '42', '"x"', 'true']) {
        const res = await post(body);
        assert.equal(res.status, 400, `${body}: ${JSON.stringify(res.body)}`);
        assert.ok(['BAD_REQUEST', 'VALIDATION_FAILED'].includes(res.body?.error?.code), `${body}: ${JSON.stringify(res.body)}`);
      }
    });
  });

  it('row 30 (HTTP): 400 VALIDATION_FAILED naming the field for JSON of the wrong shape', async () => {
    const sc = await scene(cluster, 'r30shape');
    const R = sc.room;
    const cases: [string, string, unknown, string[]][] = [
      ['POST', `/v1/rooms/${R}/messages`, [], []],
      ['POST', `/v1/rooms/${R}/messages`, [{ senderId: 'svc', body: 'x' }], []],
      ['POST', `/v1/rooms/${R}/messages`, {}, ['senderId', 'body']],
      ['POST', `/v1/rooms/${R}/messages`, { senderId: 'svc', body: 42 }, ['body']],
      ['POST', `/v1/rooms/${R}/messages`, { senderId: 'svc', body: '' }, ['body']],
      ['POST', `/v1/rooms/${R}/messages`, { senderId: 'svc', body: 'nul\u0000' }, ['body']],
      ['POST', `/v1/rooms/${R}/messages`, { body: 'x' }, ['senderId']],
      ['POST', `/v1/rooms/${R}/messages`, { senderId: 's'.repeat(129), body: 'x' }, ['senderId']],
      ['POST', `/v1/rooms/${R}/messages`, { senderId: 'svc', body: 'x', clientMsgId: 'bad id!' }, ['clientMsgId']],
      ['POST', `/v1/rooms/bad%20room/messages`, { senderId: 'svc', body: 'x' }, ['roomId']],
      ['POST', `/v1/rooms/${'r'.repeat(129)}/messages`, { senderId: 'svc', body: 'x' }, ['roomId']],
      ['PUT', `/v1/rooms/${R}`, { visibility: 'secret' }, ['visibility']],
      ['PUT', `/v1/rooms/${R}`, {}, ['visibility']],
      ['PUT', `/v1/rooms/${R}`, { visibility: 'private', title: 't'.repeat(201) }, ['title']],
      ['PUT', `/v1/rooms/${R}`, { visibility: 'private', metadata: [1, 2] }, ['metadata']],
      ['PUT', `/v1/rooms/${R}`, { visibility: 'private', metadata: 'x' }, ['metadata']],
      ['PUT', `/v1/rooms/l%D0%BEbby`, { visibility: 'private' }, ['roomId']],
      ['GET', `/v1/rooms/${R}/messages?limit=abc`, undefined, ['limit']],
      ['GET', `/v1/rooms/${R}/messages?limit=0`, undefined, ['limit']],
      ['GET', `/v1/rooms/${R}/messages?limit=101`, undefined, ['limit']],
      ['GET', `/v1/rooms/${R}/messages?afterSeq=-1`, undefined, ['afterSeq']],
      ['GET', `/v1/rooms/${R}/messages?beforeSeq=5&afterSeq=1`, undefined, ['beforeSeq']],
    ];
    await expectRefused(sc, async () => {
      for (const [method, path, body, fields] of cases) {
        const res = await api(sc.url, method, path, body);
        const what = `${method} ${path.slice(0, 60)} ${describeValue(body)}`;
        assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.ok, false, what);
        assert.equal(res.body?.error?.code, 'VALIDATION_FAILED', `${what}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(res.body?.error?.details?.fields, fields, `${what}: ${JSON.stringify(res.body)}`);
      }
    });
    assert.equal((await api(sc.url, 'GET', `/v1/rooms/${R}`)).body.visibility, 'public', 'the room was not changed');
  });
});

// ---------------------------------------------------------------------------------------------
// Two instances: where crossing instances matters
// ---------------------------------------------------------------------------------------------

describe('hostile inputs across two instances', () => {
  const USER_BUDGET = 30;
  const WINDOW_MS = 600_000;
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster(2, {
      API_KEYS: API_KEY,
      RATE_LIMIT_USER_MESSAGES: String(USER_BUDGET),
      RATE_LIMIT_USER_WINDOW_MS: String(WINDOW_MS),
    });
  });
  after(() => cluster.stop());

  it('row 24 (both transports, two instances): the per-user message budget is shared by every instance', async () => {
    const sc = await scene(cluster, 'r24user', { observerInstances: [0, 1] });
    const [A, B] = cluster.instances;
    const user = uniq('spammer');
    const onA = cluster.track(await openClient('io', A.url, await tokenFor(user)));
    const onB = cluster.track(await openClient('ws', B.url, await tokenFor(user)));
    // Windows are fixed (aligned to WINDOW_MS): do not start right before one ends.
    const left = WINDOW_MS - (Date.now() % WINDOW_MS);
    if (left < 4000) await sleep(left + 50);
    const sent: any[] = [];
    for (let i = 0; i < USER_BUDGET; i++) sent.push(await (i % 2 ? onB : onA).ok('message.send', { roomId: sc.room, body: `spam ${i}` }));
    for (const o of sc.observers) await o.waitFor('message.new', (d) => d.id === sent.at(-1).id);
    await expectRefused(sc, async () => {
      for (const c of [onA, onB, onA]) {
        const r = await c.request('message.send', { roomId: sc.room, body: 'over budget' });
        assertFailed(r, 'RATE_LIMITED', undefined, `${c.kind} after ${USER_BUDGET} messages over both instances`);
        const retry = r.error!.details?.retryAfterMs;
        assert.ok(Number.isInteger(retry) && retry > 0 && retry <= WINDOW_MS, `retryAfterMs ${retry}`);
      }
    });
    const [{ n }] = await cluster.db.query<{ n: string }>('SELECT count(*) AS n FROM messages WHERE sender_id = $1', [user]);
    assert.equal(Number(n), USER_BUDGET, 'exactly the budget was stored');
    for (const o of sc.observers)
      assert.equal(o.messagesIn(sc.room).filter((m) => m.senderId === user).length, USER_BUDGET, `${o.kind} observer`);
    assert.ok(onA.isOpen && onB.isOpen, 'a few refusals do not disconnect');
    assert.ok((await onB.request('message.history', { roomId: sc.room })).ok, 'the budget is for messages only');
    const other = cluster.track(await openClient('io', B.url, await tokenFor(uniq('neighbour'))));
    assert.ok((await other.request('message.send', { roomId: sc.room, body: 'my own budget' })).ok, 'other users keep theirs');
  });

  it('row 18 (both transports, two instances): a repeated clientMsgId is stored and broadcast once, from any instance', async () => {
    const sc = await scene(cluster, 'r18x', { observerInstances: [0, 1] });
    const [A, B] = cluster.instances;
    const user = uniq('repeater');
    const onA = cluster.track(await openClient('ws', A.url, await tokenFor(user)));
    const onB = cluster.track(await openClient('io', B.url, await tokenFor(user)));
    const first = await onA.ok('message.send', { roomId: sc.room, body: 'once', clientMsgId: 'x-dup' });
    for (const o of sc.observers) await o.waitFor('message.new', (d) => d.id === first.id);
    await expectRefused(sc, async () => {
      const repeats = await Promise.all(
        [onB, onA, onB, onA, onB].map((c, i) => c.ok('message.send', { roomId: sc.room, body: `repeat ${i}`, clientMsgId: 'x-dup' })),
      );
      for (const m of repeats) assert.deepEqual(m, first);
    });
    for (const o of sc.observers)
      assert.equal(o.messagesIn(sc.room).filter((m) => m.clientMsgId === 'x-dup').length, 1, `one push to ${o.kind}`);
  });

  it('row 22 (both transports, two instances): a non-member on another instance is FORBIDDEN and sees nothing', async () => {
    const sc = await scene(cluster, 'r22x', { privateRoom: true, observerInstances: [0, 1] });
    const B = cluster.instances[1];
    const intruders = [
      cluster.track(await openClient('io', B.url, await tokenFor(uniq('mallory')))),
      cluster.track(await openClient('ws', B.url, await tokenFor(uniq('mallory')))),
    ];
    await expectRefused(sc, async () => {
      for (const c of intruders) {
        for (const [event, data] of [
          ['room.join', { roomId: sc.room }],
          ['message.send', { roomId: sc.room, body: 'x' }],
          ['message.history', { roomId: sc.room }],
        ] as const) {
          assertFailed(await c.request(event, data), 'FORBIDDEN', undefined, `${c.kind} ${event}`);
        }
      }
    });
    for (const c of intruders) assert.equal(c.pushesOf('message.new').length, 0, `${c.kind} intruder received nothing`);
  });
});

// ---------------------------------------------------------------------------------------------
// Inputs that once took the process down: each on an instance of its own, so that a regression
// cannot spoil other tests.
// ---------------------------------------------------------------------------------------------

describe('hostile inputs that must not take an instance down', () => {
  it('row 8 (socket.io): a numeric event name without an ack gets an UNKNOWN_EVENT error push, and the process lives', async () => {
    const own = await startCluster(1);
    try {
      const sc = await scene(own, 'r8crash');
      const raw = await rawSocketIo(sc.url, await tokenFor(uniq('mallory')));
      await expectRefused(sc, async () => {
        raw.ws.send(`42[7,{"roomId":"${sc.room}","body":"x"}]`);
        const frame = await unlessExited(
          own.instances[0],
          raw.waitFrame((f) => f.startsWith('42["error"'), 2000),
        );
        assert.equal(JSON.parse(frame.slice(2))[1].code, 'UNKNOWN_EVENT');
      });
      raw.ws.terminate();
    } finally {
      await own.stop();
    }
  });

  it('handshake (rows 1 and 3): an upgrade request whose target is not a parsable URL is answered, and the process lives', async () => {
    const own = await startCluster(1);
    try {
      const sc = await scene(own, 'urlcrash');
      await expectRefused(sc, async () => {
        for (const target of ['http://[', 'http://x:99999/ws', 'http://a:b@[::1']) {
          const statusLine = await within(
            new Promise<string>((resolve) => {
              const sock = netConnect(own.instances[0].port, '127.0.0.1');
              let got = '';
              sock.on('error', () => resolve(got));
              sock.on('data', (d: Buffer) => {
                got += d.toString();
                if (got.includes('\r\n')) {
                  resolve(got.split('\r\n')[0]);
                  sock.destroy();
                }
              });
              sock.on('close', () => resolve(got.split('\r\n')[0]));
              sock.write(
                `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
              );
            }),
            2000,
            `answer to GET ${target}`,
          );
          if (!/^HTTP\/1\.1 4\d\d /.test(statusLine)) await unlessExited(own.instances[0], sleep(1000));
          assert.match(statusLine, /^HTTP\/1\.1 4\d\d /, `GET ${target} with Upgrade`);
        }
      });
    } finally {
      await own.stop();
    }
  });
});
