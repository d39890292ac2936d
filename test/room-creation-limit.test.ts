import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';
import { connect, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { redisPrefix, SHARED_REDIS_URL, startInstance, type Instance } from './support/instance.js';
import { apiCall, type Method } from './support/http-api.js';
import { tokenFor } from './support/tokens.js';

Logger.overrideLogger(false);

const API_KEY = 'room-create-e2e-key-0123456789abc';
const LIMIT = 3;
const WINDOW_MS = 3000;
const PREFIX = redisPrefix();

const api = (inst: Instance, method: Method, path: string, body?: unknown) => apiCall(inst, method, path, { body, key: API_KEY });

/** Waits for a fresh counting window (they are fixed, aligned to multiples of WINDOW_MS), so a test's creations share one. */
async function atWindowStart(): Promise<void> {
  await sleep(WINDOW_MS - (Date.now() % WINDOW_MS) + 20);
}

function assertRateLimited(reply: { ok: boolean; error?: { code: string; details?: any } }, what: string): number {
  assert.equal(reply.error?.code, 'RATE_LIMITED', `${what}: ${JSON.stringify(reply)}`);
  const retryAfterMs = reply.error?.details?.retryAfterMs;
  assert.ok(Number.isInteger(retryAfterMs) && retryAfterMs > 0 && retryAfterMs <= WINDOW_MS, `${what}: retryAfterMs ${retryAfterMs}`);
  return retryAfterMs;
}

describe('rooms a user creates by joining or sending are limited per window', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;
  /** One instance on its own, without Redis: it counts in process. */
  let solo: Instance;
  let commands: ClientProxy;

  before(async () => {
    const limits = { ROOM_CREATE_LIMIT: String(LIMIT), ROOM_CREATE_WINDOW_MS: String(WINDOW_MS) };
    cluster = await startCluster(2, { API_KEYS: API_KEY, REDIS_PREFIX: PREFIX, ...limits });
    [A, B] = cluster.instances;
    solo = await startInstance('solo', { DATABASE_URL: cluster.db.url, REDIS_URL: undefined, ...limits });
    const url = new URL(SHARED_REDIS_URL);
    commands = ClientProxyFactory.create({ transport: Transport.REDIS, options: { host: url.hostname, port: Number(url.port || 6379) } });
    await commands.connect();
  });
  after(async () => {
    await commands.close();
    await solo.stop();
    await cluster.stop();
  });

  const client = async (inst: Instance, kind: 'io' | 'ws', user: string): Promise<TestClient> =>
    cluster.track(await connect(kind, inst.url, await tokenFor(user)));

  const storedRooms = async (ids: string[]): Promise<string[]> =>
    (await cluster.db.query<{ id: string }>('SELECT id FROM rooms WHERE id = ANY($1) ORDER BY id', [ids])).map((r) => r.id);

  for (const kind of ['io', 'ws'] as const) {
    it(`${kind}: the ${LIMIT + 1}th new room in a window is RATE_LIMITED on every instance and stores nothing; existing rooms and HTTP are not limited`, async () => {
      const user = `creator-${kind}`;
      const room = (n: number) => `created-${kind}-${n}`;
      assert.equal((await api(A, 'PUT', `/v1/rooms/${room(0)}`, { visibility: 'public' })).status, 201);
      const [onA, onB] = [await client(A, kind, user), await client(B, kind, user)];
      await atWindowStart();

      await onA.ok('room.join', { roomId: room(0) }); // exists: not counted
      await onA.ok('room.join', { roomId: room(1) });
      await onB.ok('message.send', { roomId: room(2), body: 'creates room 2' });
      await onA.ok('room.join', { roomId: room(3) });
      // The count is shared through Redis: B refuses what A's and B's creations used up.
      assertRateLimited(await onB.request('room.join', { roomId: room(4) }), 'join of a 4th new room');
      const retryAfterMs = assertRateLimited(
        await onA.request('message.send', { roomId: room(5), body: 'would create room 5', clientMsgId: 'c5' }),
        'send to a 5th new room',
      );
      assert.deepEqual(await storedRooms([0, 1, 2, 3, 4, 5].map(room)), [0, 1, 2, 3].map(room), 'no row for the refused rooms');
      assert.deepEqual(await cluster.db.query('SELECT seq FROM messages WHERE room_id = $1', [room(5)]), []);
      assert.deepEqual(await cluster.db.query('SELECT room_id FROM room_reads WHERE room_id = $1', [room(4)]), []);

      // Rooms that exist: joins and sends go on. Other users have budgets of their own.
      await onB.ok('room.join', { roomId: room(1) });
      await onB.ok('room.join', { roomId: room(0) });
      assert.equal((await onA.ok('message.send', { roomId: room(3), body: 'still fine' })).seq, 1);
      await (await client(B, kind, `someone-else-${kind}`)).ok('room.join', { roomId: room(4) + '-theirs' });
      // Trusted services create rooms without a budget, also on this user's behalf.
      assert.equal((await api(A, 'PUT', `/v1/rooms/${room(6)}`, { visibility: 'public' })).status, 201);
      assert.equal((await api(B, 'POST', `/v1/rooms/${room(7)}/messages`, { senderId: user, body: 'via HTTP' })).status, 201);
      const viaCommand = await firstValueFrom(
        commands.send(`${PREFIX}.message.send`, { roomId: room(8), senderId: user, body: 'via a command' }).pipe(timeout(5000)),
      );
      assert.equal(viaCommand.seq, 1);
      assert.deepEqual(await storedRooms([6, 7, 8].map(room)), [6, 7, 8].map(room));

      // After the window the user creates rooms again.
      await sleep(retryAfterMs + 20);
      await onB.ok('room.join', { roomId: room(4) });
      assert.equal((await onA.ok('message.send', { roomId: room(5), body: 'now it may', clientMsgId: 'c5' })).seq, 1);
      assert.deepEqual(await storedRooms([4, 5].map(room)), [4, 5].map(room));
    });
  }

  it('a burst of sends without waiting into one new room counts as one room', async () => {
    // Several connections of the user on one instance, whose sends are handled side by side.
    const senders = [await client(A, 'ws', 'burst-sender'), await client(A, 'io', 'burst-sender'), await client(A, 'ws', 'burst-sender')];
    const c = senders[0];
    await atWindowStart();
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        senders[i % senders.length].ok('message.send', { roomId: 'burst-room', body: `m${i}`, clientMsgId: `b${i}` }),
      ),
    );
    assert.deepEqual(
      burst.map((m) => m.seq).sort((x, y) => x - y),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    for (let n = 2; n <= LIMIT; n++) await c.ok('room.join', { roomId: `burst-room-${n}` });
    assertRateLimited(await c.request('room.join', { roomId: 'burst-room-next' }), `room ${LIMIT + 1}`);
  });

  it('without Redis an instance counts on its own', async () => {
    const c = cluster.track(await connect('ws', solo.url, await tokenFor('solo-creator')));
    await atWindowStart();
    for (let n = 1; n <= LIMIT; n++) await c.ok('room.join', { roomId: `solo-${n}` });
    const retryAfterMs = assertRateLimited(await c.request('room.join', { roomId: 'solo-4' }), 'a 4th new room');
    assert.deepEqual(await storedRooms(['solo-4']), []);
    await sleep(retryAfterMs + 20);
    await c.ok('room.join', { roomId: 'solo-4' });
  });
});
