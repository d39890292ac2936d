import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import {
  connect,
  ChatRequestError,
  type ChatClient,
  type ConnectOptions,
  type ConnectionState,
  type Message,
  type RoomRecovery,
  type Transport,
} from '../client/src/index.js';
import { RoomChanges } from '../client/src/room-changes.js';
import { sleep } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { freePort, PROJECT_ROOT, UNLIMITED_RATES } from './support/instance.js';
import { MESSAGE_KEYS, UNCHANGED } from './support/message-shape.js';
import { packClient, runInPackage, type PackedClient } from './support/client-package.js';
import { apiCall } from './support/http-api.js';
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
    assert.deepEqual(await io.client.join(room), { roomId: room, lastSeq: 0, lastModSeq: 0, lastReadSeq: 0, unread: 0, role: 'member' });
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
      assert.deepEqual(await alice.client.join(room), {
        roomId: room,
        lastSeq: 0,
        lastModSeq: 0,
        lastReadSeq: 0,
        unread: 0,
        role: 'member',
      });
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

  it('moderates: mute, unmute, kick and ban (room handle too) hold for the target on the other instance and transport, and are listed', async () => {
    const [A, B] = cluster.instances;
    const room = 'client-moderation';
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${room}`, { key: API_KEY, body: { visibility: 'public' } })).status, 201);
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${room}/members/cl-mod`, { key: API_KEY, body: { role: 'moderator' } })).status, 204);
    const mod = await open('socket.io', A.url, 'cl-mod');
    const target = await open('ws', B.url, 'cl-target');
    const removed: unknown[] = [];
    target.client.on('removed', (r) => removed.push(r));
    assert.equal((await mod.client.join(room)).role, 'moderator');
    await target.client.join(room);
    await assert.rejects(target.client.mute(room, 'cl-mod'), isCode('FORBIDDEN'), 'a member cannot moderate');
    await assert.rejects(target.client.sanctions(room), isCode('FORBIDDEN'), 'nor list the mutes and bans');

    await mod.client.mute(room, 'cl-target', { durationMs: 60_000 });
    const muted = await target.client.send(room, 'while muted').then(
      () => assert.fail('a muted send was stored'),
      (err: unknown) => err,
    );
    assert.ok(isCode('FORBIDDEN')(muted));
    const details = (muted as ChatRequestError).details as { reason: string; until: string };
    assert.equal(details.reason, 'muted');
    assert.ok(Date.parse(details.until) > Date.now() + 50_000, `until ${details.until} is about a minute away`);
    assert.deepEqual(await mod.client.sanctions(room), {
      roomId: room,
      mutes: [{ userId: 'cl-target', until: details.until, reason: null }],
      bans: [],
    });
    await mod.client.unmute(room, 'cl-target');
    assert.equal((await target.client.send(room, 'unmuted')).senderId, 'cl-target');

    await mod.client.room(room).kick('cl-target');
    await until('kicked', () => removed.length === 1);
    assert.deepEqual(removed, [{ roomId: room, reason: 'kicked' }]);
    await target.client.join(room);

    await mod.client.room(room).ban('cl-target', { reason: 'spam' });
    await until('banned', () => removed.length === 2);
    assert.deepEqual(removed[1], { roomId: room, reason: 'banned' });
    const bans = await apiCall(A, 'GET', `/v1/rooms/${room}/bans`, { key: API_KEY });
    assert.deepEqual(bans.body, { bans: [{ userId: 'cl-target', until: null, reason: 'spam' }] });
    assert.deepEqual(await mod.client.room(room).sanctions(), { roomId: room, mutes: [], bans: bans.body.bans });
    await assert.rejects(target.client.join(room), isCode('FORBIDDEN'), 'a banned user cannot rejoin');
    await mod.client.unban(room, 'cl-target');
    assert.equal((await target.client.join(room)).roomId, room);
    mod.client.close();
    target.client.close();
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

  for (const transport of ['socket.io', 'ws'] as Transport[]) {
    const tag = transport === 'ws' ? 'ws' : 'io';

    it(`${transport}: room(id) is one handle per room, with that room's requests and only its events`, async () => {
      const live = cluster.instances[1]; // the failover test above killed instances[0]
      const alice = await open(transport, live.url, `cl-rh-alice-${tag}`);
      const bob = await open('ws', live.url, `cl-rh-bob-${tag}`);
      const [mine, other] = [`client-handle-${tag}`, `client-handle-other-${tag}`];
      const room = alice.client.room(mine);
      assert.equal(alice.client.room(mine), room, 'the same object for the same id');
      assert.notEqual(alice.client.room(other), room);
      assert.equal(room.roomId, mine);
      const seen: { event: string; roomId: string }[] = [];
      for (const event of ['message', 'updated', 'typing', 'presence'] as const)
        room.on(event, (p: { roomId: string }) => seen.push({ event, roomId: p.roomId }));

      assert.equal((await room.join()).roomId, mine);
      await alice.client.room(other).join();
      for (const r of [mine, other]) await bob.client.join(r);
      await until('presence of bob in both rooms', () => seen.some((e) => e.event === 'presence'));
      const sent = await room.send('through the handle');
      assert.equal(sent.roomId, mine);
      await bob.client.send(other, 'elsewhere');
      await bob.client.send(mine, 'to the handle');
      await bob.client.typing(other, true);
      await bob.client.typing(mine, true);
      assert.equal((await room.edit(sent.seq, 'edited through the handle')).version, 2);
      assert.equal((await room.react(sent.seq, '+1')).reactions[0].key, '+1');
      assert.deepEqual((await room.unreact(sent.seq, '+1')).reactions, []);
      await until('both rooms delivered to the client', () => seqsIn(alice, other).length === 1 && seqsIn(alice, mine).length === 2);
      await until(
        'the handle saw its typing and updates',
        () => seen.filter((e) => e.event === 'updated').length === 3 && seen.some((e) => e.event === 'typing'),
      );
      assert.ok(
        seen.every((e) => e.roomId === mine),
        `only ${mine}: ${JSON.stringify(seen)}`,
      );
      assert.equal(seen.filter((e) => e.event === 'message').length, 2);
      assert.deepEqual(
        (await room.history()).messages.map((m) => m.body),
        ['edited through the handle', 'to the handle'],
      );
      assert.ok((await room.presence()).includes(`cl-rh-bob-${tag}`));
      assert.equal(room.lastModSeq(), alice.client.lastModSeq(mine));
      assert.ok((await room.delete(sent.seq)).deletedAt);
      await room.leave();
      assert.equal(room.lastModSeq(), null, 'left');
      alice.client.close();
      bob.client.close();
    });

    it(`${transport}: send takes the caller's clientMsgId (stored once, validated) and an AbortSignal (before the write nothing is sent)`, async () => {
      const w = await open(transport, cluster.instances[1].url, `cl-so-${tag}`);
      const room = `client-send-options-${tag}`;
      const rowsWith = async (clientMsgId: string) =>
        (await cluster.db.query('SELECT seq FROM messages WHERE room_id = $1 AND client_msg_id = $2', [room, clientMsgId])).length;
      const abortError = (err: unknown) => err instanceof Error && err.name === 'AbortError';

      // Aborted while the client is still connecting: rejected at once, never written.
      const early = new AbortController();
      const waiting = w.client.send(room, 'never', { clientMsgId: `early-${tag}`, signal: early.signal });
      assert.equal(w.client.state, 'CONNECTING');
      early.abort();
      await assert.rejects(waiting, abortError);
      await assert.rejects(w.client.send(room, 'never', { clientMsgId: `pre-${tag}`, signal: AbortSignal.abort() }), abortError);

      const first = await w.client.send(room, 'once', { clientMsgId: `mine-${tag}` });
      const again = await w.client.send(room, 'once, retried', { clientMsgId: `mine-${tag}` });
      assert.equal(first.clientMsgId, `mine-${tag}`);
      assert.deepEqual([again.id, again.seq, again.body], [first.id, first.seq, 'once']);
      for (const bad of ['', 'has space', 'x'.repeat(65), 42 as unknown as string])
        await assert.rejects(
          w.client.send(room, 'bad', { clientMsgId: bad }),
          (err: unknown) => err instanceof TypeError && /clientMsgId/.test(err.message),
        );

      await sleep(300);
      assert.equal(await rowsWith(`mine-${tag}`), 1);
      assert.equal(await rowsWith(`early-${tag}`), 0, 'the aborted send was never stored');
      assert.equal(await rowsWith(`pre-${tag}`), 0);
      assert.equal((await w.client.history(room)).messages.length, 1);
      w.client.close();
    });

    it(`${transport}: after a reconnect emits 'recovered' per room; a backlog beyond resume.maxPages skips ahead with discontinuity`, async () => {
      const live = cluster.instances[1];
      const [small, big] = [`client-rec-small-${tag}`, `client-rec-big-${tag}`];
      const proxy = await startTcpProxy(live.port);
      try {
        const reader = await open(transport, proxy.url, `cl-rec-reader-${tag}`, { resume: { maxPages: 1 } });
        const writer = await open('ws', live.url, `cl-rec-writer-${tag}`);
        const recovered: { rooms: RoomRecovery[]; discontinuity: boolean }[] = [];
        const bigRecovered: RoomRecovery[] = [];
        reader.client.on('recovered', (r) => recovered.push(r));
        reader.client.room(big).on('recovered', (r) => bigRecovered.push(r));
        for (const r of [small, big]) {
          await reader.client.join(r);
          await writer.client.send(r, 'before');
        }
        await until('the reader has both', () => seqsIn(reader, small).length === 1 && seqsIn(reader, big).length === 1);

        proxy.cut();
        await until('the reader lost its connection', () => reader.client.state === 'CONNECTING');
        for (let i = 0; i < 3; i++) await writer.client.send(small, `away ${i}`);
        const AWAY = 230; // the join's 100 and one history page of 100: 30 are skipped
        await inBatches(range(AWAY), 23, (i) => writer.client.send(big, `away ${i}`));
        proxy.restore();

        await until('recovered', () => recovered.length === 1, 30_000);
        const byRoom = new Map(recovered[0].rooms.map((r) => [r.roomId, r]));
        assert.deepEqual(byRoom.get(small), { roomId: small, fromSeq: 1, toSeq: 4, fromModSeq: 1, toModSeq: 4, discontinuity: false });
        assert.deepEqual(byRoom.get(big), {
          roomId: big,
          fromSeq: 1,
          toSeq: 1 + AWAY,
          fromModSeq: 1,
          toModSeq: 1 + AWAY,
          discontinuity: true,
          reason: 'maxPages',
        });
        assert.equal(recovered[0].discontinuity, true);
        assert.deepEqual(bigRecovered, [byRoom.get(big)]);
        assert.deepEqual(seqsIn(reader, small), range(4));
        assert.deepEqual(seqsIn(reader, big), range(201), 'the join page and one history page, then the skip');
        // Delivery goes on after the skip.
        await writer.client.send(big, 'after the skip');
        await until('the live message after the skip', () => seqsIn(reader, big).at(-1) === AWAY + 2);
        assert.equal(reader.client.lastModSeq(big), AWAY + 2);
        reader.client.close();
        writer.client.close();
      } finally {
        await proxy.close();
      }
    });
  }

  describe('the packed package (npm pack of client/)', () => {
    let pkg: PackedClient;

    before(async () => {
      pkg = await packClient();
    });

    after(() => pkg.remove());

    it('is publishable: engines like the root, public access, repository directory, socket.io-client an optional peer', async () => {
      const root = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { engines: unknown };
      const m = pkg.manifest;
      assert.deepEqual(m.engines, root.engines);
      assert.deepEqual(m.publishConfig, { access: 'public' });
      assert.equal(m.repository.directory, 'client');
      assert.equal(m.sideEffects, false);
      assert.equal(m.dependencies, undefined, 'no runtime dependencies');
      assert.ok(m.peerDependencies['socket.io-client']);
      assert.deepEqual(m.peerDependenciesMeta, { 'socket.io-client': { optional: true } });
      for (const f of ['dist/index.js', 'dist/index.d.ts', 'README.md', 'src/index.ts']) assert.ok(pkg.files.includes(f), f);
    });

    it('ships source maps whose sources all resolve inside the tarball', async () => {
      const maps = pkg.files.filter((f) => f.endsWith('.map'));
      assert.ok(maps.includes('dist/index.js.map') && maps.includes('dist/index.d.ts.map'), 'JS and declaration maps');
      for (const map of maps) {
        const { sources, sourceRoot = '' } = JSON.parse(await readFile(join(pkg.root, map), 'utf8')) as {
          sources: string[];
          sourceRoot?: string;
        };
        assert.ok(sources.length > 0, map);
        for (const source of sources) {
          const target = posix.normalize(posix.join(posix.dirname(map), sourceRoot, source));
          assert.ok(pkg.files.includes(target), `${map} names ${source}, which is not in the package (${target})`);
        }
      }
    });

    it('works over ws without socket.io-client installed, and says what to install when socket.io is asked for', async () => {
      const url = cluster.instances[1].url; // the failover test above killed instances[0]
      const out = await runInPackage(
        pkg,
        `
        import { connect } from '@chat-service/client';
        const [wsUrl, url, token] = process.argv.slice(2);
        const { default: WebSocket } = await import(wsUrl);
        const resolvable = await import('socket.io-client').then(() => true, () => false);
        const ws = connect({ url, token, transport: 'ws', WebSocket });
        await ws.join('client-packed');
        const sent = await ws.send('client-packed', 'from the packed package');
        ws.close();
        const io = connect({ url, token, transport: 'socket.io' });
        const error = await new Promise((resolve) => io.on('error', resolve));
        const join = await io.join('client-packed').then(() => 'joined', (err) => err.code);
        console.log(JSON.stringify({ resolvable, body: sent.body, error, state: io.state, join }));
        `,
        [url, await tokenFor('cl-packed')],
      );
      assert.equal(out.resolvable, false, 'socket.io-client must not be resolvable from the package');
      assert.equal(out.body, 'from the packed package');
      assert.equal(out.error.code, 'TRANSPORT_UNAVAILABLE');
      assert.match(out.error.message, /npm install socket\.io-client/);
      assert.equal(out.state, 'CLOSED');
      assert.equal(out.join, 'CLOSED');
    });
  });

  it('rejects unusable options at once', () => {
    // Node 22 has a global WebSocket (Node 20 has none): hide it to see the refusal without one.
    const globalWs = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
    if (globalWs) delete (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      assert.throws(() => connect({ url: 'http://127.0.0.1:1', token: 't', transport: 'ws' }), /WebSocket/);
    } finally {
      if (globalWs) Object.defineProperty(globalThis, 'WebSocket', globalWs);
    }
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
  it("an abort after the send was written rejects at once and is not retried; the frame carried the caller's clientMsgId", async () => {
    // The script answers no send after the fourth: this one is written and never acknowledged.
    const w = await open('ws', url, 'scripted-user', { requestTimeoutMs: 5000 });
    await until('open', () => w.client.state === 'OPEN');
    const ctl = new AbortController();
    const sending = w.client.send('scripted', 'abandoned', { clientMsgId: 'caller-chosen_1', signal: ctl.signal });
    const written = () => frames.filter((f) => f.event === 'message.send' && f.data.clientMsgId === 'caller-chosen_1');
    await until('the send is written', () => written().length === 1, 3000);
    const abortedAt = Date.now();
    ctl.abort();
    await assert.rejects(sending, (err: unknown) => err instanceof Error && err.name === 'AbortError');
    assert.ok(Date.now() - abortedAt < 1000, 'rejected without waiting for the reply');
    await sleep(200);
    assert.equal(written().length, 1);
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

describe('client library against a scripted ws server: roles, rate limits and removals', () => {
  let server: WebSocketServer;
  let url: string;
  const frames: ScriptedFrame[] = [];
  const ROOM = 'scripted-limits';
  const RETRY_AFTER_MS = 60;

  before(async () => {
    ({ server, url } = await scriptedServer(frames, (frame, push, reply) => {
      if (frame.event === 'room.join')
        reply(frame.id, { ok: true, data: { roomId: ROOM, lastSeq: 0, lastModSeq: 0, lastReadSeq: 0, unread: 0, role: 'moderator' } });
      else if (frame.event === 'message.send') {
        // Slow mode (or a rate limit) twice, then stored; after the ack the server bans the sender.
        if (frames.filter((f) => f.event === 'message.send').length <= 2)
          return reply(frame.id, {
            ok: false,
            error: { code: 'RATE_LIMITED', message: 'slow down', details: { retryAfterMs: RETRY_AFTER_MS } },
          });
        reply(frame.id, {
          ok: true,
          data: {
            id: 'm1',
            roomId: ROOM,
            seq: 1,
            senderId: 'scripted-user',
            body: frame.data.body,
            clientMsgId: frame.data.clientMsgId,
            createdAt: new Date(0).toISOString(),
            ...UNCHANGED,
            modSeq: 1,
          },
        });
        push('room.removed', { roomId: ROOM, reason: 'banned' });
      }
    }));
  });

  after(() => closeScripted(server));

  it("answers the join's role, reports each RATE_LIMITED wait as 'throttled' before retrying, and passes room.removed's reason on", async () => {
    const w = await open('ws', url, 'scripted-user');
    const throttled: unknown[] = [];
    const onRoom: unknown[] = [];
    const removed: unknown[] = [];
    w.client.on('throttled', (t) => throttled.push(t));
    w.client.room(ROOM).on('throttled', (t) => onRoom.push(t));
    w.client.on('removed', (r) => removed.push(r));
    assert.equal((await w.client.join(ROOM)).role, 'moderator');
    const sent = await w.client.send(ROOM, 'patient');
    assert.equal(sent.seq, 1);
    const wait = { roomId: ROOM, retryAfterMs: RETRY_AFTER_MS };
    assert.deepEqual(throttled, [wait, wait]);
    assert.deepEqual(onRoom, [wait, wait], 'the room handle hears its own');
    assert.equal(new Set(frames.filter((f) => f.event === 'message.send').map((f) => f.data.clientMsgId)).size, 1, 'one clientMsgId');
    await until('removed', () => removed.length === 1, 3000);
    assert.deepEqual(removed, [{ roomId: ROOM, reason: 'banned' }]);
    w.client.close();
  });
});

describe('client library against a scripted ws server: recovery', () => {
  let server: WebSocketServer;
  let url: string;
  const frames: ScriptedFrame[] = [];
  const ROOM = 'scripted-recovery';
  const info = (lastSeq: number) => ({ roomId: ROOM, lastSeq, lastModSeq: lastSeq, lastReadSeq: 0, unread: 0 });

  const HOLE = 'scripted-hole';
  const holeMessage = (seq: number) => ({
    id: `h${seq}`,
    roomId: HOLE,
    seq,
    modSeq: seq,
    senderId: 'other',
    body: `body ${seq}`,
    clientMsgId: null,
    createdAt: new Date(0).toISOString(),
  });

  before(async () => {
    ({ server, url } = await scriptedServer(frames, (frame, _push, reply) => {
      const hole = frame.data.roomId === HOLE;
      if (frame.event === 'room.join' && frame.data.sinceSeq === undefined)
        reply(frame.id, { ok: true, data: hole ? { ...info(3), roomId: HOLE } : info(3) });
      // The rejoin says more follow, and every history page is empty yet says so too.
      else if (frame.event === 'room.join' && !hole)
        reply(frame.id, { ok: true, data: { ...info(9), missed: [], hasMore: true, changes: [], hasMoreChanges: false } });
      else if (frame.event === 'message.history' && !hole) reply(frame.id, { ok: true, data: { messages: [], hasMore: true } });
      // Retention removes 4-7 between the rejoin's answer (not truncated yet) and its history page.
      else if (frame.event === 'room.join')
        reply(frame.id, { ok: true, data: { ...info(9), roomId: HOLE, missed: [], hasMore: true, changes: [], hasMoreChanges: false } });
      else if (frame.event === 'message.history')
        reply(frame.id, { ok: true, data: { messages: [8, 9].map(holeMessage), hasMore: false } });
    }));
  });

  after(() => closeScripted(server));

  it("reports a discontinuity ('incomplete') when the service's history pages stop making progress", async () => {
    const w = await open('ws', url, 'scripted-user', { reconnect: { minDelayMs: 20, maxDelayMs: 40 } });
    const recovered: { rooms: RoomRecovery[]; discontinuity: boolean }[] = [];
    w.client.on('recovered', (r) => recovered.push(r));
    await w.client.join(ROOM);
    for (const c of server.clients) c.terminate();
    await until('recovered', () => recovered.length === 1, 3000);
    assert.deepEqual(recovered[0], {
      rooms: [{ roomId: ROOM, fromSeq: 3, toSeq: 3, fromModSeq: 3, toModSeq: 9, discontinuity: true, reason: 'incomplete' }],
      discontinuity: true,
    });
    assert.equal(frames.filter((f) => f.event === 'message.history').length, 1, 'one page without progress ends the paging');
    w.client.close();
  });

  it("skips seqs a history page shows removed, delivers on after them, and reports 'truncated'", async () => {
    const w = await open('ws', url, 'scripted-user', { reconnect: { minDelayMs: 20, maxDelayMs: 40 } });
    const recovered: { rooms: RoomRecovery[]; discontinuity: boolean }[] = [];
    w.client.on('recovered', (r) => recovered.push(r));
    await w.client.join(HOLE);
    for (const c of server.clients) c.terminate();
    await until('recovered', () => recovered.length === 1, 3000);
    assert.deepEqual(recovered[0].rooms, [
      { roomId: HOLE, fromSeq: 3, toSeq: 9, fromModSeq: 3, toModSeq: 9, discontinuity: true, reason: 'truncated' },
    ]);
    assert.deepEqual(seqsIn(w, HOLE), [8, 9]);
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
