import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataSource } from 'typeorm';
import type { ModerationAction } from '../src/chat/chat.ports.js';
import { dataSourceOptions } from '../src/persistence/data-source-options.js';
import { applyMigrations } from '../src/persistence/migration-runner.js';
import { TypeOrmChatStore } from '../src/persistence/typeorm-chat.store.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

/**
 * The persistence tier: TypeOrmChatStore's reads and moderation writes against a real, migrated
 * Postgres, without the service around it (the group commit has test/group-commit-store.test.ts).
 */
const TIMEOUT_MS = 2000;
const room = (roomId: string, visibility: 'public' | 'private', slowModeMs = 0) => ({
  roomId,
  visibility,
  title: null,
  metadata: null,
  retentionDays: null,
  slowModeMs,
});

describe('chat store queries (real Postgres)', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let store: TypeOrmChatStore;

  before(async () => {
    db = await createTestDatabase();
    await applyMigrations(db.url);
    ds = new DataSource(dataSourceOptions({ url: db.url, poolSize: 6, timeoutMs: TIMEOUT_MS }));
    await ds.initialize();
    store = new TypeOrmChatStore(ds, TIMEOUT_MS, 0);
  });
  after(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  const outboxTypes = async (roomId: string): Promise<string[]> =>
    (
      (await ds.query(`SELECT type FROM outbox WHERE room_id = $1 AND type LIKE 'moderation.%' ORDER BY position`, [roomId])) as {
        type: string;
      }[]
    ).map((r) => r.type);

  it('moderate and sanctions: in force only until `until`, replaced by a new one, lifted; every action one event out, none for a missing room', async () => {
    await store.upsertRoom(room('sx', 'public'));
    const soon = new Date(Date.now() + 60_000);
    const past = new Date(Date.now() - 1000);
    const act = (action: ModerationAction) => store.moderate('sx', action);
    assert.equal(await act({ kind: 'mute', userId: 'ann', until: soon, reason: null, by: 'mo' }), true);
    assert.equal(await act({ kind: 'mute', userId: 'old', until: past, reason: null, by: 'mo' }), true);
    assert.equal(await act({ kind: 'ban', userId: 'ben', until: null, reason: 'spam', by: 'api' }), true);
    assert.deepEqual((await store.sanctions(['sx'])).get('sx'), {
      mutes: [{ userId: 'ann', until: soon.toISOString(), reason: null }],
      bans: [{ userId: 'ben', until: null, reason: 'spam' }],
      slowModeMs: 0,
      moderators: [],
    });

    // A second ban replaces the first (shorter and with another reason); an unmute lifts the mute.
    assert.equal(await act({ kind: 'ban', userId: 'ben', until: soon, reason: 'again', by: 'mo' }), true);
    assert.equal(await act({ kind: 'unmute', userId: 'ann', by: 'mo' }), true);
    assert.equal(await act({ kind: 'kick', userId: 'cid', by: 'mo' }), true);
    const now = (await store.sanctions(['sx'])).get('sx');
    assert.deepEqual([now?.mutes, now?.bans], [[], [{ userId: 'ben', until: soon.toISOString(), reason: 'again' }]]);
    assert.deepEqual(await outboxTypes('sx'), [
      'moderation.muted',
      'moderation.muted',
      'moderation.banned',
      'moderation.banned',
      'moderation.unmuted',
      'moderation.kicked',
    ]);

    assert.equal(await store.moderate('no-such-room', { kind: 'ban', userId: 'ben', until: null, reason: null, by: 'mo' }), false);
    assert.equal((await store.sanctions(['no-such-room'])).size, 0);
    assert.deepEqual(await outboxTypes('no-such-room'), []);
    const [{ n }] = (await ds.query(`SELECT count(*)::int AS n FROM room_sanctions WHERE room_id = 'no-such-room'`)) as { n: number }[];
    assert.equal(n, 0);
  });

  it("sanctions lists a room's owners and moderators only while slow mode is on", async () => {
    await store.upsertRoom(room('slow', 'public', 5000));
    await store.setMember('slow', 'olga', true, 'owner');
    await store.setMember('slow', 'mo', true, 'moderator');
    await store.setMember('slow', 'max', true, 'member');
    const on = (await store.sanctions(['slow'])).get('slow');
    assert.deepEqual([on?.slowModeMs, [...(on?.moderators ?? [])].sort()], [5000, ['mo', 'olga']]);
    await store.upsertRoom(room('slow', 'public', 0));
    assert.deepEqual((await store.sanctions(['slow'])).get('slow'), { mutes: [], bans: [], slowModeMs: 0, moderators: [] });
  });

  it('judgeJoins answers each (room, user) in order: missing room, ban in force, outsider of a private room, allowed', async () => {
    await store.upsertRoom(room('jj-pub', 'public'));
    await store.upsertRoom(room('jj-priv', 'private'));
    await store.setMember('jj-priv', 'inside', true);
    await store.setMember('jj-priv', 'banned', true);
    await store.moderate('jj-priv', { kind: 'ban', userId: 'banned', until: null, reason: null, by: 'api' });
    await store.moderate('jj-pub', { kind: 'ban', userId: 'was-banned', until: new Date(Date.now() - 1000), reason: null, by: 'api' });
    await store.moderate('jj-pub', { kind: 'mute', userId: 'muted', until: null, reason: null, by: 'api' });
    const joins = [
      { roomId: 'jj-none', userId: 'inside' },
      { roomId: 'jj-priv', userId: 'inside' },
      { roomId: 'jj-priv', userId: 'banned' },
      { roomId: 'jj-priv', userId: 'stranger' },
      { roomId: 'jj-pub', userId: 'stranger' },
      { roomId: 'jj-pub', userId: 'was-banned' },
      { roomId: 'jj-pub', userId: 'muted' },
    ];
    assert.deepEqual(await store.judgeJoins(joins), ['missing', 'allowed', 'banned', 'outsider', 'allowed', 'allowed', 'allowed']);
    assert.deepEqual(await store.judgeJoins([]), []);
  });

  it("room.join's reads asked in one turn share one statement each, and each caller gets its own answer", async () => {
    await store.upsertRoom(room('wv-pub', 'public'));
    await store.upsertRoom(room('wv-priv', 'private'));
    await store.setMember('wv-priv', 'in', true);
    const send = (roomId: string, i: number) =>
      store.append(
        { roomId, senderId: 'w', body: `m${i}`, clientMsgId: `wv-${roomId}-${i}`, parentSeq: null, mentions: [] },
        { trusted: true, createRoom: false },
        () => undefined,
      );
    for (let i = 0; i < 3; i++) await send('wv-pub', i);
    await send('wv-priv', 0);
    const statements: string[] = [];
    const query = ds.query.bind(ds);
    ds.query = ((sql: string, params?: unknown[]) => (statements.push(sql), query(sql, params))) as typeof ds.query;
    try {
      const opened = await Promise.all([
        store.openRoom('wv-pub', 'a'),
        store.openRoom('wv-pub', 'a'),
        store.openRoom('wv-priv', 'in'),
        store.openRoom('wv-priv', 'out'),
        store.openRoom('wv-none', 'a'),
      ]);
      assert.equal(statements.length, 1, 'one statement for the wave of opens');
      const pub = { visibility: 'public', isMember: false, role: 'member', lastSeq: 3, lastModSeq: 3, lastReadSeq: 0 };
      assert.deepEqual(opened, [
        pub,
        pub,
        { visibility: 'private', isMember: true, role: 'member', lastSeq: 1, lastModSeq: 1, lastReadSeq: 0 },
        { visibility: 'private', isMember: false, role: 'member', lastSeq: 1, lastModSeq: 1, lastReadSeq: 0 },
        null,
      ]);
      const joined = (await query(
        `SELECT user_id, room_id FROM room_reads WHERE room_id LIKE 'wv-%' AND joined_at IS NOT NULL ORDER BY 1, 2`,
      )) as {
        user_id: string;
        room_id: string;
      }[];
      assert.deepEqual(
        joined,
        [
          { user_id: 'a', room_id: 'wv-pub' },
          { user_id: 'in', room_id: 'wv-priv' },
        ],
        'a first join is recorded once, and only where the user is allowed',
      );

      statements.length = 0;
      const access = await Promise.all([
        store.roomAccess('wv-priv', 'in'),
        store.roomAccess('wv-none', 'in'),
        store.roomAccess('wv-pub', 'b'),
      ]);
      assert.equal(statements.length, 1, 'one statement for the wave of access checks');
      assert.deepEqual(
        access.map((a) => a && [a.visibility, a.isMember, a.lastSeq]),
        [['private', true, 1], null, ['public', false, 3]],
      );

      statements.length = 0;
      const pages = await Promise.all([
        store.page({ roomId: 'wv-pub', afterSeq: 0, limit: 2 }),
        store.page({ roomId: 'wv-pub', afterSeq: 2, limit: 10 }),
        store.page({ roomId: 'wv-priv', afterSeq: 0, limit: 10 }),
        store.page({ roomId: 'wv-none', afterSeq: 0, limit: 10 }),
      ]);
      assert.equal(statements.length, 1, 'one statement for the wave of missed-message reads');
      assert.deepEqual(
        pages.map((p) => [p.messages.map((m) => `${m.roomId}:${m.seq}:${m.body}`), p.hasMore, p.floorSeq]),
        [
          [['wv-pub:1:m0', 'wv-pub:2:m1'], true, 1],
          [['wv-pub:3:m2'], false, 1],
          [['wv-priv:1:m0'], false, 1],
          [[], false, 1],
        ],
      );
    } finally {
      ds.query = query;
    }
  });

  it('a room.join read that Postgres refuses fails its own caller only, not the others of its wave', async () => {
    await store.upsertRoom(room('wv-ok', 'public'));
    const [bad, good] = await Promise.allSettled([store.roomAccess('wv-ok', 'nul\u0000user'), store.roomAccess('wv-ok', 'fine')]);
    assert.equal(bad.status, 'rejected');
    assert.equal((bad as PromiseRejectedResult).reason.code, 'VALIDATION_FAILED');
    assert.equal(good.status, 'fulfilled');
    assert.equal((good as PromiseFulfilledResult<unknown>).value !== null, true);
  });

  it("listRooms pages by roomId over public rooms joined and private rooms by membership, with each one's read state", async () => {
    const user = 'lister';
    for (const id of ['lr-a', 'lr-c', 'lr-e']) {
      await store.upsertRoom(room(id, 'public'));
      assert.ok(await store.openRoom(id, user), `join ${id}`);
    }
    for (const id of ['lr-b', 'lr-d']) {
      await store.upsertRoom(room(id, 'private'));
      await store.setMember(id, user, true);
    }
    // Public but never joined, and private without membership: not the user's rooms.
    await store.upsertRoom(room('lr-f', 'public'));
    await store.upsertRoom(room('lr-g', 'private'));
    for (let i = 0; i < 3; i++) {
      const r = await store.append(
        { roomId: 'lr-b', senderId: 'other', body: `m${i}`, clientMsgId: `lr-${i}`, parentSeq: null, mentions: [] },
        { trusted: true, createRoom: false },
        () => undefined,
      );
      assert.equal(r.outcome, 'created');
    }
    assert.equal((await store.markRead('lr-b', user, 2)).outcome, 'read');

    const pages = [];
    for (let afterRoomId: string | undefined; ;) {
      const page = await store.listRooms({ userId: user, afterRoomId, limit: 2 });
      pages.push(page);
      if (!page.hasMore) break;
      afterRoomId = page.rooms.at(-1)!.roomId;
    }
    assert.deepEqual(
      pages.map((p) => [p.rooms.map((r) => r.roomId), p.hasMore]),
      [
        [['lr-a', 'lr-b'], true],
        [['lr-c', 'lr-d'], true],
        [['lr-e'], false],
      ],
    );
    assert.deepEqual(pages[0].rooms[1], { roomId: 'lr-b', lastSeq: 3, lastReadSeq: 2, unread: 1 });
  });

  it('a history read during concurrent sends sees a gap-free prefix of the room, every time', async () => {
    const roomId = 'concurrent-reads';
    await store.upsertRoom(room(roomId, 'public'));
    const SENDS = 300;
    let reads = 0;
    let writing = true;
    const reader = (async () => {
      while (writing) {
        const page = await store.page({ roomId, afterSeq: 0, limit: 1000 });
        const seqs = page.messages.map((m) => m.seq);
        seqs.forEach((seq, i) => assert.equal(seq, i + 1, `read ${reads}: seq ${seq} at position ${i}: ${seqs.join(',')}`));
        reads++;
      }
    })();
    const sends = Array.from({ length: SENDS }, (_, i) =>
      store.append(
        { roomId, senderId: `u${i % 7}`, body: `body ${i}`, clientMsgId: `cr-${i}`, parentSeq: null, mentions: [] },
        { trusted: true, createRoom: false },
        () => undefined,
      ),
    );
    const results = await Promise.all(sends);
    writing = false;
    await reader;
    assert.ok(
      results.every((r) => r.outcome === 'created'),
      'every send stored',
    );
    const last = await store.page({ roomId, afterSeq: 0, limit: 1000 });
    assert.deepEqual(
      last.messages.map((m) => m.seq),
      Array.from({ length: SENDS }, (_, i) => i + 1),
    );
    assert.ok(reads >= 3, `the reader read while the sends were stored (${reads} reads)`);
  });
});
