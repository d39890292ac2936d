import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, KINDS, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { tokenFor } from './support/tokens.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('seq and idempotency across instances and transports', () => {
  let cluster: Cluster;
  const client = async (n: number, user: string): Promise<TestClient> =>
    cluster.track(await connect(KINDS[n % 3], cluster.instances[n % 2].url, await tokenFor(user)));

  before(async () => {
    cluster = await startCluster(2);
  });
  after(() => cluster.stop());

  it('numbers 50 concurrent sends from both instances 1..50 with no gap or repeat', async () => {
    const room = 'seq-room';
    const senders = await Promise.all(range(0, 9).map((n) => client(n, `seq-${n}`)));
    const acks = await Promise.all(
      senders.flatMap((c, n) => range(1, 5).map((k) => c.ok('message.send', { roomId: room, body: `m ${n}.${k}` }))),
    );
    assert.deepEqual(
      acks.map((m) => m.seq).sort((a, b) => a - b),
      range(1, 50),
    );
    const rows = await cluster.db.query<{ seq: string; id: string }>('SELECT seq, id FROM messages WHERE room_id = $1 ORDER BY seq', [
      room,
    ]);
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      range(1, 50),
    );
    for (const ack of acks) assert.equal(rows[ack.seq - 1].id, ack.id);
  });

  it('returns the stored message for a repeated clientMsgId from another instance and transport, without a second push', async () => {
    const room = 'idem-room';
    const [first, second, watcher] = [await client(0, 'idem-user'), await client(4, 'idem-user'), await client(2, 'idem-watcher')];
    await watcher.ok('room.join', { roomId: room });
    const original = await first.ok('message.send', { roomId: room, body: 'once', clientMsgId: 'k-1' });
    const repeat = await second.ok('message.send', { roomId: room, body: 'once', clientMsgId: 'k-1' });
    assert.deepEqual(repeat, original);
    first.close();
    const reconnected = await client(1, 'idem-user');
    assert.deepEqual(await reconnected.ok('message.send', { roomId: room, body: 'once', clientMsgId: 'k-1' }), original);
    await watcher.waitFor('message.new', (m) => m.id === original.id);
    await sleep(500);
    assert.equal(watcher.messagesIn(room).length, 1);
    const rows = await cluster.db.query('SELECT id FROM messages WHERE room_id = $1', [room]);
    assert.equal(rows.length, 1);
  });

  it('stores one message for concurrent duplicates and keeps seq gap-free', async () => {
    const room = 'idem-concurrent';
    const senders = await Promise.all(range(0, 5).map((n) => client(n, 'dup-user')));
    const acks = await Promise.all(senders.map((c) => c.ok('message.send', { roomId: room, body: 'dup', clientMsgId: 'same-key' })));
    assert.equal(new Set(acks.map((m) => m.id)).size, 1);
    const next = await senders[0].ok('message.send', { roomId: room, body: 'next' });
    assert.equal(next.seq, 2, 'a rolled-back duplicate must not leave a gap');
  });

  it('scopes clientMsgId to the sender and the room', async () => {
    const [alice, bob] = [await client(0, 'scope-alice'), await client(5, 'scope-bob')];
    const a = await alice.ok('message.send', { roomId: 'scope-1', body: 'a', clientMsgId: 'shared' });
    const b = await bob.ok('message.send', { roomId: 'scope-1', body: 'b', clientMsgId: 'shared' });
    const c = await alice.ok('message.send', { roomId: 'scope-2', body: 'c', clientMsgId: 'shared' });
    assert.deepEqual([a.seq, b.seq, c.seq], [1, 2, 1]);
    assert.equal(new Set([a.id, b.id, c.id]).size, 3);
  });

  it('ignores sender, seq, id and timestamps set by the client', async () => {
    const c = await client(2, 'honest-user');
    const m = await c.ok('message.send', {
      roomId: 'forgery',
      body: 'trust me',
      senderId: 'admin',
      seq: 999,
      id: 'forged',
      createdAt: '2000-01-01T00:00:00Z',
    });
    assert.equal(m.senderId, 'honest-user');
    assert.equal(m.seq, 1);
    assert.notEqual(m.id, 'forged');
    assert.ok(Date.parse(m.createdAt) > Date.parse('2020-01-01'));
  });
});
