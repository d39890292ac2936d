import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { tokenFor } from './support/tokens.js';

describe('fan-out across two instances and three client kinds', () => {
  let cluster: Cluster;
  const room = 'delivery-room';
  const members: TestClient[] = [];
  let outsider: TestClient;

  before(async () => {
    cluster = await startCluster(2);
    const [A, B] = cluster.instances;
    const placements: [Kind, string][] = [
      ['io', A.url],
      ['io-polling', A.url],
      ['ws', A.url],
      ['io', B.url],
      ['io-polling', B.url],
      ['ws', B.url],
    ];
    for (const [i, [kind, url]] of placements.entries()) {
      const c = cluster.track(await connect(kind, url, await tokenFor(`member-${i}`)));
      await c.ok('room.join', { roomId: room });
      members.push(c);
    }
    outsider = cluster.track(await connect('ws', B.url, await tokenFor('outsider')));
    await outsider.ok('room.join', { roomId: 'another-room' });
  });

  after(() => cluster.stop());

  it('gives every joined connection every message exactly once, and nothing to others', async () => {
    const acks = await Promise.all(members.map((c, i) => c.ok('message.send', { roomId: room, body: `hello ${i} from ${c.kind}` })));
    assert.deepEqual(
      acks.map((m) => m.seq).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6],
    );
    await Promise.all(members.flatMap((c) => acks.map((m) => c.waitFor('message.new', (p) => p.id === m.id))));
    await sleep(500); // duplicates would arrive right behind the originals
    for (const c of members) {
      const got = c.messagesIn(room);
      assert.equal(got.length, acks.length, `${c.kind} got ${got.length} pushes`);
      for (const ack of acks)
        assert.deepEqual(
          got.find((m) => m.id === ack.id),
          ack,
        );
    }
    assert.equal(outsider.messagesIn(room).length, 0);
  });

  it('stops delivering to a connection that left the room', async () => {
    const [leaver, ...stayers] = members.slice(3);
    assert.deepEqual(await leaver.ok('room.leave', { roomId: room }), { roomId: room });
    const msg = await members[0].ok('message.send', { roomId: room, body: 'after the leave' });
    await Promise.all(stayers.map((c) => c.waitFor('message.new', (m) => m.id === msg.id)));
    await sleep(300);
    assert.equal(
      leaver.messagesIn(room).some((m) => m.id === msg.id),
      false,
    );
  });

  it('stores and delivers a request sent without ack or id', async () => {
    members[2].emit('message.send', { roomId: room, body: 'fire and forget over ws' });
    members[0].emit('message.send', { roomId: room, body: 'fire and forget over socket.io' });
    const watcher = members[5];
    await watcher.waitFor('message.new', (m) => m.body === 'fire and forget over ws');
    await watcher.waitFor('message.new', (m) => m.body === 'fire and forget over socket.io');
  });
});
