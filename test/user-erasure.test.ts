import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, KINDS, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { EventsStreamReader } from './support/events-stream.js';
import { apiCall } from './support/http-api.js';
import { eventsStreamOf, redisPrefix, UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'erasure-api-key-0123456789';
const READ_KEY = 'erasure-read-key-0123456789';

/** The export's lines, parsed, with its status and content type. */
async function exportOf(cluster: Cluster, userId: string, key = API_KEY) {
  const res = await fetch(`${cluster.instances[1].url}/v1/users/${encodeURIComponent(userId)}/export`, {
    headers: { 'x-api-key': key },
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  const lines = res.status === 200 ? text.split('\n').filter((l) => l !== '') : [];
  return { status: res.status, type: res.headers.get('content-type'), text, lines: lines.map((l) => JSON.parse(l)) };
}

describe('erasure and export of one user (two instances)', () => {
  let cluster: Cluster;
  const prefix = redisPrefix();

  before(async () => {
    cluster = await startCluster(2, { API_KEYS: `${API_KEY},${READ_KEY}:read`, REDIS_PREFIX: prefix, ...UNLIMITED_RATES });
  });
  after(() => cluster?.stop());

  it('erases: tombstones pushed on the other instance and in changes, reactions, memberships and reads gone, connections closed, events out; a second call answers zeros', async () => {
    const [A, B] = cluster.instances;
    const stream = new EventsStreamReader(eventsStreamOf(prefix));
    const roomId = 'erase-room';
    const privateRoom = 'erase-private';
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${privateRoom}`, { key: API_KEY, body: { visibility: 'private' } })).status, 201);
    for (const userId of ['eve', 'bob'])
      assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${privateRoom}/members/${userId}`, { key: API_KEY, body: {} })).status, 204);
    const eveToken = await tokenFor('eve');
    const eves: TestClient[] = [];
    for (const inst of [A, B]) for (const kind of KINDS) eves.push(cluster.track(await connect(kind, inst.url, eveToken)));
    const bob = cluster.track(await connect('ws', B.url, await tokenFor('bob')));
    const bobIo = cluster.track(await connect('io', B.url, await tokenFor('bob')));
    const [eve] = eves as [TestClient];
    for (const c of [eve, bob, bobIo]) await c.ok('room.join', { roomId });
    await eve.ok('room.join', { roomId: privateRoom });
    const root = await bob.ok('message.send', { roomId, body: 'bob root' });
    const e1 = await eve.ok('message.send', { roomId, body: 'eve 1' });
    await eve.ok('message.edit', { roomId, seq: e1.seq, body: 'eve 1 edited' });
    const reply = await eve.ok('message.send', { roomId, body: 'eve reply', parentSeq: root.seq });
    await eve.ok('message.send', { roomId: privateRoom, body: 'eve private' });
    await eve.ok('reaction.add', { roomId, seq: root.seq, key: '+1' });
    await eve.ok('reaction.add', { roomId, seq: e1.seq, key: 'heart' });
    await bob.ok('reaction.add', { roomId, seq: e1.seq, key: '+1' });
    await eve.ok('message.read', { roomId, seq: reply.seq });
    const { lastModSeq } = await bob.ok('room.join', { roomId });
    const closed = eves.map((c) => c.whenClosed());

    const erased = await apiCall(A, 'POST', '/v1/users/eve/erase', { key: API_KEY });
    assert.equal(erased.status, 200);
    assert.deepEqual(erased.body, { messagesDeleted: 3, reactionsRemoved: 2, roomsLeft: 2 });

    // Pushed on the other instance (bob on B, both transports): the tombstones and the changed root.
    for (const c of [bob, bobIo]) {
      const tomb = await c.waitFor('message.updated', (m) => m.seq === e1.seq && m.deletedAt !== null);
      assert.equal(tomb.body, '');
      assert.deepEqual(tomb.reactions, []);
      await c.waitFor('message.updated', (m) => m.seq === reply.seq && m.deletedAt !== null);
      await c.waitFor('message.updated', (m) => m.seq === root.seq && m.replyCount === 0 && m.reactions.length === 0);
    }
    const changes = await bob.ok('message.changes', { roomId, afterModSeq: lastModSeq });
    const latest = new Map(changes.messages.map((m: any) => [m.seq, m]));
    assert.equal((latest.get(e1.seq) as any).deletedAt !== null, true);
    assert.equal((latest.get(reply.seq) as any).deletedAt !== null, true);
    assert.deepEqual((latest.get(root.seq) as any).reactions, []);
    const versions = await apiCall(B, 'GET', `/v1/rooms/${roomId}/messages/${e1.seq}/versions`, { key: API_KEY });
    assert.deepEqual(versions.body, { versions: [] });

    // Every connection of eve closed, on both instances: ws 4003, socket.io a server disconnect.
    const how = await Promise.all(closed);
    assert.deepEqual(
      how,
      eves.map((c) => (c.kind === 'ws' ? '4003' : 'io server disconnect')),
    );
    const members = await apiCall(A, 'GET', `/v1/rooms/${privateRoom}/members`, { key: API_KEY });
    assert.deepEqual(
      members.body.members.map((m: any) => m.userId),
      ['bob'],
    );
    const rows = await cluster.db.query(
      `SELECT (SELECT count(*) FROM room_reads WHERE user_id = 'eve')::int AS reads,
              (SELECT count(*) FROM message_reactions WHERE user_id = 'eve')::int AS reactions,
              (SELECT count(*) FROM message_versions v JOIN messages m USING (room_id, seq) WHERE m.sender_id = 'eve')::int AS versions`,
    );
    assert.deepEqual(rows, [{ reads: 0, reactions: 0, versions: 0 }]);

    const events = await stream.waitUntil('erasure events', (all) => all.filter((e) => e.type === 'message.deleted').length >= 3);
    const deleted = events.filter((e) => e.type === 'message.deleted').map((e) => `${e.roomId}/${(e.data as any).seq}`);
    assert.deepEqual(deleted.sort(), [`${privateRoom}/1`, `${roomId}/${e1.seq}`, `${roomId}/${reply.seq}`].sort());
    await stream.waitUntil('member.removed', (all) =>
      all.some((e) => e.type === 'member.removed' && e.roomId === privateRoom && (e.data as any).userId === 'eve'),
    );
    await stream.close();

    const again = await apiCall(B, 'POST', '/v1/users/eve/erase', { key: API_KEY });
    assert.deepEqual([again.status, again.body], [200, { messagesDeleted: 0, reactionsRemoved: 0, roomsLeft: 0 }]);

    // The export still has the tombstones, as history shows them.
    const exported = await exportOf(cluster, 'eve');
    assert.equal(exported.status, 200);
    const history = await apiCall(A, 'GET', `/v1/rooms/${roomId}/messages?afterSeq=0`, { key: API_KEY });
    const fromHistory = history.body.messages.filter((m: any) => m.senderId === 'eve');
    assert.deepEqual(
      exported.lines.filter((l) => l.roomId === roomId),
      fromHistory.map((m: any) => ({ type: 'message', ...m })),
    );
    assert.equal(exported.lines.length, 3);
  });

  it('exports messages, reactions, memberships and reads as NDJSON, streaming a few thousand messages', async () => {
    const [A] = cluster.instances;
    const roomId = 'export-room';
    const pat = cluster.track(await connect('ws', A.url, await tokenFor('pat')));
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${roomId}/members/pat`, { key: API_KEY, body: {} })).status, 404);
    await pat.ok('room.join', { roomId });
    const m1 = await pat.ok('message.send', { roomId, body: 'first' });
    await pat.ok('reaction.add', { roomId, seq: m1.seq, key: 'wave' });
    await pat.ok('message.read', { roomId, seq: m1.seq });
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${roomId}/members/pat`, { key: API_KEY, body: { role: 'moderator' } })).status, 204);
    const bulk = 'export-bulk';
    const COUNT = 3000;
    // Rows inserted directly, for speed: the export only reads them.
    await cluster.db.query(`INSERT INTO rooms (id, last_seq, last_mod_seq) VALUES ($1, $2, $2)`, [bulk, COUNT]);
    await cluster.db.query(
      `INSERT INTO messages (id, room_id, seq, mod_seq, sender_id, body) SELECT gen_random_uuid(), $1, s, s, 'pat', 'bulk ' || s FROM generate_series(1, $2) AS s`,
      [bulk, COUNT],
    );

    const exported = await exportOf(cluster, 'pat');
    assert.equal(exported.status, 200);
    assert.match(exported.type ?? '', /^application\/x-ndjson/);
    assert.ok(exported.text.endsWith('\n'));
    const messages = exported.lines.filter((l) => l.type === 'message');
    assert.equal(messages.length, COUNT + 1);
    assert.deepEqual(
      messages.filter((m) => m.roomId === bulk).map((m) => m.seq),
      Array.from({ length: COUNT }, (_, i) => i + 1),
    );
    const first = messages.find((m) => m.roomId === roomId);
    assert.equal(first.body, 'first');
    assert.deepEqual(first.reactions, [{ key: 'wave', count: 1, userIds: ['pat'] }]);
    assert.deepEqual(
      exported.lines.filter((l) => l.type !== 'message'),
      [
        { type: 'reaction', roomId, seq: m1.seq, key: 'wave' },
        { type: 'membership', roomId, role: 'moderator' },
        { type: 'read', roomId, lastReadSeq: m1.seq },
      ],
    );
  });

  it('refuses read-only keys (403) on erase and export, and changes nothing', async () => {
    const [A] = cluster.instances;
    const kim = cluster.track(await connect('ws', A.url, await tokenFor('kim')));
    await kim.ok('message.send', { roomId: 'kim-room', body: 'keep me' });
    const erase = await apiCall(A, 'POST', '/v1/users/kim/erase', { key: READ_KEY });
    assert.deepEqual([erase.status, erase.body.error.code], [403, 'FORBIDDEN']);
    const exported = await exportOf(cluster, 'kim', READ_KEY);
    assert.equal(exported.status, 403);
    assert.equal(JSON.parse(exported.text).error.code, 'FORBIDDEN');
    assert.equal((await apiCall(A, 'POST', '/v1/users/kim/erase', { key: null })).status, 401);
    await sleep(100);
    assert.ok(kim.isOpen);
    const history = await apiCall(A, 'GET', '/v1/rooms/kim-room/messages', { key: API_KEY });
    assert.equal(history.body.messages[0].body, 'keep me');
  });

  it('answers zeros and an empty export for a user never seen, and 400 for hostile user ids', async () => {
    const [A] = cluster.instances;
    const none = await apiCall(A, 'POST', '/v1/users/nobody-here/erase', { key: API_KEY });
    assert.deepEqual([none.status, none.body], [200, { messagesDeleted: 0, reactionsRemoved: 0, roomsLeft: 0 }]);
    const empty = await exportOf(cluster, 'nobody-here');
    assert.deepEqual([empty.status, empty.text], [200, '']);
    assert.match(empty.type ?? '', /^application\/x-ndjson/);
    // The user id rule of every route (1-128 characters Postgres can store); other odd ids are ids like any.
    for (const hostile of ['a'.repeat(129), 'bad\u0000id']) {
      const erase = await apiCall(A, 'POST', `/v1/users/${encodeURIComponent(hostile)}/erase`, { key: API_KEY });
      assert.deepEqual([erase.status, erase.body?.error?.code], [400, 'VALIDATION_FAILED'], JSON.stringify([hostile, erase.body]));
      const exported = await exportOf(cluster, hostile);
      assert.equal(exported.status, 400, JSON.stringify(hostile));
    }
  });
});
