import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type Kind, type TestClient } from '../support/clients.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { apiCall, type Method } from '../support/http-api.js';
import { redisPrefix, startInstance, waitUntilRedisLost, type Instance } from '../support/instance.js';
import { PrivateRedis } from '../support/private-infra.js';
import { tokenFor } from '../support/tokens.js';

/**
 * Issue 13 item 4: a member removed while Redis is down. The eviction published by the instance
 * that removed them is lost; the instance holding their connections must still take them out of
 * the private room (room.removed) before the room's next message can reach them. Issue 18: the
 * same for a user banned from a public room while Redis is down; a kick, which nothing stored
 * would carry later, is refused until the relay is back.
 */

const API_KEY = 'removal-blip-faults-key-0123456789';
const ROOM = 'blip-private';
const PUBLIC_ROOM = 'blip-public';
const KINDS: Kind[] = ['io', 'ws'];

describe('a member removed, a user banned or kicked while Redis is down', () => {
  let db: TestDatabase;
  const redis = new PrivateRedis();
  let A: Instance;
  let B: Instance;
  const clients: TestClient[] = [];
  const api = (inst: Instance, method: Method, path: string, body?: unknown) => apiCall(inst, method, path, { body, key: API_KEY });
  const client = async (kind: Kind, inst: Instance, user: string, roomId = ROOM) => {
    const c = await connect(kind, inst.url, await tokenFor(user));
    clients.push(c);
    await c.ok('room.join', { roomId });
    return c;
  };
  /** Messages from `sender` until one reaches `watcher` on the other instance: then Redis carries relays again. */
  const sendUntilRelayed = async (sender: TestClient, watcher: TestClient, roomId: string, back: number) => {
    const sent: string[] = [];
    for (;;) {
      assert.ok(Date.now() - back < 20_000, 'relay never resumed');
      const m = await sender.ok('message.send', { roomId, body: `after the action ${sent.length}` });
      sent.push(m.id);
      const arrived = await watcher
        .waitFor('message.new', (x) => x.id === m.id, 500)
        .then(
          () => true,
          () => false,
        );
      if (arrived) return sent;
    }
  };

  before(async () => {
    db = await createTestDatabase();
    await redis.start();
    const env = { DATABASE_URL: db.url, REDIS_URL: redis.url, REDIS_PREFIX: redisPrefix(), API_KEYS: API_KEY };
    [A, B] = await Promise.all([startInstance('blip-A', env), startInstance('blip-B', env)]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([A, B].filter(Boolean).map((i) => i.stop()));
    await redis.stop();
    await db.drop();
  });

  it('gets room.removed on the other instance after Redis returns, and none of the room’s later messages', async () => {
    assert.equal((await api(A, 'PUT', `/v1/rooms/${ROOM}`, { visibility: 'private' })).status, 201);
    for (const user of ['stays', 'removed']) assert.equal((await api(A, 'PUT', `/v1/rooms/${ROOM}/members/${user}`)).status, 204);
    const removed = await Promise.all(KINDS.map((kind) => client(kind, B, 'removed')));
    const watcher = await client('io', B, 'stays');
    const sender = await client('ws', A, 'stays');
    const before = await sender.ok('message.send', { roomId: ROOM, body: 'before the removal' });
    await Promise.all([watcher, ...removed].map((c) => c.waitFor('message.new', (m) => m.id === before.id)));

    await redis.stop();
    assert.equal((await api(A, 'DELETE', `/v1/rooms/${ROOM}/members/removed`)).status, 204);
    await sleep(300);
    for (const c of removed) assert.deepEqual(c.pushesOf('room.removed'), [], 'the eviction cannot have arrived yet');
    await redis.start();
    const back = Date.now();

    const sent = await sendUntilRelayed(sender, watcher, ROOM, back);
    const evictedIn = await Promise.all(
      removed.map((c) => c.waitFor('room.removed', (d) => d.roomId === ROOM, 5000).then(() => Date.now() - back)),
    );
    await sleep(500);
    console.log(
      `# Redis back → room.removed after ${evictedIn.join(' / ')} ms (io / ws); ${sent.length} message(s) sent until the relay resumed`,
    );
    for (const [i, c] of removed.entries()) {
      const leaked = c.messagesIn(ROOM).filter((m) => sent.includes(m.id));
      assert.deepEqual(leaked, [], `${KINDS[i]}: the removed member got the room's messages after the removal`);
      assert.deepEqual(c.pushesOf('room.removed'), [{ roomId: ROOM }], `${KINDS[i]}: exactly one room.removed`);
      const again = await c.request('room.join', { roomId: ROOM });
      assert.equal(again.error?.code, 'FORBIDDEN');
    }
  });

  it('a ban while Redis is down: room.removed { reason: "banned" } on the other instance after Redis returns, and none of the room’s later messages', async () => {
    assert.equal((await api(A, 'PUT', `/v1/rooms/${PUBLIC_ROOM}`, { visibility: 'public' })).status, 201);
    const banned = await Promise.all(KINDS.map((kind) => client(kind, B, 'banned', PUBLIC_ROOM)));
    const watcher = await client('io', B, 'watches', PUBLIC_ROOM);
    const sender = await client('ws', A, 'speaks', PUBLIC_ROOM);
    const first = await sender.ok('message.send', { roomId: PUBLIC_ROOM, body: 'before the ban' });
    await Promise.all([watcher, ...banned].map((c) => c.waitFor('message.new', (m) => m.id === first.id)));

    await redis.stop();
    assert.equal((await api(A, 'POST', `/v1/rooms/${PUBLIC_ROOM}/bans/banned`, {})).status, 204);
    for (const c of banned) assert.deepEqual(c.pushesOf('room.removed'), [], 'the ban cannot have been relayed yet');
    await redis.start();
    const back = Date.now();
    const sent = await sendUntilRelayed(sender, watcher, PUBLIC_ROOM, back);
    const evictedIn = await Promise.all(
      banned.map((c) => c.waitFor('room.removed', (d) => d.roomId === PUBLIC_ROOM, 5000).then(() => Date.now() - back)),
    );
    await sleep(500);
    console.log(`# Redis back → room.removed (banned) after ${evictedIn.join(' / ')} ms (io / ws)`);
    for (const [i, c] of banned.entries()) {
      const leaked = c.messagesIn(PUBLIC_ROOM).filter((m) => sent.includes(m.id));
      assert.deepEqual(leaked, [], `${KINDS[i]}: the banned user got the room's messages after the ban`);
      assert.deepEqual(c.pushesOf('room.removed'), [{ roomId: PUBLIC_ROOM, reason: 'banned' }], `${KINDS[i]}: exactly one room.removed`);
      const again = await c.request('room.join', { roomId: PUBLIC_ROOM });
      assert.equal(again.error?.code, 'FORBIDDEN');
      assert.equal((again.error?.details as { reason?: string } | undefined)?.reason, 'banned');
    }
  });

  it('a kick while Redis is down is refused (UNAVAILABLE) and changes nothing; once Redis is back it reaches the other instance', async () => {
    const roomId = 'blip-kick';
    assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}`, { visibility: 'public' })).status, 201);
    assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}/members/kicker`, { role: 'moderator' })).status, 204);
    const kicked = await Promise.all(KINDS.map((kind) => client(kind, B, 'kicked', roomId)));
    const watcher = await client('io', B, 'watches', roomId);
    const kicker = await client('ws', A, 'kicker', roomId);

    await redis.stop();
    await waitUntilRedisLost(A);
    assert.equal((await api(A, 'POST', `/v1/rooms/${roomId}/kicks/kicked`, {})).status, 503);
    const refused = await kicker.request('moderation.kick', { roomId, userId: 'kicked' });
    assert.equal(refused.error?.code, 'UNAVAILABLE');
    await redis.start();
    const back = Date.now();
    const sent = await sendUntilRelayed(kicker, watcher, roomId, back);
    for (const c of kicked) {
      assert.deepEqual(c.pushesOf('room.removed'), [], `${c.kind}: the refused kicks took nobody out`);
      await c.waitFor('message.new', (m) => m.id === sent.at(-1), 5000);
    }

    assert.deepEqual(await kicker.ok('moderation.kick', { roomId, userId: 'kicked' }), { roomId, userId: 'kicked' });
    for (const c of kicked)
      assert.deepEqual(c.pushesOf('room.removed'), [{ roomId, reason: 'kicked' }], `${c.kind}: removed before the reply`);
    const later = await kicker.ok('message.send', { roomId, body: 'after the kick' });
    await watcher.waitFor('message.new', (m) => m.id === later.id);
    await sleep(300);
    for (const c of kicked)
      assert.deepEqual(
        c.messagesIn(roomId).filter((m) => m.id === later.id),
        [],
        `${c.kind}: no message after the kick`,
      );
  });
});
