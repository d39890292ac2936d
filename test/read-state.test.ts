import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { connect, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import type { Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';
import { apiCall, type Method } from './support/http-api.js';

const API_KEY = 'read-state-e2e-key-0123456789abc';
/** Long enough for a push that was going to come, after the one we waited for already did. */
const SETTLE_MS = 300;

/** One HTTP API call, bounded by 5 s. */
/** One HTTP API call, bounded by 5 s. */
const api = (inst: Instance, method: Method, path: string, body?: unknown) => apiCall(inst, method, path, { body, key: API_KEY });

const receiptsIn = (c: TestClient, roomId: string) => c.pushesOf('receipt').filter((r) => r.roomId === roomId);

describe('read state', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;

  before(async () => {
    cluster = await startCluster(2, { API_KEYS: API_KEY });
    [A, B] = cluster.instances;
  });
  after(() => cluster.stop());

  async function client(inst: Instance, kind: Kind, user: string, rooms: string[] = []): Promise<TestClient> {
    const c = cluster.track(await connect(kind, inst.url, await tokenFor(user)));
    for (const roomId of rooms) await c.ok('room.join', { roomId });
    return c;
  }

  async function post(roomId: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++)
      assert.equal((await api(A, 'POST', `/v1/rooms/${roomId}/messages`, { senderId: 'poster', body: `m${i}` })).status, 201);
  }

  async function createRoom(roomId: string, visibility: 'public' | 'private', members: string[] = []): Promise<void> {
    assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}`, { visibility })).status, 201);
    for (const m of members) assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}/members/${m}`)).status, 204);
  }

  for (const kind of ['io', 'ws'] as const) {
    it(`${kind}: message.read moves lastReadSeq forward only, clamps to lastSeq, and pushes receipt to joined connections only when it grows`, async () => {
      const roomId = `read-basic-${kind}`;
      await post(roomId, 5);
      const reader = await client(A, kind, 'alice');
      const joinReply = await reader.ok('room.join', { roomId });
      assert.deepEqual(joinReply, { roomId, lastSeq: 5, lastModSeq: 5, lastReadSeq: 0, unread: 5, role: 'member' });
      const ownElsewhere = await client(B, 'io-polling', 'alice', [roomId]);
      const other = await client(B, kind === 'io' ? 'ws' : 'io', 'bob', [roomId]);
      const ownNotJoined = await client(B, 'ws', 'alice');

      assert.deepEqual(await reader.ok('message.read', { roomId, seq: 3 }), { roomId, lastReadSeq: 3 });
      for (const c of [reader, ownElsewhere, other])
        assert.deepEqual(await c.waitFor('receipt', (r) => r.roomId === roomId), { roomId, userId: 'alice', seq: 3 });

      assert.deepEqual(await reader.ok('message.read', { roomId, seq: 2 }), { roomId, lastReadSeq: 3 }, 'an older read never lowers it');
      assert.deepEqual(await reader.ok('message.read', { roomId, seq: 3 }), { roomId, lastReadSeq: 3 });
      assert.deepEqual(await ownNotJoined.ok('message.read', { roomId, seq: 99 }), { roomId, lastReadSeq: 5 }, 'clamped to lastSeq');
      for (const c of [reader, ownElsewhere, other]) await c.waitFor('receipt', (r) => r.roomId === roomId && r.seq === 5);
      await sleep(SETTLE_MS);
      for (const c of [reader, ownElsewhere, other])
        assert.deepEqual(
          receiptsIn(c, roomId).map((r) => r.seq),
          [3, 5],
          'a receipt only when it grew',
        );
      assert.deepEqual(receiptsIn(ownNotJoined, roomId), [], 'not joined: no receipt');

      await post(roomId, 2);
      reader.close();
      const again = await client(B, kind, 'alice');
      assert.deepEqual(
        await again.ok('room.join', { roomId }),
        { roomId, lastSeq: 7, lastModSeq: 7, lastReadSeq: 5, unread: 2, role: 'member' },
        'survives reconnects',
      );
      const withMissed = await again.ok('room.join', { roomId, sinceSeq: 5 });
      assert.deepEqual([withMissed.lastSeq, withMissed.lastReadSeq, withMissed.unread, withMissed.missed.length], [7, 5, 2, 2]);
    });
  }

  it('reads of one user race on two instances without ever lowering the position', async () => {
    const roomId = 'read-race';
    await post(roomId, 30);
    const [onA, onB] = [await client(A, 'io', 'carol'), await client(B, 'ws', 'carol')];
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? onA : onB).ok('message.read', { roomId, seq: i + 1 })));
    for (const [i, a] of answers.entries()) assert.ok(a.lastReadSeq >= i + 1, `read ${i + 1} answered ${a.lastReadSeq}`);
    assert.deepEqual(await onA.ok('message.read', { roomId, seq: 0 }), { roomId, lastReadSeq: 30 });
  });

  it('a read that loses a race answers the stored position, not its own lower seq', async () => {
    const roomId = 'read-stale';
    await post(roomId, 10);
    const c = await client(A, 'ws', 'ivan');
    assert.deepEqual(await c.ok('message.read', { roomId, seq: 1 }), { roomId, lastReadSeq: 1 });
    // A concurrent read of seq 9, held uncommitted: the read of seq 5 below starts with a snapshot
    // that still says 1, then waits for this row lock in its conflict clause.
    const other = new pg.Client({ connectionString: cluster.db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`UPDATE room_reads SET last_read_seq = 9 WHERE user_id = 'ivan' AND room_id = $1`, [roomId]);
      const answer = c.ok('message.read', { roomId, seq: 5 });
      await sleep(300);
      await other.query('COMMIT');
      assert.deepEqual(await answer, { roomId, lastReadSeq: 9 }, 'the stored value after the statement');
    } finally {
      await other.end();
    }
    assert.deepEqual(await c.ok('message.read', { roomId, seq: 5 }), { roomId, lastReadSeq: 9 });
  });

  it('a room that does not exist reads as 0 and is not created; bad data is VALIDATION_FAILED', async () => {
    const c = await client(A, 'ws', 'dave');
    assert.deepEqual(await c.ok('message.read', { roomId: 'read-ghost', seq: 4 }), { roomId: 'read-ghost', lastReadSeq: 0 });
    assert.equal((await api(A, 'GET', '/v1/rooms/read-ghost')).status, 404);
    for (const data of [{ roomId: 'x' }, { roomId: 'x', seq: -1 }, { roomId: 'x', seq: 1.5 }, { roomId: 'x', seq: '2' }]) {
      const r = await c.request('message.read', data);
      assert.equal(r.error?.code, 'VALIDATION_FAILED', JSON.stringify(data));
      assert.deepEqual(r.error?.details, { fields: ['seq'] });
    }
    const r = await c.request('rooms.list', 'nope');
    assert.equal(r.error?.code, 'VALIDATION_FAILED');
  });

  it('private rooms: FORBIDDEN for non-members on both transports; members read without joining; GET members shows lastReadSeq', async () => {
    const roomId = 'read-private';
    await createRoom(roomId, 'private', ['erin', 'frank']);
    await post(roomId, 4);
    for (const [inst, kind] of [
      [A, 'io'],
      [B, 'ws'],
    ] as const) {
      const outsider = await client(inst, kind, 'mallory');
      const r = await outsider.request('message.read', { roomId, seq: 1 });
      assert.equal(r.error?.code, 'FORBIDDEN', kind);
    }
    const watcher = await client(B, 'ws', 'frank', [roomId]);
    const erin = await client(A, 'io', 'erin');
    assert.deepEqual(await erin.ok('message.read', { roomId, seq: 2 }), { roomId, lastReadSeq: 2 });
    assert.deepEqual(await watcher.waitFor('receipt', (r) => r.roomId === roomId), { roomId, userId: 'erin', seq: 2 });
    assert.deepEqual((await api(B, 'GET', `/v1/rooms/${roomId}/members`)).body, {
      members: [
        { userId: 'erin', role: 'member', lastReadSeq: 2 },
        { userId: 'frank', role: 'member', lastReadSeq: 0 },
      ],
    });
  });

  it('rooms.list: joined public rooms and current private memberships, sorted, with unread; a removed member’s room disappears', async () => {
    const user = 'grace';
    await createRoom('list-private-b', 'private', [user]);
    await createRoom('list-private-other', 'private', ['someone-else']);
    await post('list-private-b', 3);
    await post('list-public-z', 4);
    await post('list-public-read-only', 2);
    await post('list-public-a', 1);

    const c = await client(A, 'io', user, ['list-public-z', 'list-public-a']);
    c.close();
    const onB = await client(B, 'ws', user);
    assert.deepEqual(await onB.ok('message.read', { roomId: 'list-public-z', seq: 1 }), { roomId: 'list-public-z', lastReadSeq: 1 });
    assert.deepEqual(await onB.ok('message.read', { roomId: 'list-public-read-only', seq: 1 }), {
      roomId: 'list-public-read-only',
      lastReadSeq: 1,
    });

    assert.deepEqual(await onB.ok('rooms.list', {}), {
      rooms: [
        { roomId: 'list-private-b', lastSeq: 3, lastReadSeq: 0, unread: 3 },
        { roomId: 'list-public-a', lastSeq: 1, lastReadSeq: 0, unread: 1 },
        { roomId: 'list-public-z', lastSeq: 4, lastReadSeq: 1, unread: 3 },
      ],
      hasMore: false,
    });

    assert.equal((await api(B, 'DELETE', `/v1/rooms/list-private-b/members/${user}`)).status, 204);
    const after = await onB.ok('rooms.list', {});
    assert.deepEqual(
      after.rooms.map((r: { roomId: string }) => r.roomId),
      ['list-public-a', 'list-public-z'],
    );

    // Becoming private drops a joined public room for a non-member; becoming a member brings it back.
    assert.equal((await api(A, 'PUT', '/v1/rooms/list-public-a', { visibility: 'private' })).status, 200);
    assert.deepEqual(
      (await onB.ok('rooms.list', {})).rooms.map((r: { roomId: string }) => r.roomId),
      ['list-public-z'],
    );
    assert.equal((await api(A, 'PUT', `/v1/rooms/list-public-a/members/${user}`)).status, 204);
    assert.deepEqual(
      (await onB.ok('rooms.list', {})).rooms.map((r: { roomId: string }) => r.roomId),
      ['list-public-a', 'list-public-z'],
    );
    assert.deepEqual(await (await client(A, 'io', 'nobody-yet')).ok('rooms.list', {}), { rooms: [], hasMore: false });
  });

  it('a refused join of a private room is not recorded', async () => {
    const roomId = 'list-refused';
    await createRoom(roomId, 'private');
    const c = await client(A, 'ws', 'heidi');
    assert.equal((await c.request('room.join', { roomId })).error?.code, 'FORBIDDEN');
    assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}`, { visibility: 'public' })).status, 200);
    assert.deepEqual(await c.ok('rooms.list', {}), { rooms: [], hasMore: false });
  });
});
