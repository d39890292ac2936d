import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect as connectClient, type Message, type RoomRecovery } from '../client/src/index.js';
import { connect, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { EventsStreamReader } from './support/events-stream.js';
import { apiCall } from './support/http-api.js';
import { eventsStreamOf, redisPrefix, UNLIMITED_RATES } from './support/instance.js';
import { startTcpProxy } from './support/tcp-proxy.js';
import { tokenFor } from './support/tokens.js';
import { until } from './support/until.js';

const API_KEY = 'retention-api-key-0123456789';

/** Polls the room until its floor reaches `floorSeq` (the job runs every RETENTION_INTERVAL_MS). */
async function floorReaches(cluster: Cluster, roomId: string, floorSeq: number): Promise<any> {
  const end = Date.now() + 20_000;
  for (;;) {
    const { body } = await apiCall(cluster.instances[1], 'GET', `/v1/rooms/${roomId}`, { key: API_KEY });
    if (body.floorSeq >= floorSeq || Date.now() > end) return body;
    await sleep(100);
  }
}

describe('retention: retentionDays, floorSeq, truncated (two instances)', () => {
  let cluster: Cluster;
  const prefix = redisPrefix();
  let alice: TestClient;

  before(async () => {
    cluster = await startCluster(2, { API_KEYS: API_KEY, RETENTION_INTERVAL_MS: '300', REDIS_PREFIX: prefix, ...UNLIMITED_RATES });
    alice = cluster.track(await connect('ws', cluster.instances[0].url, await tokenFor('alice')));
  });
  after(() => cluster?.stop());

  it('refuses a bad retentionDays and changes nothing', async () => {
    const put = (retentionDays: unknown) =>
      apiCall(cluster.instances[0], 'PUT', '/v1/rooms/bad-retention', { key: API_KEY, body: { visibility: 'public', retentionDays } });
    assert.equal((await put(7)).status, 201);
    for (const bad of [0, 36_501, 1.5, '7', -1, true]) {
      const answer = await put(bad);
      assert.equal(answer.status, 400, `retentionDays ${JSON.stringify(bad)}`);
      assert.equal(answer.body.error.code, 'VALIDATION_FAILED');
      assert.deepEqual(answer.body.error.details.fields, ['retentionDays']);
    }
    const { body } = await apiCall(cluster.instances[0], 'GET', '/v1/rooms/bad-retention', { key: API_KEY });
    assert.equal(body.retentionDays, 7);
    assert.equal(body.floorSeq, 1);
  });

  it('removes only the expired prefix, keeps the counters, and answers truncated below the floor', async () => {
    const roomId = 'retained';
    const stream = new EventsStreamReader(eventsStreamOf(prefix));
    for (let i = 1; i <= 8; i++) await alice.ok('message.send', { roomId, body: `m${i}` });
    await alice.ok('message.edit', { roomId, seq: 2, body: 'm2 edited' });
    await alice.ok('reaction.add', { roomId, seq: 3, key: '+1' });
    const before = (await apiCall(cluster.instances[0], 'GET', `/v1/rooms/${roomId}`, { key: API_KEY })).body;
    // 1-4 and 6 are old; 5 is new, so the prefix stops there and 6 stays although it expired.
    await cluster.db.query(`UPDATE messages SET created_at = now() - interval '3 days' WHERE room_id = $1 AND seq IN (1, 2, 3, 4, 6)`, [
      roomId,
    ]);
    const put = await apiCall(cluster.instances[0], 'PUT', `/v1/rooms/${roomId}`, {
      key: API_KEY,
      body: { visibility: 'public', retentionDays: 2 },
    });
    assert.equal(put.status, 200);
    assert.equal(put.body.retentionDays, 2);
    const room = await floorReaches(cluster, roomId, 5);
    assert.equal(room.floorSeq, 5);
    assert.equal(room.lastSeq, before.lastSeq);
    assert.equal(room.lastModSeq, before.lastModSeq);
    const rows = await cluster.db.query<{ seq: string }>('SELECT seq FROM messages WHERE room_id = $1 ORDER BY seq', [roomId]);
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      [5, 6, 7, 8],
    );
    assert.deepEqual(await cluster.db.query('SELECT * FROM message_versions WHERE room_id = $1', [roomId]), []);
    assert.deepEqual(await cluster.db.query('SELECT * FROM message_reactions WHERE room_id = $1', [roomId]), []);

    const history = await alice.ok('message.history', { roomId, afterSeq: 0 });
    assert.deepEqual(
      history.messages.map((m: any) => m.seq),
      [5, 6, 7, 8],
    );
    const http = await apiCall(cluster.instances[1], 'GET', `/v1/rooms/${roomId}/messages?afterSeq=0`, { key: API_KEY });
    assert.deepEqual(
      http.body.messages.map((m: any) => m.seq),
      [5, 6, 7, 8],
    );

    const bob = cluster.track(await connect('io', cluster.instances[1].url, await tokenFor('bob')));
    const below = await bob.ok('room.join', { roomId, sinceSeq: 2 });
    assert.equal(below.truncated, true);
    assert.deepEqual(
      below.missed.map((m: any) => m.seq),
      [5, 6, 7, 8],
    );
    // sinceSeq = floorSeq − 1 misses nothing that is gone.
    const atFloor = await bob.ok('room.join', { roomId, sinceSeq: 4 });
    assert.equal(atFloor.truncated, false);
    assert.deepEqual(
      atFloor.missed.map((m: any) => m.seq),
      [5, 6, 7, 8],
    );

    const changes = await bob.ok('message.changes', { roomId, afterModSeq: 0 });
    assert.equal(changes.truncated, true);
    assert.deepEqual(
      changes.messages.map((m: any) => m.seq),
      [5, 6, 7, 8],
    );
    const recent = await bob.ok('message.changes', { roomId, afterModSeq: before.lastModSeq });
    assert.equal(recent.truncated, false);
    const httpChanges = await apiCall(cluster.instances[0], 'GET', `/v1/rooms/${roomId}/changes?afterModSeq=0`, { key: API_KEY });
    assert.equal(httpChanges.body.truncated, true);

    // New messages go on from the room's counters, never reusing a removed seq.
    const next = await alice.ok('message.send', { roomId, body: 'after' });
    assert.equal(next.seq, before.lastSeq + 1);
    assert.equal(next.modSeq, before.lastModSeq + 1);

    const events = await stream.waitUntil('room.truncated', (all) => all.some((e) => e.type === 'room.truncated' && e.roomId === roomId));
    const truncated = events.filter((e) => e.type === 'room.truncated' && e.roomId === roomId);
    assert.deepEqual(
      truncated.map((e) => e.data),
      [{ roomId, floorSeq: 5 }],
    );
    await stream.close();
  });

  it("the client library's rejoin below the floor goes on at the floor and reports 'truncated'", async () => {
    const roomId = 'retained-client';
    const proxy = await startTcpProxy(cluster.instances[1].port);
    const reader = connectClient({
      url: proxy.url,
      transport: 'ws',
      token: await tokenFor('carol'),
      WebSocket,
      reconnect: { minDelayMs: 50, maxDelayMs: 200 },
    });
    try {
      const seqs: number[] = [];
      const recovered: { rooms: RoomRecovery[]; discontinuity: boolean }[] = [];
      reader.on('message', (m: Message) => m.roomId === roomId && seqs.push(m.seq));
      reader.on('recovered', (r) => recovered.push(r));
      await reader.join(roomId);
      for (let i = 1; i <= 3; i++) await alice.ok('message.send', { roomId, body: `m${i}` });
      await until(async () => seqs.length === 3, 10_000, 'the reader has 1-3');

      proxy.cut();
      await until(async () => reader.state === 'CONNECTING', 10_000, 'the reader lost its connection');
      for (let i = 4; i <= 6; i++) await alice.ok('message.send', { roomId, body: `m${i}` });
      // 1-5 expire while the reader is away: the floor moves to 6, past what it has (3).
      await cluster.db.query(`UPDATE messages SET created_at = now() - interval '3 days' WHERE room_id = $1 AND seq <= 5`, [roomId]);
      await apiCall(cluster.instances[0], 'PUT', `/v1/rooms/${roomId}`, { key: API_KEY, body: { visibility: 'public', retentionDays: 2 } });
      assert.equal((await floorReaches(cluster, roomId, 6)).floorSeq, 6);
      proxy.restore();

      await until(async () => recovered.length === 1, 20_000, 'recovered');
      assert.deepEqual(recovered[0].rooms, [
        { roomId, fromSeq: 3, toSeq: 6, fromModSeq: 3, toModSeq: 6, discontinuity: true, reason: 'truncated' },
      ]);
      assert.equal(recovered[0].discontinuity, true);
      assert.deepEqual(seqs, [1, 2, 3, 6]);
      // Delivery goes on after the removed seqs.
      await alice.ok('message.send', { roomId, body: 'live' });
      await until(async () => seqs.at(-1) === 7, 10_000, 'the live message after the floor');
    } finally {
      reader.close();
      await proxy.close();
    }
  });

  it('removes a long expired prefix in several batches, on one replica', async () => {
    const roomId = 'big-retained';
    await apiCall(cluster.instances[0], 'PUT', `/v1/rooms/${roomId}`, { key: API_KEY, body: { visibility: 'public', retentionDays: 1 } });
    await alice.ok('message.send', { roomId, body: 'first' });
    // 2,500 more old messages, written as the store writes them; then one new one.
    await cluster.db.query(
      `INSERT INTO messages (id, room_id, seq, mod_seq, sender_id, body, created_at)
       SELECT gen_random_uuid(), $1, s, s, 'alice', 'old ' || s, now() - interval '5 days' FROM generate_series(2, 2501) AS s`,
      [roomId],
    );
    await cluster.db.query(`UPDATE messages SET created_at = now() - interval '5 days' WHERE room_id = $1 AND seq = 1`, [roomId]);
    await cluster.db.query('UPDATE rooms SET last_seq = 2501, last_mod_seq = 2501 WHERE id = $1', [roomId]);
    const fresh = await alice.ok('message.send', { roomId, body: 'fresh' });
    assert.equal(fresh.seq, 2502);
    const room = await floorReaches(cluster, roomId, 2502);
    assert.equal(room.floorSeq, 2502);
    const [{ n }] = await cluster.db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE room_id = $1', [roomId]);
    assert.equal(n, 1);
  });
});
