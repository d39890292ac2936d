import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import {
  connect,
  ChatRequestError,
  type ChatClient,
  type ConnectOptions,
  type ConnectionState,
  type Message,
  type Transport,
} from '../client/src/index.js';
import { sleep } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { freePort, UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'client-test-api-key-0123456789';

/** What a client emitted, for assertions. */
interface Watched {
  client: ChatClient;
  states: ConnectionState[];
  sessions: { userId: string; connectionId: string }[];
  reconnects: { attempt: number; delayMs: number }[];
  errors: { code: string; message: string }[];
  messages: Message[];
}

const opened: ChatClient[] = [];

async function open(transport: Transport, url: string | string[], sub: string, extra: Partial<ConnectOptions> = {}): Promise<Watched> {
  const client = connect({
    url,
    transport,
    token: await tokenFor(sub),
    WebSocket,
    reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
    ...extra,
  });
  opened.push(client);
  const w: Watched = { client, states: [client.state], sessions: [], reconnects: [], errors: [], messages: [] };
  client.on('state', (s) => w.states.push(s));
  client.on('session', (s) => w.sessions.push(s));
  client.on('reconnecting', (r) => w.reconnects.push(r));
  client.on('error', (e) => w.errors.push(e));
  client.on('message', (m) => w.messages.push(m));
  return w;
}

/** Polls `cond` every 50 ms until it holds; fails after timeoutMs. */
async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const seqsIn = (w: Watched, roomId: string) => w.messages.filter((m) => m.roomId === roomId).map((m) => m.seq);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('client library (@chat-service/client)', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster(2, { ...UNLIMITED_RATES, API_KEYS: API_KEY });
  });

  after(async () => {
    for (const c of opened) c.close();
    await cluster.stop();
  });

  it('connects, joins, sends and receives between a socket.io client and a ws client on two instances', async () => {
    const [A, B] = cluster.instances;
    const io = await open('socket.io', A.url, 'cl-alice');
    const ws = await open('ws', B.url, 'cl-bob');
    assert.equal(io.client.state, 'CONNECTING');
    await until('both sessions', () => io.client.state === 'OPEN' && ws.client.state === 'OPEN');
    assert.deepEqual(io.states, ['CONNECTING', 'OPEN']);
    assert.equal(io.client.userId, 'cl-alice');
    assert.equal(ws.sessions[0].userId, 'cl-bob');

    const room = 'client-basic';
    const presence: { roomId: string; userId: string; online: boolean }[] = [];
    io.client.on('presence', (p) => presence.push(p));
    assert.deepEqual(await io.client.join(room), { roomId: room, lastSeq: 0, lastReadSeq: 0, unread: 0 });
    assert.equal((await ws.client.join(room)).lastSeq, 0);
    await until('presence of bob', () => presence.some((p) => p.userId === 'cl-bob' && p.online));
    assert.deepEqual(await io.client.presence(room), ['cl-alice', 'cl-bob']);

    const typing: { userId: string; typing: boolean }[] = [];
    io.client.on('typing', (t) => typing.push(t));
    await ws.client.typing(room, true);
    await until('typing push', () => typing.some((t) => t.userId === 'cl-bob' && t.typing));

    const sent: Message[] = [];
    for (let i = 0; i < 3; i++) {
      sent.push(await io.client.send(room, `from io ${i}`));
      sent.push(await ws.client.send(room, `from ws ${i}`));
    }
    assert.deepEqual(
      sent.map((m) => m.seq),
      range(6),
    );
    assert.equal(sent[0].senderId, 'cl-alice');
    assert.match(sent[0].clientMsgId ?? '', /^[A-Za-z0-9_-]{1,64}$/);
    for (const w of [io, ws]) {
      await until(`${w.client.userId} receives all`, () => seqsIn(w, room).length >= 6);
      await sleep(200); // duplicates would arrive right behind
      assert.deepEqual(seqsIn(w, room), range(6));
      assert.deepEqual(
        w.messages.map((m) => m.body),
        sent.map((m) => m.body),
      );
    }

    const receipts: { userId: string; seq: number }[] = [];
    io.client.on('receipt', (r) => receipts.push(r));
    assert.equal(await ws.client.markRead(room, 4), 4);
    await until('receipt', () => receipts.some((r) => r.userId === 'cl-bob' && r.seq === 4));
    assert.deepEqual(await ws.client.rooms(), [{ roomId: room, lastSeq: 6, lastReadSeq: 4, unread: 2 }]);

    const page = await ws.client.history(room, { beforeSeq: 5, limit: 2 });
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      [3, 4],
    );
    assert.equal(page.hasMore, true);

    await assert.rejects(
      io.client.send(room, '   '),
      (err: unknown) => err instanceof ChatRequestError && err.code === 'VALIDATION_FAILED',
    );
    await assert.rejects(
      ws.client.join('bad room id'),
      (err: unknown) => err instanceof ChatRequestError && err.code === 'VALIDATION_FAILED',
    );

    await ws.client.leave(room);
    const after = await io.client.send(room, 'after the leave');
    await until('own message', () => seqsIn(io, room).includes(after.seq));
    await sleep(200);
    assert.equal(seqsIn(ws, room).includes(after.seq), false);

    io.client.close();
    ws.client.close();
    assert.deepEqual(io.states.slice(-2), ['CLOSING', 'CLOSED']);
    assert.equal(ws.client.state, 'CLOSED');
    await assert.rejects(io.client.send(room, 'too late'), (err: unknown) => err instanceof ChatRequestError && err.code === 'CLOSED');
  });

  it('retries sends across a SIGKILLed instance: each stored once, every message delivered once in seq order after resume', async () => {
    const [A, B] = cluster.instances;
    const room = 'client-failover';
    // Both clients start on A and move to B when A dies; the observer stays on B throughout.
    const io = await open('socket.io', [A.url, B.url], 'cl-io', { reconnect: { minDelayMs: 1500, maxDelayMs: 3000 } });
    const ws = await open('ws', [A.url, B.url], 'cl-ws', { reconnect: { minDelayMs: 1500, maxDelayMs: 3000 } });
    const observer = await open('ws', B.url, 'cl-observer');
    for (const w of [io, ws, observer]) await w.client.join(room);

    const PER_CLIENT = 30;
    const loop = async (w: Watched, name: string) => {
      const acks: Message[] = [];
      for (let i = 0; i < PER_CLIENT; i++) acks.push(await w.client.send(room, `${name} ${i}`));
      return acks;
    };
    const loops = [loop(io, 'io'), loop(ws, 'ws')];
    await until('a few acks before the kill', () => seqsIn(observer, room).length >= 10);
    A.proc.kill('SIGKILL');
    await A.exited;
    // While the two clients wait to reconnect, the room moves on by more than one join page (100).
    const BURST = 130;
    for (let i = 0; i < BURST; i += 26)
      await Promise.all(Array.from({ length: 26 }, (_, j) => observer.client.send(room, `burst ${i + j}`)));
    const acks = (await Promise.all(loops)).flat();

    const total = 2 * PER_CLIENT + BURST;
    const stored = await cluster.db.query<{ seq: string; client_msg_id: string }>(
      'SELECT seq, client_msg_id FROM messages WHERE room_id = $1 ORDER BY seq',
      [room],
    );
    assert.equal(stored.length, total, 'every send stored exactly once');
    assert.equal(new Set(stored.map((r) => r.client_msg_id)).size, total);
    assert.deepEqual(
      acks.map((m) => m.seq).filter((s) => s > total),
      [],
    );
    for (const w of [io, ws, observer]) {
      await until(`${w.client.userId} catches up`, () => seqsIn(w, room).length >= total, 20_000);
      await sleep(200);
      assert.deepEqual(seqsIn(w, room), range(total), `${w.client.userId} got every message once, in order`);
    }
    for (const w of [io, ws]) {
      assert.ok(w.reconnects.length >= 1, 'reconnected');
      assert.equal(w.sessions.length, 2, 'one new session, on B');
      assert.deepEqual(w.states, ['CONNECTING', 'OPEN', 'CONNECTING', 'OPEN']);
      assert.equal(w.client.reconnecting, false);
    }
  });

  it('tries a list of URLs round-robin, with backoff, until one answers', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    for (const transport of ['socket.io', 'ws'] as Transport[]) {
      const w = await open(transport, [dead, dead, cluster.instances[1].url], `cl-rr-${transport}`, {
        reconnect: { minDelayMs: 50, maxDelayMs: 200 },
      });
      await until('open on the third URL', () => w.client.state === 'OPEN');
      assert.deepEqual(
        w.reconnects.map((r) => r.attempt),
        [1, 2],
      );
      assert.ok(w.reconnects.every((r) => r.delayMs >= 25 && r.delayMs <= 200));
      assert.deepEqual(w.states, ['CONNECTING', 'OPEN']);
      w.client.close();
    }
  });

  for (const transport of ['socket.io', 'ws'] as Transport[]) {
    it(`${transport}: refreshes the token before exp through getToken, staying on the same connection`, async () => {
      const url = cluster.instances[1].url;
      let calls = 0;
      const w = await open(transport, url, `cl-refresh-${transport}`, {
        token: await tokenFor(`cl-refresh-${transport}`, { expiresInSec: 3 }),
        getToken: async () => {
          calls++;
          return tokenFor(`cl-refresh-${transport}`, { expiresInSec: 3600 });
        },
      });
      await until('open', () => w.client.state === 'OPEN');
      await sleep(3500); // past the first token's exp: the server would have disconnected it
      assert.ok(calls >= 1, 'getToken called');
      assert.equal(w.client.state, 'OPEN');
      assert.equal(w.sessions.length, 1, 'no reconnect');
      assert.deepEqual(w.errors, []);
      await w.client.join('client-refresh');
      w.client.close();
    });

    it(`${transport}: reconnects with a token from getToken after the server expired the old one, and rejoins`, async () => {
      const url = cluster.instances[1].url;
      const sub = `cl-reauth-${transport}`;
      let calls = 0;
      const w = await open(transport, url, sub, {
        token: await tokenFor(sub, { expiresInSec: 2 }),
        getToken: async () => {
          // The refresh before exp fails, so the server disconnects at exp; the reconnect asks again.
          if (++calls === 1) throw new Error('token service down');
          return tokenFor(sub, { expiresInSec: 3600 });
        },
      });
      const room = `client-reauth-${transport === 'ws' ? 'ws' : 'io'}`;
      await w.client.join(room);
      await until('second session', () => w.sessions.length === 2 && w.client.state === 'OPEN', 10_000);
      assert.ok(calls >= 2);
      assert.ok(w.errors.some((e) => e.code === 'TOKEN_REFRESH_FAILED'));
      const other = await open('ws', url, `${sub}-peer`);
      const m = await other.client.send(room, 'after the reauth');
      await until('message in the rejoined room', () => w.messages.some((x) => x.id === m.id));
      w.client.close();
      other.client.close();
    });

    it(`${transport}: stays closed after the token expires when there is no getToken`, async () => {
      const w = await open(transport, cluster.instances[1].url, `cl-expire-${transport}`, {
        token: await tokenFor(`cl-expire-${transport}`, { expiresInSec: 2 }),
      });
      await until('open', () => w.client.state === 'OPEN');
      await until('closed at expiry', () => w.client.state === 'CLOSED', 6000);
      await sleep(500);
      assert.equal(w.sessions.length, 1, 'did not reconnect');
      assert.ok(w.errors.some((e) => e.code === 'UNAUTHORIZED'));
    });

    it(`${transport}: stays closed when the service disconnects the user`, async () => {
      const url = cluster.instances[1].url;
      const w = await open(transport, url, `cl-kick-${transport}`);
      await until('open', () => w.client.state === 'OPEN');
      const res = await fetch(`${url}/v1/users/cl-kick-${transport}/disconnect`, { method: 'POST', headers: { 'X-API-Key': API_KEY } });
      assert.equal(res.status, 202);
      await until('closed', () => w.client.state === 'CLOSED');
      await sleep(500);
      assert.equal(w.sessions.length, 1);
      assert.ok(w.errors.some((e) => e.code === 'DISCONNECTED'));
      assert.equal(w.reconnects.length, 0);
    });
  }

  it('rejects unusable options at once', () => {
    assert.throws(() => connect({ url: 'http://127.0.0.1:1', token: 't', transport: 'ws' }), /WebSocket/);
    assert.throws(() => connect({ url: 'http://127.0.0.1:1', token: '', transport: 'ws', WebSocket }), /token/);
    assert.throws(() => connect({ url: [], token: 't', transport: 'socket.io' }), /url/);
    assert.throws(() => connect({ url: 'http://127.0.0.1:1', token: 't', transport: 'carrier-pigeon' as Transport }), /transport/);
  });
});

describe('client library against a scripted ws server', () => {
  let server: WebSocketServer;
  let url: string;
  const frames: { event: string; data: any; id?: string }[] = [];
  let sendAttempts = 0;

  const message = (seq: number, clientMsgId: string | null = null) => ({
    id: `m${seq}`,
    roomId: 'scripted',
    seq,
    senderId: 'other',
    body: `body ${seq}`,
    clientMsgId,
    createdAt: new Date(0).toISOString(),
  });

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    server.on('connection', (sock) => {
      const push = (event: string, data: unknown) => sock.send(JSON.stringify({ event, data }));
      const reply = (id: string | undefined, body: object) => sock.send(JSON.stringify({ id, ...body }));
      push('session', { userId: 'scripted-user', connectionId: 'c1' });
      sock.on('message', (raw) => {
        const frame = JSON.parse(raw.toString());
        frames.push(frame);
        if (frame.event === 'room.join') {
          reply(frame.id, { ok: true, data: { roomId: 'scripted', lastSeq: 0, lastReadSeq: 0, unread: 0 } });
          // Live pushes with a hole at seq 2 (a push lost between instances), 4 before 3.
          push('message.new', message(1));
          push('message.new', message(4));
          push('message.new', message(3));
          push('unknown.future.push', { roomId: 'scripted' });
        } else if (frame.event === 'message.history') {
          reply(frame.id, {
            ok: true,
            data: { messages: [2, 3, 4].filter((s) => s > frame.data.afterSeq).map((s) => message(s)), hasMore: false },
          });
        } else if (frame.event === 'message.send') {
          sendAttempts++;
          // 1: no answer (timeout); 2: UNAVAILABLE; 3: RATE_LIMITED; 4: stored, and pushed as well.
          if (sendAttempts === 2) reply(frame.id, { ok: false, error: { code: 'UNAVAILABLE', message: 'db down' } });
          if (sendAttempts === 3)
            reply(frame.id, { ok: false, error: { code: 'RATE_LIMITED', message: 'slow', details: { retryAfterMs: 50 } } });
          if (sendAttempts === 4) {
            reply(frame.id, { ok: true, data: { ...message(5, frame.data.clientMsgId), body: frame.data.body } });
            push('message.new', { ...message(5, frame.data.clientMsgId), body: frame.data.body });
          }
        }
      });
    });
  });

  after(async () => {
    for (const c of server.clients) c.terminate();
    server.close();
  });

  it('fills a live gap from the history, orders by seq, and retries a send on timeout, UNAVAILABLE and RATE_LIMITED with one clientMsgId', async () => {
    const w = await open('ws', url, 'scripted-user', { requestTimeoutMs: 300, reconnect: { minDelayMs: 20, maxDelayMs: 40 } });
    await w.client.join('scripted');
    await until('gap filled', () => w.messages.length >= 4, 3000);
    assert.deepEqual(
      w.messages.map((m) => m.seq),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      frames.filter((f) => f.event === 'message.history').map((f) => f.data),
      [{ roomId: 'scripted', afterSeq: 1, limit: 100 }],
    );
    const sent = await w.client.send('scripted', 'retried');
    assert.equal(sent.seq, 5);
    const sends = frames.filter((f) => f.event === 'message.send');
    assert.equal(sends.length, 4);
    assert.equal(new Set(sends.map((f) => f.data.clientMsgId)).size, 1, 'one clientMsgId for every attempt');
    await sleep(100);
    assert.deepEqual(
      w.messages.map((m) => m.seq),
      [1, 2, 3, 4, 5],
    );
    w.client.close();
  });
});
