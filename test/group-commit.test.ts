import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { connect, sleep, type Reply, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

/**
 * Sends are stored in shared transactions (group commit). Under a burst of concurrent sends over
 * two instances, into a few rooms, with repeated clientMsgIds inside the same bursts, every room
 * must still get gap-free seqs, every repeat the one stored message, and every message one push.
 */
describe('group commit under concurrent sends', () => {
  let cluster: Cluster;
  const rooms = ['gc-a', 'gc-b', 'gc-c', 'gc-d'];
  let senders: TestClient[];
  let watcher: TestClient;

  before(async () => {
    cluster = await startCluster(2, UNLIMITED_RATES);
    const [A, B] = cluster.instances;
    senders = await Promise.all(
      Array.from({ length: 8 }, async (_, i) =>
        cluster.track(await connect(i % 2 ? 'ws' : 'io', (i % 2 ? B : A).url, await tokenFor(`gc-user-${i % 4}`))),
      ),
    );
    watcher = cluster.track(await connect('ws', A.url, await tokenFor('gc-watcher')));
    for (const roomId of rooms) await watcher.ok('room.join', { roomId });
  });
  after(() => cluster.stop());

  it('keeps seqs gap-free, resolves repeats to one message and pushes each message once', async () => {
    // 8 connections of 4 users; each message is sent twice at once (by both connections of its user).
    const requests = [];
    for (let n = 0; n < 200; n++) {
      const roomId = rooms[n % rooms.length];
      const user = n % 4;
      const data = { roomId, body: `burst ${n}`, clientMsgId: `burst-${n}` };
      requests.push(senders[user].ok('message.send', data), senders[user + 4].ok('message.send', data));
    }
    const acks = await Promise.all(requests);
    for (let n = 0; n < 200; n++) assert.deepEqual(acks[2 * n], acks[2 * n + 1], `both sends of burst-${n} answer the same message`);
    for (const roomId of rooms) {
      const rows = await cluster.db.query<{ seq: string }>('SELECT seq FROM messages WHERE room_id = $1 ORDER BY seq', [roomId]);
      assert.deepEqual(
        rows.map((r) => Number(r.seq)),
        Array.from({ length: 50 }, (_, i) => i + 1),
        `${roomId}: 50 messages, seq 1..50`,
      );
    }
    await Promise.all(acks.filter((_, i) => i % 2 === 0).map((m) => watcher.waitFor('message.new', (p) => p.id === m.id, 10_000)));
    await sleep(500);
    const pushed = watcher.pushesOf('message.new').map((m) => m.id);
    assert.equal(pushed.length, 200, 'one push per stored message');
    assert.equal(new Set(pushed).size, 200);
  });

  it('a room whose row is locked elsewhere fails only its own sends: 60 concurrent sends to another room are all acked', async () => {
    const [slow, fast] = ['gc-slow', rooms[1]];
    await watcher.ok('room.join', { roomId: slow });
    const locker = new pg.Client({ connectionString: cluster.db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE', [slow]);
      const started = Date.now();
      // Two sends to the locked room on each instance, each in a batch of its own (they come
      // apart), as a slow room's sends keep coming under load; then the 60 others.
      const toSlow: Promise<Reply>[] = [];
      for (let n = 0; n < 4; n++) {
        toSlow.push(senders[n].request('message.send', { roomId: slow, body: `stuck ${n}`, clientMsgId: `stuck-${n}` }));
        await sleep(20);
      }
      const toFast = Array.from({ length: 60 }, (_, n) =>
        senders[n % senders.length].request('message.send', { roomId: fast, body: `beside ${n}`, clientMsgId: `beside-${n}` }),
      );
      const fastReplies = await Promise.all(toFast);
      const fastMs = Date.now() - started;
      const failed = fastReplies.filter((r) => !r.ok);
      assert.equal(failed.length, 0, `all 60 sends to ${fast} acked (first failure: ${JSON.stringify(failed[0])})`);
      // Not merely before their own deadline, after the locked room's batches gave up (2 s).
      assert.ok(fastMs < 1200, `the 60 acks came within ${fastMs} ms, not held up by the locked room`);
      const slowReplies = await Promise.all(toSlow);
      assert.deepEqual(
        slowReplies.map((r) => r.error?.code),
        ['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE'],
      );
      console.log(`# ${slow} locked: 60/60 sends to ${fast} acked within ${fastMs} ms; the 4 sends to ${slow} UNAVAILABLE`);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
  });

  it('a message that commits after its sender got UNAVAILABLE is pushed live once; the retry returns the same seq', async () => {
    // A COMMIT slower than the storage timeout (2000 ms): a deferred trigger sleeps at COMMIT,
    // after chat_append's own deadline check has passed.
    await cluster.db.query(`
      CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.body = 'slow commit' THEN PERFORM pg_sleep(2.6); END IF; RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON messages DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION slow_commit();`);
    try {
      const [sender] = senders;
      const data = { roomId: rooms[0], body: 'slow commit', clientMsgId: 'late-commit-1' };
      const started = Date.now();
      const first = await sender.request('message.send', data);
      assert.equal(first.ok, false);
      assert.equal(first.error?.code, 'UNAVAILABLE', 'the sender is answered UNAVAILABLE at the storage timeout');
      const unavailableMs = Date.now() - started;
      const live = await watcher.waitFor('message.new', (m) => m.clientMsgId === 'late-commit-1', 10_000);
      const pushedMs = Date.now() - started;
      const retry = await sender.ok('message.send', data);
      assert.equal(retry.seq, live.seq, 'the retry returns the stored message');
      assert.equal(retry.id, live.id);
      await sleep(500);
      assert.equal(watcher.pushesOf('message.new').filter((m) => m.clientMsgId === 'late-commit-1').length, 1, 'pushed exactly once');
      console.log(`# late COMMIT: UNAVAILABLE after ${unavailableMs} ms, pushed live after ${pushedMs} ms, retry seq ${retry.seq}, 1 push`);
    } finally {
      await cluster.db.query('DROP TRIGGER slow_commit ON messages; DROP FUNCTION slow_commit()');
    }
  });
});
