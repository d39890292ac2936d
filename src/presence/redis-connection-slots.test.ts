import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { FakeConnection } from '../realtime/fake-connection.test-support.js';
import { LocalConnections } from '../realtime/local-connections.js';
import { RedisClients } from '../redis/redis-clients.js';
import { RedisConnectionSlots } from './redis-connection-slots.js';
import { RedisPresenceStore } from './redis-presence.store.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const LEASE_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !(await check()); await sleep(20)) if (Date.now() > end) assert.fail('condition not met in time');
}

describe('RedisConnectionSlots (on the local Redis, under a prefix of its own)', () => {
  const prefix = `chat-test-slots-${randomBytes(4).toString('hex')}`;
  const clients: RedisClients[] = [];
  after(async () => {
    const keys = await clients[0].pub.keys(`${prefix}:*`);
    if (keys.length) await clients[0].pub.del(...keys);
    for (const c of clients) c.onApplicationShutdown();
  });

  /** One instance: its lease (the presence store), its connections and its slots. */
  async function instance({ registered = true } = {}) {
    const redis = new RedisClients({ url: REDIS_URL }, prefix);
    clients.push(redis);
    await until(() => redis.ready);
    const store = new RedisPresenceStore(redis, LEASE_MS);
    const connections = new LocalConnections();
    const slots = new RedisConnectionSlots(redis, store, connections);
    if (registered) await store.onApplicationBootstrap();
    /** Admits and opens a connection of `userId`, as the transports do; null when refused. */
    const open = async (userId: string, max: number) => {
      if (!(await slots.reserve(userId, max))) return null;
      const conn = new FakeConnection(userId);
      connections.add(conn);
      return conn;
    };
    return { redis, store, slots, open };
  }

  const stored = (redis: RedisClients, userId: string) => redis.pub.hlen(`${prefix}:presence:user-conns:${userId}`);

  it('counts a user over every instance, and of concurrent handshakes at the cap admits only as many as fit', async () => {
    const [a, b] = [await instance(), await instance()];
    assert.ok(await a.open('ann', 3));
    const burst = await Promise.all([...Array(5)].map((_, i) => (i % 2 ? a : b).open('ann', 3)));
    assert.equal(burst.filter(Boolean).length, 2, 'two of five concurrent handshakes on two instances fill the cap of 3');
    assert.equal(await stored(a.redis, 'ann'), 3);
    assert.ok(await b.open('bob', 3), 'another user has slots of his own');
    burst.find(Boolean)!.close('restart');
    await until(async () => (await stored(a.redis, 'ann')) === 2);
    assert.ok(await a.open('ann', 3), 'a closed connection frees its slot on every instance');
    for (const i of [a, b]) await i.store.beforeApplicationShutdown();
    assert.equal(await stored(a.redis, 'ann'), 0, 'shutting down releases every slot at once');
  });

  it("stops counting a dead instance's connections once its lease runs out", async () => {
    const [a, dead] = [await instance(), await instance()];
    assert.ok(await dead.open('carl', 1));
    assert.equal(await a.open('carl', 1), null);
    // Stop its heartbeat without releasing anything: as if the process were killed.
    dead.redis.onApplicationShutdown();
    const killed = Date.now();
    await until(async () => (await a.slots.reserve('carl', 1)) === true, 3000);
    assert.ok(Date.now() - killed <= LEASE_MS + 500, `admitted ${Date.now() - killed} ms after the kill`);
    await a.store.beforeApplicationShutdown();
  });

  it('restores its slots when its lease was lost (swept while cut off, or Redis emptied)', async () => {
    const a = await instance();
    assert.ok(await a.open('dina', 2));
    assert.ok(await a.open('dina', 2));
    const other = await instance();
    // Another instance sweeps it as if its lease had expired: its slots go with it.
    await other.redis.pub.zadd(`${prefix}:presence:instances`, 0, a.store.instanceId);
    await other.store.beat();
    assert.equal(await stored(a.redis, 'dina'), 0);
    await a.store.beat();
    await until(async () => (await stored(a.redis, 'dina')) === 2);
    assert.equal(await other.open('dina', 2), null, 'its open connections count again');
    for (const s of [a, other]) await s.store.beforeApplicationShutdown();
  });

  it('counts its own slots while Redis is unreachable, and puts them in Redis once it is back', async () => {
    const a = await instance();
    assert.ok(await a.open('erin', 2));
    a.redis.pub.disconnect();
    assert.ok(await a.open('erin', 2), 'the second of two');
    assert.equal(await a.open('erin', 2), null, 'this instance still caps its own');
    a.redis.pub.connect().catch(() => undefined);
    await until(() => a.redis.ready);
    await a.store.beat();
    await until(async () => (await stored(a.redis, 'erin')) === 2);
    await a.store.beforeApplicationShutdown();
  });

  it('registers a missing lease and lets Redis decide, instead of counting only its own connections', async () => {
    const a = await instance();
    assert.ok(await a.open('gina', 1));
    // As a replica whose first beat has not landed: admissions find no lease of it in Redis.
    const late = await instance({ registered: false });
    assert.equal(await late.open('gina', 1), null, 'the connection on the other instance counts');
    assert.notEqual(await late.redis.pub.zscore(`${prefix}:presence:instances`, late.store.instanceId), null, 'the lease is registered');
    for (const s of [a, late]) await s.store.beforeApplicationShutdown();
  });

  it('frees a reserved slot no connection took', async (t) => {
    const a = await instance();
    t.mock.timers.enable({ apis: ['setTimeout'] });
    assert.ok(await a.slots.reserve('fred', 1));
    assert.equal(await a.open('fred', 1), null);
    t.mock.timers.tick(5000);
    t.mock.timers.reset();
    await until(async () => (await stored(a.redis, 'fred')) === 0);
    assert.ok(await a.open('fred', 1));
    await a.store.beforeApplicationShutdown();
  });
});
