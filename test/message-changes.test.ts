import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { connect, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { EventsStreamReader, firstAppearances } from './support/events-stream.js';
import { eventsStreamOf, redisPrefix, UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';
import { UNCHANGED } from './support/message-shape.js';
import { apiCall } from './support/http-api.js';

const API_KEY = 'message-changes-api-key-0123456789';

type State = Map<number, any>;

/** Applies messages as a client must: per seq, the state with the highest modSeq wins. */
function apply(state: State, messages: any[]): void {
  for (const m of messages) {
    const held = state.get(m.seq);
    if (!held || held.modSeq < m.modSeq) state.set(m.seq, m);
  }
}

/** Pages message.changes from `afterModSeq` to the end; returns the last modSeq applied. */
async function catchUp(
  c: TestClient,
  roomId: string,
  afterModSeq: number,
  state: State,
  limit = 100,
): Promise<{ last: number; pages: number }> {
  let cursor = afterModSeq;
  let pages = 0;
  for (;;) {
    const page = await c.ok('message.changes', { roomId, afterModSeq: cursor, limit });
    pages++;
    apply(state, page.messages);
    cursor = page.messages.at(-1)?.modSeq ?? Math.max(cursor, page.lastModSeq);
    if (!page.hasMore) return { last: cursor, pages };
  }
}

/** Every message of the room, read fresh by seq. */
async function fullRead(c: TestClient, roomId: string): Promise<State> {
  const state: State = new Map();
  let after = 0;
  for (;;) {
    const page = await c.ok('message.history', { roomId, afterSeq: after, limit: 100 });
    for (const m of page.messages) state.set(m.seq, m);
    after = page.messages.at(-1)?.seq ?? after;
    if (!page.hasMore) return state;
  }
}

describe('message changes: edits, deletes, reactions, threads, mentions (two instances, both transports)', () => {
  let cluster: Cluster;
  const prefix = redisPrefix();
  const clients: Record<string, TestClient> = {};
  const client = async (name: string, kind: Kind, instance: number, user = name) => {
    const c = cluster.track(await connect(kind, cluster.instances[instance].url, await tokenFor(user)));
    clients[name] = c;
    return c;
  };

  before(async () => {
    cluster = await startCluster(2, { ...UNLIMITED_RATES, REDIS_PREFIX: prefix, API_KEYS: API_KEY });
  });
  after(() => cluster.stop());

  it('creates messages with every new field, edits them, and pushes message.updated once to every joined connection', async () => {
    const room = 'changes-basics';
    const watchers = [await client('w-io', 'io', 0), await client('w-poll', 'io-polling', 1), await client('w-ws', 'ws', 1)];
    const alice = await client('alice', 'ws', 0);
    const bob = await client('bob', 'io', 1);
    for (const c of [...watchers, alice]) assert.equal((await c.ok('room.join', { roomId: room })).lastModSeq >= 0, true);

    const sent = await alice.ok('message.send', { roomId: room, body: 'hi @bob', mentions: ['bob', 'bob', 'carol'] });
    assert.deepEqual(
      { ...sent, id: undefined, createdAt: undefined },
      {
        id: undefined,
        roomId: room,
        seq: 1,
        senderId: 'alice',
        body: 'hi @bob',
        clientMsgId: null,
        createdAt: undefined,
        ...UNCHANGED,
        modSeq: 1,
        mentions: ['bob', 'carol'],
      },
    );

    const edited = await alice.ok('message.edit', { roomId: room, seq: 1, body: 'hello @bob', expectedVersion: 1 });
    assert.equal(edited.version, 2);
    assert.equal(edited.modSeq, 2);
    assert.equal(edited.body, 'hello @bob');
    assert.deepEqual(edited.mentions, ['bob', 'carol'], 'omitted mentions stay');
    assert.ok(edited.editedAt);
    for (const w of watchers) assert.deepEqual(await w.waitFor('message.updated', (m) => m.modSeq === 2), edited);

    const stale = await alice.request('message.edit', { roomId: room, seq: 1, body: 'again', expectedVersion: 1 });
    assert.equal(stale.error?.code, 'CONFLICT');
    assert.equal(stale.error?.details?.currentVersion, 2);
    const notHers = await bob.request('message.edit', { roomId: room, seq: 1, body: 'mine now' });
    assert.equal(notHers.error?.code, 'FORBIDDEN');
    assert.equal((await bob.request('message.delete', { roomId: room, seq: 1 })).error?.code, 'FORBIDDEN');
    assert.equal((await alice.request('message.edit', { roomId: room, seq: 2, body: 'x' })).error?.code, 'NOT_FOUND');
    assert.equal((await alice.request('message.edit', { roomId: room, seq: 0, body: 'x' })).error?.code, 'NOT_FOUND');

    const same = await alice.ok('message.edit', { roomId: room, seq: 1, body: 'hello @bob', mentions: [] });
    assert.equal(same.version, 3, 'an edit with the same body is still a change');
    assert.deepEqual(same.mentions, []);

    await sleep(300);
    for (const w of watchers)
      assert.deepEqual(
        w.pushesOf('message.updated').map((m) => m.modSeq),
        [2, 3],
        `${w.kind}: each change once, refused ones never`,
      );
  });

  it('keeps reactions per user and key, sorted, idempotent, within the caps', async () => {
    const room = 'changes-reactions';
    const alice = await client('r-alice', 'io', 0, 'alice');
    const bob = await client('r-bob', 'ws', 1, 'bob');
    await alice.ok('room.join', { roomId: room });
    const m = await alice.ok('message.send', { roomId: room, body: 'react to me' });
    const a1 = await bob.ok('reaction.add', { roomId: room, seq: m.seq, key: '👍' });
    const a2 = await alice.ok('reaction.add', { roomId: room, seq: m.seq, key: '👍' });
    const a3 = await alice.ok('reaction.add', { roomId: room, seq: m.seq, key: '+1' });
    assert.deepEqual(a3.reactions, [
      { key: '+1', count: 1, userIds: ['alice'] },
      { key: '👍', count: 2, userIds: ['alice', 'bob'] },
    ]);
    assert.deepEqual([a1.modSeq, a2.modSeq, a3.modSeq], [2, 3, 4]);
    const again = await alice.ok('reaction.add', { roomId: room, seq: m.seq, key: '+1' });
    assert.equal(again.modSeq, 4, 'a repeated reaction changes nothing');
    const gone = await alice.ok('reaction.remove', { roomId: room, seq: m.seq, key: 'never-added' });
    assert.equal(gone.modSeq, 4);
    const removed = await bob.ok('reaction.remove', { roomId: room, seq: m.seq, key: '👍' });
    assert.deepEqual(removed.reactions, [
      { key: '+1', count: 1, userIds: ['alice'] },
      { key: '👍', count: 1, userIds: ['alice'] },
    ]);

    for (let i = 0; i < 18; i++) await alice.ok('reaction.add', { roomId: room, seq: m.seq, key: `k${i}` });
    const capped = await alice.request('reaction.add', { roomId: room, seq: m.seq, key: 'one-too-many' });
    assert.equal(capped.error?.code, 'LIMIT_EXCEEDED', 'a user holds at most 20 keys on one message');
    for (const key of ['has space', '', 'x'.repeat(33), 'a\u0007', 'tab\t', '\u00a0']) {
      const bad = await bob.request('reaction.add', { roomId: room, seq: m.seq, key });
      assert.equal(bad.error?.code, 'VALIDATION_FAILED', JSON.stringify(key));
      assert.deepEqual(bad.error?.details?.fields, ['key']);
    }
    const ok32 = await bob.ok('reaction.add', { roomId: room, seq: m.seq, key: '😀'.repeat(32) });
    assert.equal(ok32.reactions.length, 21);
    const before = (await alice.ok('message.changes', { roomId: room, afterModSeq: 0 })).lastModSeq;
    assert.equal(before, ok32.modSeq, 'refused reactions took no modSeq');
  });

  it('threads: a reply takes two modSeqs (its own, then the parent), and deleting it changes the parent too', async () => {
    const room = 'changes-threads';
    const alice = await client('t-alice', 'ws', 0, 'alice');
    const watcher = await client('t-watch', 'io', 1, 'watcher');
    await watcher.ok('room.join', { roomId: room });
    const root = await alice.ok('message.send', { roomId: room, body: 'root' });
    const reply = await alice.ok('message.send', { roomId: room, body: 'first reply', parentSeq: root.seq, clientMsgId: 'r1' });
    assert.equal(reply.parentSeq, root.seq);
    assert.equal(reply.modSeq, 2);
    const parent = await watcher.waitFor('message.updated', (m) => m.seq === root.seq && m.modSeq === 3);
    assert.equal(parent.replyCount, 1);
    assert.equal(parent.lastReplySeq, reply.seq);
    assert.equal(parent.version, 1, 'a reply count is not an edit');
    const repeat = await alice.ok('message.send', { roomId: room, body: 'first reply', parentSeq: root.seq, clientMsgId: 'r1' });
    assert.equal(repeat.id, reply.id);

    const nested = await alice.request('message.send', { roomId: room, body: 'nested', parentSeq: reply.seq });
    assert.deepEqual([nested.error?.code, nested.error?.details?.fields], ['VALIDATION_FAILED', ['parentSeq']]);
    const nowhere = await alice.request('message.send', { roomId: room, body: 'x', parentSeq: 99 });
    assert.equal(nowhere.error?.code, 'VALIDATION_FAILED');
    const newRoom = await alice.request('message.send', { roomId: 'changes-threads-none', body: 'x', parentSeq: 1 });
    assert.equal(newRoom.error?.code, 'VALIDATION_FAILED');
    assert.deepEqual(
      await alice.ok('message.changes', { roomId: 'changes-threads-none', afterModSeq: 0 }),
      { messages: [], hasMore: false, lastModSeq: 0, truncated: false },
      'a refused reply creates no room',
    );

    const second = await alice.ok('message.send', { roomId: room, body: 'second reply', parentSeq: root.seq });
    await alice.ok('message.send', { roomId: room, body: 'top level again' });
    const thread = await watcher.ok('message.history', { roomId: room, parentSeq: root.seq });
    assert.deepEqual(
      thread.messages.map((m: any) => m.body),
      ['first reply', 'second reply'],
    );
    const tomb = await alice.ok('message.delete', { roomId: room, seq: second.seq });
    assert.deepEqual(
      { body: tomb.body, mentions: tomb.mentions, reactions: tomb.reactions, parentSeq: tomb.parentSeq, version: tomb.version },
      { body: '', mentions: [], reactions: [], parentSeq: root.seq, version: 2 },
    );
    assert.ok(tomb.deletedAt);
    const after = await watcher.waitFor('message.updated', (m) => m.seq === root.seq && m.modSeq === tomb.modSeq + 1);
    assert.equal(after.replyCount, 1);
    assert.equal(after.lastReplySeq, reply.seq);
    const again = await alice.ok('message.delete', { roomId: room, seq: second.seq });
    assert.deepEqual(again, tomb, 'deleting a tombstone answers it unchanged');
    assert.equal((await alice.request('message.edit', { roomId: room, seq: second.seq, body: 'x' })).error?.code, 'NOT_FOUND');
    assert.equal((await alice.request('reaction.add', { roomId: room, seq: second.seq, key: 'x' })).error?.code, 'NOT_FOUND');
    const deletedRoot = await alice.request('message.send', { roomId: room, body: 'x', parentSeq: second.seq });
    assert.equal(deletedRoot.error?.code, 'VALIDATION_FAILED');
  });

  for (const visibility of ['public', 'private'] as const)
    it(`roles (${visibility} room): a moderator or owner deletes anyone's message but edits only their own; a member deletes only their own`, async () => {
      const room = `changes-roles-${visibility}`;
      const api = (method: 'PUT', path: string, body?: unknown) => apiCall(cluster.instances[0], method, path, { body, key: API_KEY });
      assert.equal((await api('PUT', `/v1/rooms/${room}`, { visibility })).status, 201);
      for (const [userId, role] of [
        ['r-owner', 'owner'],
        ['r-mod', 'moderator'],
        ['r-mem', 'member'],
        ['r-author', undefined],
      ] as const)
        assert.equal((await api('PUT', `/v1/rooms/${room}/members/${userId}`, role ? { role } : undefined)).status, 204);
      const author = await client(`${room}-author`, 'ws', 0, 'r-author');
      const owner = await client(`${room}-owner`, 'io', 1, 'r-owner');
      const mod = await client(`${room}-mod`, 'ws', 1, 'r-mod');
      const mem = await client(`${room}-mem`, 'io-polling', 0, 'r-mem');
      for (const c of [author, owner, mod, mem]) await c.ok('room.join', { roomId: room });
      const [first, second] = [
        await author.ok('message.send', { roomId: room, body: 'one' }),
        await author.ok('message.send', { roomId: room, body: 'two' }),
      ];

      assert.equal((await mem.request('message.delete', { roomId: room, seq: first.seq })).error?.code, 'FORBIDDEN', 'a member');
      for (const m of [mod, owner])
        assert.equal(
          (await m.request('message.edit', { roomId: room, seq: first.seq, body: 'theirs' })).error?.code,
          'FORBIDDEN',
          'no edit',
        );
      const byMod = await mod.ok('message.delete', { roomId: room, seq: first.seq });
      assert.ok(byMod.deletedAt, 'the moderator deleted it');
      const byOwner = await owner.ok('message.delete', { roomId: room, seq: second.seq });
      assert.ok(byOwner.deletedAt, 'the owner deleted it');
      for (const [c, seq] of [
        [author, first.seq],
        [mem, second.seq],
      ] as const)
        assert.equal(
          (await c.waitFor('message.updated', (m) => m.seq === seq && m.deletedAt !== null)).body,
          '',
          'the tombstone reaches members',
        );
      const stored = await fullRead(author, room);
      assert.deepEqual(
        [...stored.values()].map((m) => [m.seq, m.deletedAt !== null, m.body]),
        [
          [first.seq, true, ''],
          [second.seq, true, ''],
        ],
      );
    });

  it('answers NOT_FOUND for a room that does not exist, and creates nothing', async () => {
    const alice = await client('n-alice', 'io-polling', 0, 'alice');
    for (const [event, data] of [
      ['message.edit', { roomId: 'no-such-room', seq: 1, body: 'x' }],
      ['message.delete', { roomId: 'no-such-room', seq: 1 }],
      ['reaction.add', { roomId: 'no-such-room', seq: 1, key: 'x' }],
      ['reaction.remove', { roomId: 'no-such-room', seq: 1, key: 'x' }],
    ] as const)
      assert.equal((await alice.request(event, data)).error?.code, 'NOT_FOUND', event);
    const db = new pg.Client({ connectionString: cluster.db.url });
    await db.connect();
    try {
      assert.equal((await db.query("SELECT 1 FROM rooms WHERE id = 'no-such-room'")).rows.length, 0);
    } finally {
      await db.end();
    }
    assert.equal(
      (await alice.request('message.changes', { roomId: 'no-such-room' })).error?.code,
      'VALIDATION_FAILED',
      'afterModSeq is required',
    );
  });

  for (const [awayKind, backKind] of [
    ['ws', 'io'],
    ['io', 'ws'],
  ] as [Kind, Kind][])
    it(`catch-up: a ${awayKind} client away on one instance comes back over ${backKind} on the other and holds exactly the stored state`, async () => {
      const room = `changes-catch-up-${awayKind}`;
      const away = await client(`away-${awayKind}`, awayKind, 0, 'zoe');
      const state: State = new Map();
      const joined = await away.ok('room.join', { roomId: room, sinceModSeq: 0 });
      apply(state, joined.changes);
      const writers = [await client(`cw-a-${awayKind}`, 'io', 0, 'ann'), await client(`cw-b-${awayKind}`, 'ws', 1, 'ben')];
      for (let i = 0; i < 10; i++) await writers[i % 2].ok('message.send', { roomId: room, body: `before ${i}` });
      const { last } = await catchUp(away, room, joined.lastModSeq, state);
      away.close();

      // More than 100 changes of every kind while it is away.
      let changes = 0;
      const roots: number[] = [];
      for (let i = 0; i < 30; i++) {
        const w = writers[i % 2];
        const m = await w.ok('message.send', { roomId: room, body: `away ${i}`, mentions: i % 5 === 0 ? ['zoe'] : undefined });
        changes++;
        if (i % 3 === 0) roots.push(m.seq);
        if (i % 4 === 0) {
          await w.ok('message.edit', { roomId: room, seq: m.seq, body: `away ${i} (edited)` });
          changes++;
        }
        await writers[(i + 1) % 2].ok('reaction.add', { roomId: room, seq: m.seq, key: i % 2 ? 'heart' : '+1' });
        await w.ok('reaction.add', { roomId: room, seq: m.seq, key: 'laugh' });
        changes += 2;
        if (i % 6 === 5) {
          await w.ok('reaction.remove', { roomId: room, seq: m.seq, key: 'laugh' });
          changes++;
        }
      }
      for (const [n, seq] of roots.entries()) {
        const w = writers[n % 2];
        const r = await w.ok('message.send', { roomId: room, body: `reply to ${seq}`, parentSeq: seq });
        changes += 2;
        if (n % 3 === 0) {
          await w.ok('message.delete', { roomId: room, seq: r.seq });
          changes += 2;
        }
      }
      // Old messages change too: an edit, a delete and a reaction on messages the client had.
      await writers[0].ok('message.edit', { roomId: room, seq: 1, body: 'before 0, edited later' });
      await writers[1].ok('message.delete', { roomId: room, seq: 2 });
      await writers[1].ok('reaction.add', { roomId: room, seq: 3, key: 'heart' });
      changes += 3;
      assert.ok(changes > 100, `${changes} changes`);

      const back = await client(`back-${backKind}`, backKind, 1, 'zoe');
      const rejoined = await back.ok('room.join', { roomId: room, sinceModSeq: last });
      assert.ok(rejoined.changes.length > 20, `${rejoined.changes.length} changed messages`);
      // Join's page goes first; the rest is paged in small pages, so paging runs many times.
      apply(state, rejoined.changes.slice(0, 10));
      const paged = await catchUp(back, room, rejoined.changes[9].modSeq, state, 7);
      assert.ok(paged.pages > 3, `${paged.pages} pages`);
      assert.equal(paged.last, rejoined.lastModSeq);

      const fresh = await fullRead(back, room);
      assert.equal(state.size, fresh.size);
      for (const [seq, m] of fresh) assert.deepEqual(state.get(seq), m, `message ${seq}`);
      const modSeqs = [...fresh.values()].map((m) => m.modSeq);
      assert.equal(new Set(modSeqs).size, modSeqs.length, 'no two messages share a modSeq');
    });

  it('100 concurrent reaction toggles from 10 users over two instances: counts equal the rows, modSeqs gap-free and unshared', async () => {
    const room = 'changes-toggles';
    const users = await Promise.all(
      Array.from({ length: 10 }, (_, i) => client(`toggler-${i}`, i % 2 ? 'ws' : 'io', i % 2, `toggler-${i}`)),
    );
    const targets: any[] = [];
    for (let i = 0; i < 3; i++) targets.push(await users[0].ok('message.send', { roomId: room, body: `target ${i}` }));
    // Each user toggles 10 times: add or remove one of three keys on one of three messages, all at once.
    const replies = await Promise.all(
      users.flatMap((u, ui) =>
        Array.from({ length: 10 }, (_, n) =>
          u.request(n % 2 ? 'reaction.remove' : 'reaction.add', {
            roomId: room,
            seq: targets[(ui + n) % 3].seq,
            key: ['+1', 'heart', 'laugh'][(ui * 7 + Math.floor(n / 2)) % 3],
          }),
        ),
      ),
    );
    assert.equal(replies.length, 100);
    assert.deepEqual(
      replies.filter((r) => !r.ok),
      [],
    );

    const db = new pg.Pool({ connectionString: cluster.db.url, max: 1 });
    try {
      const fresh = await fullRead(users[3], room);
      const { rows } = await db.query(
        'SELECT seq::int AS seq, key, count(*)::int AS n FROM message_reactions WHERE room_id = $1 GROUP BY seq, key',
        [room],
      );
      for (const m of fresh.values())
        for (const r of m.reactions)
          assert.equal(r.count, rows.find((row) => row.seq === m.seq && row.key === r.key)?.n, `seq ${m.seq} ${r.key}`);
      assert.equal(
        rows.reduce((s, r) => s + r.n, 0),
        [...fresh.values()].reduce((s, m) => s + m.reactions.reduce((t: number, r: any) => t + r.count, 0), 0),
      );
      const modSeqs = [...fresh.values()].map((m) => m.modSeq);
      assert.equal(new Set(modSeqs).size, modSeqs.length, 'no two messages share a modSeq');

      // Gap-free: the room's events carry modSeqs 1..lastModSeq, each exactly once.
      const { lastModSeq } = await users[1].ok('message.changes', { roomId: room, afterModSeq: 0 });
      const stream = new EventsStreamReader(eventsStreamOf(prefix));
      const roomEvents = (events: Awaited<ReturnType<EventsStreamReader['read']>>) =>
        firstAppearances(events)
          .filter((e) => e.roomId === room && e.type.startsWith('message.'))
          .map((e) => e.data.modSeq);
      const events = await stream.waitUntil('every change', (all) => roomEvents(all).length >= lastModSeq).finally(() => stream.close());
      const seen = roomEvents(events);
      assert.deepEqual(
        seen,
        Array.from({ length: lastModSeq }, (_, i) => i + 1),
        'one event per change, in modSeq order',
      );
    } finally {
      await db.end();
    }
  });
});
