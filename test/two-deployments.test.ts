import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';
import { connect, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { EventsStreamReader } from './support/events-stream.js';
import { eventsStreamOf, redisPrefix, SHARED_REDIS_URL, startInstance, type Instance } from './support/instance.js';
import { PrivateRedis } from './support/private-infra.js';
import { tokenFor } from './support/tokens.js';

Logger.overrideLogger(false);

/** Long enough for a request or push meant for the other deployment to arrive if it were going to. */
const SETTLE_MS = 1000;
const ROOM = 'shared-room-id';

async function commandClient(redisUrl: string): Promise<ClientProxy> {
  const url = new URL(redisUrl);
  const client = ClientProxyFactory.create({ transport: Transport.REDIS, options: { host: url.hostname, port: Number(url.port) } });
  await client.connect();
  return client;
}

const send = (client: ClientProxy, channel: string, data: unknown, ms = 5000): Promise<any> =>
  firstValueFrom(client.send(channel, data).pipe(timeout(ms)));

/** Every chat_commands_total sample of one instance, as `pattern outcome count` lines. */
async function commandCounts(inst: Instance): Promise<string[]> {
  const text = await (await fetch(`${inst.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  return text.split('\n').filter((l) => l.startsWith('chat_commands_total{'));
}

/** Two deployments (own database, own REDIS_PREFIX, default EVENTS_STREAM) on the one shared Redis. */
describe('two deployments on one Redis', () => {
  const deployments: { name: string; prefix: string; cluster?: Cluster }[] = [
    { name: 'one', prefix: redisPrefix() },
    { name: 'two', prefix: redisPrefix() },
  ];
  let client: ClientProxy;
  const streams: EventsStreamReader[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    for (const d of deployments) d.cluster = await startCluster(1, { REDIS_PREFIX: d.prefix });
    client = await commandClient(SHARED_REDIS_URL);
    for (const d of deployments) streams.push(new EventsStreamReader(eventsStreamOf(d.prefix)));
  });

  after(async () => {
    for (const c of clients) c.close();
    await client?.close();
    for (const s of streams) await s.close();
    for (const d of deployments) await d.cluster?.stop();
  });

  const stored = async (d: (typeof deployments)[number]) =>
    (await d.cluster!.db.query<{ body: string }>('SELECT body FROM messages WHERE room_id = $1 ORDER BY seq', [ROOM])).map((m) => m.body);

  it('each answers and stores only the commands on its own <REDIS_PREFIX>.* channels', async () => {
    for (const d of deployments) {
      assert.equal((await send(client, `${d.prefix}.room.upsert`, { roomId: ROOM, visibility: 'public' })).roomId, ROOM);
      const msg = await send(client, `${d.prefix}.message.send`, { roomId: ROOM, senderId: 'bot', body: `to ${d.name}` });
      assert.equal(msg.seq, 1, `${d.name} stored its own message first`);
    }
    // The contract's bare channel belongs to the deployment with the default prefix `chat`: neither of these.
    await send(client, 'chat.message.send', { roomId: ROOM, senderId: 'bot', body: 'bare' }, SETTLE_MS).catch(() => undefined);
    for (const d of deployments) {
      assert.deepEqual(await stored(d), [`to ${d.name}`]);
      const counts = await commandCounts(d.cluster!.instances[0]);
      assert.deepEqual(
        counts.filter((l) => !l.includes(`pattern="${d.prefix}.`)),
        [],
        `${d.name} counted no other deployment's channel`,
      );
    }
  });

  it('each relays its events to its own stream, <REDIS_PREFIX>.events by default', async () => {
    for (const [i, d] of deployments.entries()) {
      const events = await streams[i].waitUntil(`${d.name}'s message`, (es) =>
        es.some((e) => e.type === 'message.created' && e.data.body === `to ${d.name}`),
      );
      assert.deepEqual(
        events.filter((e) => e.type === 'message.created').map((e) => e.data.body),
        [`to ${d.name}`],
      );
    }
  });

  it('fans a message out only to its own deployment’s connections', async () => {
    const [one, two] = await Promise.all(
      deployments.map(async (d) => {
        const c = await connect('io', d.cluster!.instances[0].url, await tokenFor('watcher'));
        clients.push(c);
        await c.ok('room.join', { roomId: ROOM });
        return c;
      }),
    );
    await send(client, `${deployments[0].prefix}.message.send`, { roomId: ROOM, senderId: 'bot', body: 'only one' });
    await one.waitFor('message.new', (m) => m.body === 'only one');
    await sleep(SETTLE_MS);
    assert.deepEqual(
      two.messagesIn(ROOM).map((m) => m.body),
      [],
    );
  });
});

describe('COMMANDS_BARE_PATTERNS=true under another prefix', () => {
  // On a Redis of its own: the bare chat.* channels of the shared Redis belong to whoever runs with the default prefix.
  const redis = new PrivateRedis();
  const prefix = redisPrefix();
  let db: TestDatabase;
  let inst: Instance;
  let client: ClientProxy;

  before(async () => {
    await redis.start();
    db = await createTestDatabase();
    inst = await startInstance('bare', {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      REDIS_PREFIX: prefix,
      COMMANDS_BARE_PATTERNS: 'true',
    });
    client = await commandClient(redis.url);
  });

  after(async () => {
    await client?.close();
    await inst?.stop();
    await db?.drop();
    await redis.stop();
  });

  it('answers the bare chat.* channels as well as its own, and warns that it does', async () => {
    await send(client, `${prefix}.room.upsert`, { roomId: ROOM, visibility: 'public' });
    assert.equal((await send(client, 'chat.message.send', { roomId: ROOM, senderId: 'bot', body: 'bare' })).seq, 1);
    assert.equal((await send(client, `${prefix}.message.send`, { roomId: ROOM, senderId: 'bot', body: 'own' })).seq, 2);
    assert.match(inst.output(), /COMMANDS_BARE_PATTERNS=true: also serving the bare chat\.\* command channels/);
  });
});
