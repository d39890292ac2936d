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
import { RoomChanges } from '../client/src/room-changes.js';
import { sleep } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { freePort, UNLIMITED_RATES } from './support/instance.js';
import { MESSAGE_KEYS, UNCHANGED } from './support/message-shape.js';
import { startTcpProxy } from './support/tcp-proxy.js';
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
  updated: Message[];
  /** 'message' and 'updated' events together, in the order they were emitted. */
  timeline: Message[];
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
  const w: Watched = { client, states: [client.state], sessions: [], reconnects: [], errors: [], messages: [], updated: [], timeline: [] };
  client.on('state', (s) => w.states.push(s));
  client.on('session', (s) => w.sessions.push(s));
  client.on('reconnecting', (r) => w.reconnects.push(r));
  client.on('error', (e) => w.errors.push(e));
  client.on('message', (m) => {
    w.messages.push(m);
    w.timeline.push(m);
  });
  client.on('updated', (m) => {
    w.updated.push(m);
    w.timeline.push(m);
  });
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
const updatesOf = (w: Watched, roomId: string, seq: number) => w.updated.filter((m) => m.roomId === roomId && m.seq === seq);
const isCode = (code: string) => (err: unknown) => err instanceof ChatRequestError && err.code === code;

/**
 * The state a client's listeners hold per seq: the last 'message' or 'updated' of each. Fails when
 * an event for a seq does not have a higher modSeq than the one before it, or an 'updated' comes
 * before the message's 'message'.
 */
function heldStates(w: Watched, roomId: string): Map<number, Message> {
  const held = new Map<number, Message>();
  for (const m of w.timeline.filter((x) => x.roomId === roomId)) {
    const before = held.get(m.seq);
    if (before) assert.ok(m.modSeq > before.modSeq, `seq ${m.seq}: modSeq ${m.modSeq} after ${before.modSeq}`);
    held.set(m.seq, m);
  }
  return held;
}

/** Every message of a room in its latest state, read with message.changes from modSeq 0 to the end. */
async function readAllChanges(client: ChatClient, roomId: string): Promise<{ messages: Message[]; lastModSeq: number }> {
  const messages: Message[] = [];
  for (let afterModSeq = 0; ;) {
    const page = await client.changes(roomId, { afterModSeq, limit: 100 });
    messages.push(...page.messages);
    if (!page.hasMore) return { messages, lastModSeq: page.lastModSeq };
    afterModSeq = page.messages.at(-1)!.modSeq;
  }
}

/** Runs `op` for each item, `width` at a time. */
async function inBatches<T>(items: T[], width: number, op: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(op));
}

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
    assert.deepEqual(await io.client.join(room), { roomId: room, lastSeq: 0, lastModSeq: 0, lastReadSeq: 0, unread: 0 });
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

  for (const transport of ['socket.io', 'ws'] as Transport[]) {
    const tag = transport === 'ws' ? 'ws' : 'io';

    it(`${transport}: edit, delete, react, unreact and thread replies answer the latest Message and reach another client as 'updated'`, async () => {
      const [A, B] = cluster.instances;
      const room = `client-changes-${tag}`;
      const aliceId = `cl-ch-alice-${tag}`;
      const bobId = `cl-ch-bob-${tag}`;
      const alice = await open(transport, A.url, aliceId);
      const bob = await open(transport, B.url, bobId);
      assert.deepEqual(await alice.client.join(room), { roomId: room, lastSeq: 0, lastModSeq: 0, lastReadSeq: 0, unread: 0 });
      await bob.client.join(room);
      assert.equal(alice.client.lastModSeq(room), 0);
      assert.equal(alice.client.lastModSeq('not-joined'), null);

      const root = await alice.client.send(room, 'hello bob', { mentions: [bobId, bobId] });
      assert.deepEqual(Object.keys(root).sort(), MESSAGE_KEYS);
      assert.deepEqual(
        { ...root, id: '', createdAt: '', clientMsgId: '' },
        {
          ...UNCHANGED,
          id: '',
          roomId: room,
          seq: 1,
          modSeq: 1,
          senderId: aliceId,
          body: 'hello bob',
          clientMsgId: '',
          createdAt: '',
          mentions: [bobId],
        },
      );

      const edited = await alice.client.edit(room, 1, 'hello bob, edited', { expectedVersion: 1 });
      assert.equal(edited.body, 'hello bob, edited');
      assert.equal(edited.version, 2);
      assert.equal(edited.modSeq, 2);
      assert.match(edited.editedAt ?? '', /^\d{4}-\d\d-\d\dT.*Z$/);
      assert.deepEqual(edited.mentions, [bobId], 'omitted mentions stay');
      await assert.rejects(
        alice.client.edit(room, 1, 'stale', { expectedVersion: 1 }),
        (err: unknown) =>
          isCode('CONFLICT')(err) && (err as ChatRequestError).details !== undefined && (err as any).details.currentVersion === 2,
      );
      await assert.rejects(bob.client.edit(room, 1, 'not mine'), isCode('FORBIDDEN'));
      await assert.rejects(bob.client.delete(room, 99), isCode('NOT_FOUND'));

      const reacted = await bob.client.react(room, 1, '+1');
      assert.equal(reacted.modSeq, 3);
      assert.deepEqual(reacted.reactions, [{ key: '+1', count: 1, userIds: [bobId] }]);
      assert.deepEqual(await bob.client.react(room, 1, '+1'), reacted, 'a repeated reaction changes nothing');

      const reply = await bob.client.send(room, 'a reply', { parentSeq: 1 });
      assert.deepEqual([reply.seq, reply.modSeq, reply.parentSeq], [2, 4, 1]);
      const thread = await alice.client.history(room, { parentSeq: 1 });
      assert.deepEqual(thread.messages, [reply]);
      assert.deepEqual((await alice.client.history(room, { afterSeq: 1 })).messages, [reply]);

      const unreacted = await bob.client.unreact(room, 1, '+1');
      assert.deepEqual([unreacted.modSeq, unreacted.replyCount, unreacted.lastReplySeq, unreacted.reactions], [6, 1, 2, []]);

      const tombstone = await alice.client.delete(room, 1);
      assert.deepEqual(
        [tombstone.modSeq, tombstone.version, tombstone.body, tombstone.mentions, tombstone.reactions, tombstone.replyCount],
        [7, 3, '', [], [], 1],
      );
      assert.ok(tombstone.deletedAt);
      assert.deepEqual(await alice.client.delete(room, 1), tombstone, 'a second delete returns the tombstone unchanged');
      await assert.rejects(bob.client.react(room, 1, '+1'), isCode('NOT_FOUND'));

      const read = await bob.client.changes(room, { afterModSeq: 0 });
      assert.deepEqual(
        read.messages.map((m) => [m.seq, m.modSeq]),
        [
          [2, 4],
          [1, 7],
        ],
      );
      assert.deepEqual([read.hasMore, read.lastModSeq], [false, 7]);
      assert.deepEqual(read.messages, [reply, tombstone]);

      for (const w of [alice, bob]) {
        await until(
          `${w.client.userId} holds every change`,
          () => w.client.lastModSeq(room) === 7 && updatesOf(w, room, 1).at(-1)?.modSeq === 7,
        );
        await sleep(200); // duplicates would arrive right behind
        assert.deepEqual(
          updatesOf(w, room, 1).map((m) => m.modSeq),
          [2, 3, 5, 6, 7],
          `${w.client.userId}: each change of the root once, in modSeq order, from replies and pushes alike`,
        );
        assert.deepEqual(updatesOf(w, room, 1)[0], edited);
        assert.deepEqual(updatesOf(w, room, 1)[1], reacted);
        assert.deepEqual(
          [updatesOf(w, room, 1)[2].replyCount, updatesOf(w, room, 1)[2].lastReplySeq],
          [1, 2],
          'the thread root changed with its reply',
        );
        assert.deepEqual(updatesOf(w, room, 1)[3], unreacted);
        assert.deepEqual(updatesOf(w, room, 1)[4], tombstone);
        assert.deepEqual(updatesOf(w, room, 2), [], 'a new message is a message, not an update');
        assert.deepEqual(seqsIn(w, room), [1, 2]);
        assert.deepEqual(heldStates(w, room).get(2), reply);
      }
      alice.client.close();
      bob.client.close();
    });

    it(`${transport}: after a cut connection, catches up on more than 100 changed messages; its state equals message.changes from 0`, async () => {
      const [A, B] = cluster.instances;
      const room = `client-catchup-${tag}`;
      const proxy = await startTcpProxy(B.port);
      // For the raw ws transport the frames the client sends are recorded: they show the rejoin's cursors and the paging.
      const sent: { event: string; data: Record<string, unknown> }[] = [];
      class RecordingWebSocket extends WebSocket {
        override send(data: any, ...rest: any[]): void {
          sent.push(JSON.parse(String(data)));
          (super.send as (...args: unknown[]) => void)(data, ...rest);
        }
      }
      try {
        const reader = await open(transport, proxy.url, `cl-cu-reader-${tag}`, { WebSocket: RecordingWebSocket });
        const writer = await open('ws', A.url, `cl-cu-writer-${tag}`);
        await reader.client.join(room);
        await writer.client.join(room);

        const OLD = 120;
        await inBatches(range(OLD), 20, (i) => writer.client.send(room, `old ${i}`));
        await writer.client.edit(room, 1, 'edited while the reader is connected');
        await until('the reader holds the first changes', () => reader.client.lastModSeq(room) === OLD + 1);
        assert.equal(updatesOf(reader, room, 1).length, 1);

        proxy.cut();
        await until('the reader lost its connection', () => reader.client.state === 'CONNECTING');
        // While the reader is away: every old message changes (edits, reactions, deletes, some several
        // times), new messages arrive, some edited, some replies in a thread, and one reply is deleted.
        await inBatches(range(OLD), 10, (seq) => writer.client.edit(room, seq, `edited ${seq}`, { mentions: [`u${seq % 5}`] }));
        const reactedSeqs = range(OLD).filter((seq) => seq % 3 === 1);
        await inBatches(reactedSeqs, 10, (seq) => writer.client.react(room, seq, '🎉'));
        await inBatches(reactedSeqs, 10, (seq) => writer.client.react(room, seq, '+1'));
        await inBatches(reactedSeqs.slice(0, 10), 10, (seq) => writer.client.unreact(room, seq, '🎉'));
        await inBatches(
          range(OLD).filter((seq) => seq % 7 === 0),
          20,
          (seq) => writer.client.delete(room, seq),
        );
        const replies: Message[] = [];
        for (let i = 0; i < 5; i++) replies.push(await writer.client.send(room, `reply ${i}`, { parentSeq: 3 }));
        const fresh: Message[] = [];
        for (let i = 0; i < 5; i++) fresh.push(await writer.client.send(room, `new ${i}`, { mentions: ['someone'] }));
        await writer.client.edit(room, fresh[0].seq, 'new 0, edited');
        await writer.client.react(room, fresh[1].seq, '+1');
        await writer.client.delete(room, replies[4].seq);
        const total = OLD + replies.length + fresh.length;
        const truth = await readAllChanges(writer.client, room);
        assert.equal(truth.messages.length, total);
        assert.equal(reader.client.state, 'CONNECTING', 'the reader stayed away through every change');
        const updatesBefore = reader.updated.length;

        proxy.restore();
        await until(
          'the reader caught up',
          () =>
            reader.client.state === 'OPEN' && reader.client.lastModSeq(room) === truth.lastModSeq && seqsIn(reader, room).length === total,
          30_000,
        );
        await sleep(300); // late or duplicate events would arrive right behind

        assert.equal(reader.sessions.length, 2, 'one reconnect');
        assert.deepEqual(seqsIn(reader, room), range(total), 'every message once, in seq order');
        const held = heldStates(reader, room); // also fails on any event that goes back in modSeq
        assert.equal(held.size, total);
        for (const m of truth.messages) {
          const mine = held.get(m.seq);
          assert.ok(mine, `seq ${m.seq} held`);
          for (const key of MESSAGE_KEYS) assert.deepEqual(mine[key as keyof Message], m[key as keyof Message], `seq ${m.seq}: ${key}`);
        }
        assert.ok(reader.updated.length - updatesBefore > 100, `more than a page of updates (${reader.updated.length - updatesBefore})`);
        for (const m of [...replies, ...fresh])
          assert.deepEqual(updatesOf(reader, room, m.seq), [], `seq ${m.seq} is new to the reader: it came as 'message' only`);
        assert.equal(
          reader.messages.find((m) => m.seq === fresh[0].seq)?.body,
          'new 0, edited',
          'a new message arrives in its latest state',
        );
        assert.equal(held.get(3)?.replyCount, 4, 'the thread root counts its replies that are not deleted');

        if (transport === 'ws') {
          const joins = sent.filter((f) => f.event === 'room.join');
          assert.equal(joins.length, 2);
          assert.deepEqual(joins[1].data, { roomId: room, sinceSeq: OLD, sinceModSeq: OLD + 1 });
          const pages = sent.filter((f) => f.event === 'message.changes');
          assert.ok(pages.length >= 1, 'paged on with message.changes');
          assert.ok(
            pages.every((f) => typeof f.data.afterModSeq === 'number' && f.data.afterModSeq > OLD + 1 && f.data.limit === 100),
            'each page after the last modSeq of the one before',
          );
        }
        reader.client.close();
        writer.client.close();
      } finally {
        await proxy.close();
      }
    });
  }

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

type ScriptedFrame = { event: string; data: any; id?: string };

/**
 * A raw ws server standing in for the service: it greets each connection with a `session`, records
 * every frame in `frames` and lets `respond` answer it with pushes and replies.
 */
async function scriptedServer(
  frames: ScriptedFrame[],
  respond: (
    frame: ScriptedFrame,
    push: (event: string, data: unknown) => void,
    reply: (id: string | undefined, body: object) => void,
  ) => void,
): Promise<{ server: WebSocketServer; url: string }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  server.on('connection', (sock) => {
    const push = (event: string, data: unknown) => sock.send(JSON.stringify({ event, data }));
    const reply = (id: string | undefined, body: object) => sock.send(JSON.stringify({ id, ...body }));
    push('session', { userId: 'scripted-user', connectionId: 'c1' });
    sock.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as ScriptedFrame;
      frames.push(frame);
      respond(frame, push, reply);
    });
  });
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

function closeScripted(server: WebSocketServer): void {
  for (const c of server.clients) c.terminate();
  server.close();
}

describe('client library against a scripted ws server', () => {
  let server: WebSocketServer;
  let url: string;
  const frames: ScriptedFrame[] = [];
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
    ({ server, url } = await scriptedServer(frames, (frame, push, reply) => {
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
    }));
  });

  after(() => closeScripted(server));

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

describe('client library against a scripted ws server: message changes', () => {
  let server: WebSocketServer;
  let url: string;
  const frames: ScriptedFrame[] = [];
  const ROOM = 'scripted-changes';

  const state = (seq: number, modSeq: number) => ({
    id: `m${seq}`,
    roomId: ROOM,
    seq,
    senderId: 'other',
    body: `seq ${seq} at ${modSeq}`,
    clientMsgId: null,
    createdAt: new Date(0).toISOString(),
    ...UNCHANGED,
    version: modSeq,
    modSeq,
  });

  before(async () => {
    ({ server, url } = await scriptedServer(frames, (frame, push, reply) => {
      if (frame.event === 'room.join') {
        // A change pushed before the join reply: the client learns where the room starts only from the reply.
        push('message.updated', state(2, 2));
        reply(frame.id, { ok: true, data: { roomId: ROOM, lastSeq: 2, lastModSeq: 2, lastReadSeq: 0, unread: 0 } });
        // modSeq 3 is lost between instances; 4 (an older state of seq 1) arrives after 5.
        push('message.updated', state(1, 5));
        push('message.updated', state(1, 4));
        push('message.new', state(3, 6));
      } else if (frame.event === 'message.changes') {
        const all = [state(2, 3), state(1, 5), state(3, 6)].filter((m) => m.modSeq > frame.data.afterModSeq);
        reply(frame.id, { ok: true, data: { messages: all, hasMore: false, lastModSeq: 6 } });
      } else if (frame.event === 'message.edit') {
        // The first attempt meets a storage outage (nothing stored), the second is stored.
        if (frames.filter((f) => f.event === 'message.edit').length === 1)
          reply(frame.id, { ok: false, error: { code: 'UNAVAILABLE', message: 'db down' } });
        else reply(frame.id, { ok: true, data: { ...state(1, 7), body: frame.data.body } });
      }
    }));
  });

  after(() => closeScripted(server));

  it('drops older states, and reads message.changes from its cursor when a modSeq stays missing', async () => {
    const w = await open('ws', url, 'scripted-user', { requestTimeoutMs: 1000 });
    assert.deepEqual(await w.client.join(ROOM), { roomId: ROOM, lastSeq: 2, lastModSeq: 2, lastReadSeq: 0, unread: 0 });
    await until('caught up', () => w.client.lastModSeq(ROOM) === 6, 3000);
    await sleep(200);
    assert.deepEqual(
      w.updated.map((m) => [m.seq, m.modSeq]),
      [
        [2, 2],
        [1, 5],
        [2, 3],
      ],
    );
    assert.deepEqual(
      w.messages.map((m) => [m.seq, m.modSeq]),
      [[3, 6]],
    );
    assert.deepEqual(
      frames.filter((f) => f.event === 'message.changes').map((f) => f.data),
      [{ roomId: ROOM, afterModSeq: 2, limit: 100 }],
    );

    const edited = await w.client.edit(ROOM, 1, 'retried edit');
    assert.deepEqual([edited.modSeq, edited.body], [7, 'retried edit']);
    assert.equal(frames.filter((f) => f.event === 'message.edit').length, 2, 'retried once after UNAVAILABLE');
    assert.deepEqual(w.updated.at(-1), edited);
    assert.equal(w.client.lastModSeq(ROOM), 7);
    w.client.close();
  });
});

describe('RoomChanges (the change cursor of one joined room)', () => {
  const at = (seq: number, modSeq: number) => ({ seq, modSeq }) as Message;

  it('moves only over contiguous modSeqs, jumps on reach, and holds the highest modSeq per seq', () => {
    const c = new RoomChanges();
    c.note(7); // seen before the join answered
    assert.equal(c.upTo, null);
    assert.equal(c.hasGap, false);
    c.reach(5);
    assert.equal(c.upTo, 5);
    assert.equal(c.hasGap, true, '6 is missing');
    c.note(8);
    c.note(6);
    assert.deepEqual([c.upTo, c.hasGap], [8, false]);
    c.note(10);
    c.note(3); // an old value arriving late changes nothing
    assert.deepEqual([c.upTo, c.hasGap], [8, true]);
    c.reach(9); // a catch-up read to the end at lastModSeq 9
    assert.deepEqual([c.upTo, c.hasGap], [10, false]);
    c.reach(4);
    assert.equal(c.upTo, 10, 'never goes back');

    assert.equal(c.take(at(1, 5)), true);
    assert.equal(c.take(at(1, 5)), false, 'the same state again');
    assert.equal(c.take(at(1, 4)), false, 'an older state');
    assert.equal(c.take(at(1, 9)), true);
    assert.equal(c.take(at(2, 1)), true, 'per seq');
  });
});
