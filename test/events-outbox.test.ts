import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { createTestDatabase, setDatabaseReachable, type TestDatabase } from './support/database.js';
import { EventsStreamReader, firstAppearances, relayLeader, relays, uniqueStreamName, type StreamEvent } from './support/events-stream.js';
import { startInstance, UNLIMITED_RATES, type Instance } from './support/instance.js';
import { PrivateRedis } from './support/private-infra.js';
import { ReliableClient } from './support/reliable-client.js';
import { tokenFor } from './support/tokens.js';
import { apiCall, type Method } from './support/http-api.js';

const API_KEY = 'events-outbox-e2e-key-0123456789';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Long enough for an event that was going to come, after the ones we waited for did. */
const SETTLE_MS = 500;

const api = (inst: Instance, method: Method, path: string, body?: unknown) => apiCall(inst, method, path, { body, key: API_KEY });

const inRooms = (events: StreamEvent[], rooms: string[]) => events.filter((e) => rooms.includes(e.roomId));
const messageIds = (events: StreamEvent[]) => new Set(events.filter((e) => e.type === 'message.created').map((e) => e.data.id as string));

/** Asserts that each room's message.created events first appear in seq order, every seq from 1 once. */
function assertSeqOrder(events: StreamEvent[], rooms: string[], counts: Map<string, number>): void {
  for (const roomId of rooms) {
    const seqs = firstAppearances(events)
      .filter((e) => e.roomId === roomId && e.type === 'message.created')
      .map((e) => e.data.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: counts.get(roomId) ?? 0 }, (_, i) => i + 1),
      `${roomId}: first appearances follow seq`,
    );
  }
}

describe('events out: outbox relayed to a Redis Stream', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;
  let stream: EventsStreamReader;
  const clients: TestClient[] = [];

  before(async () => {
    const name = uniqueStreamName();
    stream = new EventsStreamReader(name);
    cluster = await startCluster(2, { API_KEYS: API_KEY, EVENTS_STREAM: name, ...UNLIMITED_RATES });
    [A, B] = cluster.instances;
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    await stream.close();
  });

  const client = async (kind: 'io' | 'ws', inst: Instance, user: string) => {
    const c = await connect(kind, inst.url, await tokenFor(user));
    clients.push(c);
    return c;
  };

  it('messages (socket.io, ws, HTTP), room upserts and real membership changes appear with their data; repeats and no-ops do not', async () => {
    const room = 'ev-room';
    const privateRoom = 'ev-private';
    const alice = await client('io', A, 'ev-alice');
    const bob = await client('ws', B, 'ev-bob');

    const m1 = await alice.ok('message.send', { roomId: room, body: 'over socket.io', clientMsgId: 'ev-1' });
    assert.deepEqual(await alice.ok('message.send', { roomId: room, body: 'over socket.io', clientMsgId: 'ev-1' }), m1, 'a repeat');
    const m2 = await bob.ok('message.send', { roomId: room, body: 'over ws' });
    const posted = await api(B, 'POST', `/v1/rooms/${room}/messages`, { body: 'over HTTP', senderId: 'ev-service', clientMsgId: 'ev-3' });
    assert.equal(posted.status, 201);
    assert.equal(
      (await api(A, 'POST', `/v1/rooms/${room}/messages`, { body: 'over HTTP', senderId: 'ev-service', clientMsgId: 'ev-3' })).status,
      200,
    );
    const m3 = posted.body;

    const created = await api(A, 'PUT', `/v1/rooms/${privateRoom}`, { visibility: 'private', title: 'Private', metadata: { team: 'a' } });
    assert.equal(created.status, 201);
    const replaced = await api(B, 'PUT', `/v1/rooms/${privateRoom}`, { visibility: 'private', title: 'Renamed' });
    assert.equal(replaced.status, 200);
    for (const [inst, method] of [
      [A, 'PUT'],
      [B, 'PUT'], // no-op: already a member
      [B, 'DELETE'],
      [A, 'DELETE'], // no-op: no longer a member
    ] as const) {
      assert.equal((await api(inst, method, `/v1/rooms/${privateRoom}/members/ev-carol`)).status, 204);
    }
    assert.equal((await api(A, 'DELETE', `/v1/rooms/${privateRoom}/members/never-a-member`)).status, 204);
    const refused = await bob.request('message.send', { roomId: privateRoom, body: 'not a member' });
    assert.equal(refused.error?.code, 'FORBIDDEN');

    const expected = [
      { type: 'message.created', roomId: room, data: m1 },
      { type: 'message.created', roomId: room, data: m2 },
      { type: 'message.created', roomId: room, data: m3 },
      { type: 'room.upserted', roomId: privateRoom, data: created.body },
      { type: 'room.upserted', roomId: privateRoom, data: replaced.body },
      { type: 'member.added', roomId: privateRoom, data: { roomId: privateRoom, userId: 'ev-carol' } },
      { type: 'member.removed', roomId: privateRoom, data: { roomId: privateRoom, userId: 'ev-carol' } },
    ];
    await stream.waitUntil('all seven events', (events) => inRooms(events, [room, privateRoom]).length >= expected.length);
    await sleep(SETTLE_MS);
    const events = inRooms(await stream.read(), [room, privateRoom]);
    assert.deepEqual(
      events.map(({ type, roomId, data }) => ({ type, roomId, data })),
      expected,
      'exactly these events, in commit order within each room (no event for the repeats, the no-ops, the refusal or the implicit room)',
    );
    for (const e of events) {
      assert.deepEqual(e.fields, ['id', 'type', 'roomId', 'data']);
      assert.match(e.id, UUID);
    }
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'one id per event');
  });

  it('HTTP edits and deletes appear as message.updated and message.deleted (data: the tombstone), in modSeq order with message.created; refusals and repeats add nothing', async () => {
    const room = 'ev-changes';
    const path = (seq: number) => `/v1/rooms/${room}/messages/${seq}`;
    const root = (await api(A, 'POST', `/v1/rooms/${room}/messages`, { body: 'root', senderId: 'ev-svc' })).body;
    const other = (await api(B, 'POST', `/v1/rooms/${room}/messages`, { body: 'to delete', senderId: 'ev-svc' })).body;
    const edited = await api(B, 'PATCH', path(1), { body: 'root, edited', mentions: ['ev-bob'] });
    assert.equal(edited.status, 200);
    const deleted = await api(A, 'DELETE', path(2));
    assert.equal(deleted.status, 200);
    assert.deepEqual((await api(B, 'DELETE', path(2))).body, deleted.body, 'a repeated delete');
    assert.equal((await api(A, 'PATCH', path(1), { body: 'stale', expectedVersion: 1 })).status, 409);
    assert.equal((await api(A, 'PATCH', path(2), { body: 'on a tombstone' })).status, 404);
    // A reply, then its deletion: the reply's change takes the first modSeq, its parent's the second.
    const reply = (await api(B, 'POST', `/v1/rooms/${room}/messages`, { body: 'reply', senderId: 'ev-svc', parentSeq: 1 })).body;
    const rootNow = async () => (await api(A, 'GET', `/v1/rooms/${room}/messages?afterSeq=0&limit=1`)).body.messages;
    const replyRoot = await rootNow();
    const replyGone = (await api(A, 'DELETE', path(reply.seq))).body;
    const finalRoot = await rootNow();

    const expected = [
      { type: 'message.created', data: root },
      { type: 'message.created', data: other },
      { type: 'message.updated', data: edited.body },
      { type: 'message.deleted', data: deleted.body },
      { type: 'message.created', data: reply },
      { type: 'message.updated', data: replyRoot[0] },
      { type: 'message.deleted', data: replyGone },
      { type: 'message.updated', data: finalRoot[0] },
    ];
    await stream.waitUntil('every change', (events) => inRooms(events, [room]).length >= expected.length);
    await sleep(SETTLE_MS);
    const events = inRooms(await stream.read(), [room]);
    assert.deepEqual(
      events.map(({ type, data }) => ({ type, data })),
      expected,
      'exactly these events, in commit order',
    );
    assert.deepEqual(
      events.map((e) => e.data.modSeq),
      [1, 2, 3, 4, 5, 6, 7, 8],
      'modSeq order, gap-free',
    );
    assert.deepEqual(
      [deleted.body.body, deleted.body.deletedAt === null, deleted.body.version],
      ['', false, 2],
      'message.deleted carries the tombstone',
    );
    assert.deepEqual([replyRoot[0].seq, replyRoot[0].replyCount, finalRoot[0].replyCount], [1, 1, 0]);
  });

  it('each room’s events follow its seqs, and with two instances each event appears once (one relay)', async () => {
    const rooms = ['ord-0', 'ord-1', 'ord-2'];
    const senders = [
      await client('io', A, 'ord-u0'),
      await client('ws', A, 'ord-u1'),
      await client('io', B, 'ord-u2'),
      await client('ws', B, 'ord-u3'),
    ];
    const leader = await relayLeader([A, B]);
    const sends = Array.from({ length: 150 }, (_, n) =>
      senders[n % senders.length].ok('message.send', { roomId: rooms[n % rooms.length], body: `burst ${n}`, clientMsgId: `ord-${n}` }),
    );
    const acks = await Promise.all(sends);
    const ids = new Set(acks.map((m) => m.id as string));
    await stream.waitUntil('every burst message', (events) => [...ids].every((id) => messageIds(events).has(id)));
    await sleep(SETTLE_MS);
    const events = inRooms(await stream.read(), rooms);
    assert.equal(events.length, 150, 'one entry per message: no duplicates in normal operation');
    assert.equal(new Set(events.map((e) => e.id)).size, 150);
    assertSeqOrder(events, rooms, new Map(rooms.map((r) => [r, 50])));
    for (const e of events)
      assert.deepEqual(
        e.data,
        acks.find((m) => m.id === e.data.id),
        'data is the acked Message',
      );
    assert.equal(await relayLeader([A, B]), leader, 'the same single relay throughout');
    assert.deepEqual(await cluster.db.query('SELECT count(*)::int AS n FROM outbox'), [{ n: 0 }], 'the outbox is drained');
  });

  it('when the relaying instance is SIGKILLed mid-burst the other takes over: every acked message appears, duplicates only with their event id', async () => {
    const rooms = ['fo-0', 'fo-1'];
    const leader = await relayLeader([A, B]);
    const survivor = leader === A ? B : A;
    const dead = new Set<Instance>();
    const liveUrls = () => [A, B].filter((i) => !dead.has(i)).map((i) => i.url);
    const senders = Array.from(
      { length: 6 },
      (_, i) => new ReliableClient(`fo-s${i}`, i % 2 ? 'ws' : 'io', liveUrls, rooms[i % rooms.length], i % 2),
    );
    const PER_SENDER = 50;
    let killedAt = 0;
    try {
      const runs = senders.map(async (s) => {
        for (let n = 0; n < PER_SENDER; n++) await s.sendUntilOk(`${s.name} ${n}`, `${s.name}-${n}`, 30_000);
      });
      const acked = () => senders.reduce((n, s) => n + s.acks.length, 0);
      for (const deadline = Date.now() + 30_000; acked() < 80 && Date.now() < deadline;) await sleep(10);
      leader.proc.kill('SIGKILL');
      killedAt = Date.now();
      dead.add(leader);
      await Promise.all(runs);
    } finally {
      for (const s of senders) s.close();
    }
    const burstEnded = Date.now();
    const acks = senders.flatMap((s) => s.acks);
    assert.equal(acks.length, senders.length * PER_SENDER);
    const stored = await cluster.db.query<{ id: string; room_id: string }>('SELECT id, room_id FROM messages WHERE room_id = ANY ($1)', [
      rooms,
    ]);
    assert.equal(stored.length, acks.length, 'every stored message was acked (clients retry with their clientMsgId)');

    const events = inRooms(
      await stream.waitUntil('every stored message', (all) => stored.every((m) => messageIds(all).has(m.id)), 20_000),
      rooms,
    );
    const caughtUpMs = Date.now() - burstEnded;
    const takeoverMs = (events.find((e) => e.at > killedAt)?.at ?? NaN) - killedAt;
    const eventIdsByMessage = new Map<string, Set<string>>();
    for (const e of events) eventIdsByMessage.set(e.data.id, (eventIdsByMessage.get(e.data.id) ?? new Set()).add(e.id));
    const duplicates = events.length - eventIdsByMessage.size;
    console.log(
      `failover: ${acks.length} acked, ${events.length} stream entries (${duplicates} re-published), ` +
        `first entry ${takeoverMs} ms after the kill, stream complete ${caughtUpMs} ms after the burst`,
    );
    for (const [messageId, eventIds] of eventIdsByMessage) assert.equal(eventIds.size, 1, `message ${messageId}: one event id`);
    const perRoom = new Map(rooms.map((r) => [r, stored.filter((m) => m.room_id === r).length]));
    assertSeqOrder(events, rooms, perRoom);
    assert.equal(await relays(survivor), true, 'the survivor relays now');
    assert.deepEqual(await cluster.db.query('SELECT count(*)::int AS n FROM outbox'), [{ n: 0 }], 'the outbox is drained');
  });
});

describe('events out: the relay rides out outages', () => {
  const redis = new PrivateRedis();
  const name = uniqueStreamName();
  let db: TestDatabase;
  let inst: Instance;
  /** Reads the stream on the private Redis (answers nothing while it is down). */
  let reader: Redis;

  before(async () => {
    await redis.start();
    db = await createTestDatabase();
    inst = await startInstance('outages', { DATABASE_URL: db.url, REDIS_URL: redis.url, EVENTS_STREAM: name, API_KEYS: API_KEY });
    reader = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    reader.on('error', () => undefined);
  });
  after(async () => {
    reader.disconnect();
    await inst.stop();
    await redis.stop();
    await db.drop();
  });

  const post = async (body: string, clientMsgId?: string) =>
    api(inst, 'POST', '/v1/rooms/outage-room/messages', { body, senderId: 'outage-svc', clientMsgId });
  /** The ids of the messages whose events are on the stream. */
  const published = async () => {
    const entries = (await reader.xrange(name, '-', '+').catch(() => [])) as [string, string[]][];
    return new Set(entries.map(([, f]) => JSON.parse(f[f.indexOf('data') + 1]).id as string));
  };
  const until = async (what: string, cond: () => Promise<boolean>, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms:\n${inst.output()}`);
      await sleep(100);
    }
  };

  it('keeps events in the outbox while Redis is down and publishes them when it is back, without crashing', async () => {
    const first = (await post('before the outage')).body;
    await until('the first event', async () => (await published()).has(first.id));
    await redis.stop();
    const during: any[] = [];
    for (let n = 0; n < 3; n++) {
      const r = await post(`during the outage ${n}`);
      assert.equal(r.status, 201, 'stored while Redis is down');
      during.push(r.body);
    }
    await sleep(1500);
    assert.equal(inst.proc.exitCode, null, 'still running');
    assert.deepEqual(await db.query('SELECT count(*)::int AS n FROM outbox'), [{ n: 3 }], 'kept in the outbox');
    const restarted = Date.now();
    await redis.start();
    await until('the events of the outage', async () => {
      const ids = await published();
      return during.every((m) => ids.has(m.id));
    });
    console.log(`Redis outage: the events were on the stream ${Date.now() - restarted} ms after Redis came back`);
    assert.match(inst.output(), /cannot append \d+ events to/, 'the failed appends were logged');
    assert.equal(inst.proc.exitCode, null);
  });

  it('takes the relay up again after the database dropped every session', async () => {
    assert.equal(await relays(inst), true);
    await setDatabaseReachable(db.name, false);
    await sleep(1500);
    await setDatabaseReachable(db.name, true);
    const reconnected = Date.now();
    let message: any = null;
    await until('a message stored again', async () => {
      const r = await post('after the database outage', 'after-db');
      if (r.status === 201 || r.status === 200) message = r.body;
      return message !== null;
    });
    await until('its event', async () => (await published()).has(message.id));
    console.log(`database outage: relaying again ${Date.now() - reconnected} ms after the database came back`);
    assert.equal(await relays(inst), true);
    assert.equal(inst.proc.exitCode, null, 'still running');
  });
});
