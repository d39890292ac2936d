import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqs = (page: { messages: { seq: number }[] }) => page.messages.map((m) => m.seq);

describe('history paging and recovery with sinceSeq', () => {
  let cluster: Cluster;
  let writer: TestClient;
  let readers: TestClient[];
  const room = 'history-room';

  before(async () => {
    cluster = await startCluster(2, UNLIMITED_RATES); // one writer sends 130 messages back to back
    const [A, B] = cluster.instances;
    writer = cluster.track(await connect('ws', A.url, await tokenFor('writer')));
    readers = [
      cluster.track(await connect('io', B.url, await tokenFor('reader'))),
      cluster.track(await connect('ws', B.url, await tokenFor('reader'))),
    ];
    for (let i = 1; i <= 130; i++) await writer.ok('message.send', { roomId: room, body: `h-${i}` });
  });
  after(() => cluster.stop());

  const cases: [string, object, number[], boolean][] = [
    ['newest page by default', {}, range(81, 130), true],
    ['beforeSeq', { beforeSeq: 20, limit: 5 }, range(15, 19), true],
    ['beforeSeq near the start', { beforeSeq: 4 }, range(1, 3), false],
    ['beforeSeq 1', { beforeSeq: 1 }, [], false],
    ['afterSeq', { afterSeq: 10, limit: 5 }, range(11, 15), true],
    ['afterSeq near the end', { afterSeq: 125, limit: 10 }, range(126, 130), false],
    ['afterSeq 0', { afterSeq: 0, limit: 3 }, range(1, 3), true],
    ['afterSeq at the end', { afterSeq: 130 }, [], false],
    ['limit 100', { limit: 100 }, range(31, 130), true],
  ];
  for (const [name, query, expected, hasMore] of cases) {
    it(`pages by keyset: ${name}`, async () => {
      for (const r of readers) {
        const page = await r.ok('message.history', { roomId: room, ...query });
        assert.deepEqual(seqs(page), expected, `${r.kind} ${JSON.stringify(query)}`);
        assert.equal(page.hasMore, hasMore);
        for (const m of page.messages) assert.equal(m.body, `h-${m.seq}`);
      }
    });
  }

  it('recovers what a client missed with room.join { sinceSeq } and history paging', async () => {
    const r = readers[0];
    const join = await r.ok('room.join', { roomId: room, sinceSeq: 5 });
    assert.equal(join.lastSeq, 130);
    assert.deepEqual(
      join.missed.map((m: { seq: number }) => m.seq),
      range(6, 105),
    );
    assert.equal(join.hasMore, true);
    const rest = await r.ok('message.history', { roomId: room, afterSeq: 105, limit: 100 });
    assert.deepEqual(seqs(rest), range(106, 130));
    assert.equal(rest.hasMore, false);
  });

  it('answers sinceSeq at the head with an empty missed list, and a fresh room with lastSeq 0', async () => {
    const r = readers[1];
    assert.deepEqual(await r.ok('room.join', { roomId: room, sinceSeq: 130 }), {
      roomId: room,
      lastSeq: 130,
      lastModSeq: 130,
      lastReadSeq: 0,
      unread: 130,
      role: 'member',
      missed: [],
      hasMore: false,
      truncated: false,
    });
    assert.deepEqual(await r.ok('room.join', { roomId: 'empty-room' }), {
      roomId: 'empty-room',
      lastSeq: 0,
      lastModSeq: 0,
      lastReadSeq: 0,
      unread: 0,
      role: 'member',
    });
  });
});
