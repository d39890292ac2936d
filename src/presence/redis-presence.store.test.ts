import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import type { PresenceChange } from '../chat/chat.ports.js';
import { RedisClients } from '../redis/redis-clients.js';
import { RedisPresenceStore } from './redis-presence.store.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const LEASE_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until `check` holds. */
async function until(check: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await sleep(20)) if (Date.now() > end) assert.fail('condition not met in time');
}

describe('RedisPresenceStore (on the local Redis, under a prefix of its own)', () => {
  const prefix = `chat-test-presence-${randomBytes(4).toString('hex')}`;
  const clients: RedisClients[] = [];
  after(async () => {
    const keys = await clients[0].pub.keys(`${prefix}:*`);
    if (keys.length) await clients[0].pub.del(...keys);
    for (const c of clients) c.onApplicationShutdown();
  });

  async function instance() {
    const redis = new RedisClients({ url: REDIS_URL }, prefix);
    clients.push(redis);
    await until(() => redis.ready);
    const store = new RedisPresenceStore(redis, LEASE_MS);
    const changes: PresenceChange[] = [];
    store.onChange((c) => changes.push(c));
    await store.onApplicationBootstrap();
    return { store, changes, redis };
  }

  it('decides each change on exactly one instance, and lists sorted users of every instance', async () => {
    const [a, b] = [await instance(), await instance()];
    a.store.enter('r1', 'ann', 'a1');
    b.store.enter('r1', 'ann', 'b1');
    b.store.enter('r1', 'bob', 'b2');
    await until(() => a.changes.length + b.changes.length === 2);
    assert.deepEqual(await a.store.list('r1'), ['ann', 'bob']);
    a.store.exit('r1', 'a1');
    b.store.exit('r1', 'b1');
    await until(() => [...a.changes, ...b.changes].some((c) => c.kind === 'left'));
    await sleep(100);
    const all = [...a.changes, ...b.changes];
    assert.equal(all.filter((c) => c.kind === 'joined' && c.userId === 'ann').length, 1);
    assert.equal(all.filter((c) => c.kind === 'left' && c.userId === 'ann').length, 1);
    assert.deepEqual(await b.store.list('r1'), ['bob']);
    await b.store.beforeApplicationShutdown();
    assert.deepEqual(b.changes.at(-1), { kind: 'left', roomId: 'r1', userId: 'bob' });
    assert.deepEqual(await a.store.list('r1'), []);
    await a.store.beforeApplicationShutdown();
  });

  it("drops an instance whose lease expired, reporting its users' left on a live one", async () => {
    const [a, dead] = [await instance(), await instance()];
    dead.store.enter('r2', 'carl', 'd1');
    await until(() => dead.changes.length === 1);
    // Stop its heartbeat without releasing: as if the process were killed.
    dead.redis.onApplicationShutdown();
    const started = Date.now();
    await until(() => a.changes.some((c) => c.kind === 'left' && c.userId === 'carl'), 4000);
    assert.ok(Date.now() - started <= (LEASE_MS * 4) / 3 + 500, `left after ${Date.now() - started} ms`);
    assert.deepEqual(await a.store.list('r2'), []);
    await a.store.beforeApplicationShutdown();
  });

  it('re-registers its connections when its lease was lost (swept while cut off, or Redis emptied)', async () => {
    const a = await instance();
    a.store.enter('r3', 'dina', 'x1');
    await until(() => a.changes.length === 1);
    const other = await instance();
    // Another instance sweeps it as if its lease had expired.
    await other.redis.pub.zadd(`${prefix}:presence:instances`, 0, a.store.instanceId);
    await other.store.beat();
    assert.deepEqual(other.changes, [{ kind: 'left', roomId: 'r3', userId: 'dina' }]);
    await a.store.beat();
    await until(() => a.changes.length === 2);
    assert.deepEqual(a.changes[1], { kind: 'joined', roomId: 'r3', userId: 'dina' });
    assert.deepEqual(await other.store.list('r3'), ['dina']);
    for (const s of [a, other]) await s.store.beforeApplicationShutdown();
  });
});
