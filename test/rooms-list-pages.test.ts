import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect as connectClient, type ChatClient, type RoomInfo } from '../client/src/index.js';
import { connect, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { clusterEnv, redisPrefix, startInstance, type Instance } from './support/instance.js';
import { apiCall, type Method } from './support/http-api.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'rooms-list-e2e-key-0123456789abc';
/** The smallest slow-consumer bound: pages are cut to half of it, 8 KiB. */
const SMALL_BUFFER = 16 * 1024;
/** Rooms of the user with thousands, written straight into the database. */
const MANY = 2500;

const api = (inst: Instance, method: Method, path: string, body?: unknown) => apiCall(inst, method, path, { body, key: API_KEY });

/** Room ids whose code point order differs from a case-insensitive or punctuation-blind one. */
function roomIdsFor(prefix: string, n: number): string[] {
  const marks = ['A', 'a', 'B', 'b', '0', '9', 'Z', 'z'];
  const seps = ['-', '.', ':', '_'];
  return Array.from({ length: n }, (_, i) => `${marks[i % marks.length]}${seps[i % seps.length]}${prefix}${i}`);
}

const codePointOrder = (ids: string[]) => [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

describe('rooms.list pages', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;
  /** An instance of the same deployment with the smallest MAX_BUFFERED_BYTES. */
  let small: Instance;
  const clients: ChatClient[] = [];

  before(async () => {
    const prefix = redisPrefix();
    cluster = await startCluster(2, { API_KEYS: API_KEY, REDIS_PREFIX: prefix });
    [A, B] = cluster.instances;
    small = await startInstance('small', { ...clusterEnv(cluster.db.url, prefix), MAX_BUFFERED_BYTES: String(SMALL_BUFFER) });
    await cluster.db.query(
      `INSERT INTO rooms (id, last_seq) SELECT 'many-' || lpad(g::text, 5, '0'), g % 7 FROM generate_series(1, $1) g`,
      [MANY],
    );
    await cluster.db.query(
      `INSERT INTO room_reads (user_id, room_id, last_read_seq, joined_at)
       SELECT 'many-rooms', 'many-' || lpad(g::text, 5, '0'), g % 3, now() FROM generate_series(1, $1) g`,
      [MANY],
    );
  });
  after(async () => {
    for (const c of clients) c.close();
    await small.stop();
    await cluster.stop();
  });

  async function client(inst: Instance, kind: 'io' | 'ws', user: string): Promise<TestClient> {
    return cluster.track(await connect(kind, inst.url, await tokenFor(user)));
  }

  for (const kind of ['io', 'ws'] as const) {
    it(`${kind}: pages of 7 over 30 rooms, public and private mixed, in code point order, without gaps or repeats; {} lists all`, async () => {
      const user = `pager-${kind}`;
      const ids = roomIdsFor(`${kind}-`, 30);
      const joiner = await client(A, kind, user);
      // Created over HTTP: one user creating 20 rooms by joining them would pass ROOM_CREATE_LIMIT.
      for (const [i, roomId] of ids.entries()) {
        const visibility = i % 3 === 0 ? 'private' : 'public';
        assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}`, { visibility })).status, 201);
        if (visibility === 'private') assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}/members/${user}`)).status, 204);
        // A member who also joined (every other private room) is listed once.
        if (visibility === 'public' || i % 2 === 0) await joiner.ok('room.join', { roomId });
      }
      // Neither listed: a private room the user is not a member of, a joined public room turned private.
      assert.equal((await api(A, 'PUT', `/v1/rooms/${kind}-not-mine`, { visibility: 'private' })).status, 201);
      await joiner.ok('room.join', { roomId: `${kind}-went-private` });
      assert.equal((await api(A, 'PUT', `/v1/rooms/${kind}-went-private`, { visibility: 'private' })).status, 200);
      const expected = codePointOrder(ids);

      const reader = await client(B, kind, user);
      const all = await reader.ok('rooms.list', {});
      assert.equal(all.hasMore, false);
      assert.deepEqual(
        all.rooms.map((r: RoomInfo) => r.roomId),
        expected,
      );

      const pages: { ids: string[]; hasMore: boolean }[] = [];
      let afterRoomId: string | undefined;
      do {
        const page = await reader.ok('rooms.list', afterRoomId === undefined ? { limit: 7 } : { limit: 7, afterRoomId });
        pages.push({ ids: page.rooms.map((r: RoomInfo) => r.roomId), hasMore: page.hasMore });
        afterRoomId = page.rooms.at(-1)?.roomId;
      } while (pages.at(-1)!.hasMore && pages.length < 10);
      assert.deepEqual(
        pages.map((p) => [p.ids.length, p.hasMore]),
        [
          [7, true],
          [7, true],
          [7, true],
          [7, true],
          [2, false],
        ],
      );
      assert.deepEqual(
        pages.flatMap((p) => p.ids),
        expected,
        'the pages join up to the whole list',
      );

      // A cursor between two rooms, or after the last one.
      assert.deepEqual(
        (await reader.ok('rooms.list', { afterRoomId: expected[10], limit: 3 })).rooms.map((r: RoomInfo) => r.roomId),
        expected.slice(11, 14),
      );
      assert.deepEqual(await reader.ok('rooms.list', { afterRoomId: 'zzzz' }), { rooms: [], hasMore: false });
      assert.deepEqual(await reader.ok('rooms.list', { limit: 1000, afterRoomId: expected.at(-1) }), { rooms: [], hasMore: false });
    });

    it(`${kind}: bad limit or afterRoomId answers VALIDATION_FAILED naming the field`, async () => {
      const c = await client(A, kind, `bad-${kind}`);
      for (const [data, fields] of [
        [{ limit: 0 }, ['limit']],
        [{ limit: 1001 }, ['limit']],
        [{ limit: 2.5 }, ['limit']],
        [{ limit: '10' }, ['limit']],
        [{ afterRoomId: '' }, ['afterRoomId']],
        [{ afterRoomId: 'a/b' }, ['afterRoomId']],
        [{ afterRoomId: 42 }, ['afterRoomId']],
      ] as const) {
        const r = await c.request('rooms.list', data);
        assert.equal(r.error?.code, 'VALIDATION_FAILED', JSON.stringify(data));
        assert.deepEqual(r.error?.details, { fields }, JSON.stringify(data));
      }
    });
  }

  it(`a user with ${MANY} rooms: {} answers the first 1000 with hasMore, and the pages reach every room`, async () => {
    const expected = Array.from({ length: MANY }, (_, i) => `many-${String(i + 1).padStart(5, '0')}`);
    const c = await client(A, 'ws', 'many-rooms');
    const first = await c.ok('rooms.list', {});
    assert.equal(first.rooms.length, 1000);
    assert.equal(first.hasMore, true);
    assert.deepEqual(first.rooms[0], { roomId: 'many-00001', lastSeq: 1, lastReadSeq: 1, unread: 0 });
    assert.deepEqual(first.rooms[4], { roomId: 'many-00005', lastSeq: 5, lastReadSeq: 2, unread: 3 });
    const second = await c.ok('rooms.list', { afterRoomId: first.rooms[999].roomId });
    const third = await c.ok('rooms.list', { afterRoomId: second.rooms[999].roomId });
    assert.deepEqual([second.rooms.length, second.hasMore, third.rooms.length, third.hasMore], [1000, true, 500, false]);
    assert.deepEqual(
      [...first.rooms, ...second.rooms, ...third.rooms].map((r: RoomInfo) => r.roomId),
      expected,
    );
  });

  it('a page is cut to half of MAX_BUFFERED_BYTES, with hasMore: true', async () => {
    const c = cluster.track(await connect('io', small.url, await tokenFor('many-rooms')));
    const page = await c.ok('rooms.list', {});
    const bytes = Buffer.byteLength(JSON.stringify(page));
    assert.equal(page.hasMore, true);
    assert.ok(page.rooms.length > 10 && page.rooms.length < 1000, `${page.rooms.length} rooms`);
    assert.ok(bytes <= SMALL_BUFFER / 2 + 200, `${bytes} bytes`);
    assert.equal(page.rooms[0].roomId, 'many-00001');
  });

  for (const transport of ['socket.io', 'ws'] as const) {
    it(`the typed client (${transport}) rooms() pages through all ${MANY} rooms, also when pages are cut by bytes`, async () => {
      const expected = Array.from({ length: MANY }, (_, i) => `many-${String(i + 1).padStart(5, '0')}`);
      for (const inst of [A, small]) {
        const chat = connectClient({ url: inst.url, transport, token: await tokenFor('many-rooms'), WebSocket });
        clients.push(chat);
        const rooms = await chat.rooms();
        assert.deepEqual(
          rooms.map((r) => r.roomId),
          expected,
          inst.name,
        );
        const page = await chat.roomsPage({ limit: 2, afterRoomId: 'many-00010' });
        assert.deepEqual(page, {
          rooms: [
            { roomId: 'many-00011', lastSeq: 4, lastReadSeq: 2, unread: 2 },
            { roomId: 'many-00012', lastSeq: 5, lastReadSeq: 0, unread: 5 },
          ],
          hasMore: true,
        });
      }
    });
  }
});
