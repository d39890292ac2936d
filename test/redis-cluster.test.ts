import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';
import { connect, handshakeRefusal, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { EventsStreamReader, uniqueStreamName } from './support/events-stream.js';
import { redisPrefix, UNLIMITED_RATES, type Instance } from './support/instance.js';
import { startRedisCluster, type LocalRedisCluster } from './support/redis-cluster.js';
import { ReliableClient } from './support/reliable-client.js';
import { tokenFor } from './support/tokens.js';

/** Short, so that presence changes show quickly. */
const LEASE_MS = 1500;
/** Long enough for a duplicate to arrive behind the push we waited for. */
const SETTLE_MS = 500;
/** The bound: fan-out works again this soon after a master is killed. */
const RESUME_WITHIN_MS = 10_000;
const KINDS: Kind[] = ['io', 'io-polling', 'ws'];

/** chat_commands_total{pattern, outcome="handled"} on one instance. */
async function handledCount(inst: Instance, pattern: string): Promise<number> {
  const text = await (await fetch(`${inst.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('chat_commands_total{') && l.includes(`pattern="${pattern}"`) && l.includes('outcome="handled"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** Relayed message.new this instance received from others (chat_fanout_lag_seconds observes each one). */
async function relayedMessages(inst: Instance): Promise<number> {
  const text = await (await fetch(`${inst.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith('chat_fanout_lag_seconds_count'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** /health/ready of every instance every 500 ms until `done()`: the statuses seen (0 for no answer). */
async function sampleReadiness(instances: Instance[], done: () => boolean): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; i < 40 && !done(); i++) {
    const statuses = await Promise.all(
      instances.map((inst) =>
        fetch(`${inst.url}/health/ready`, { signal: AbortSignal.timeout(1000) }).then(
          (r) => r.status,
          () => 0,
        ),
      ),
    );
    seen.push(...statuses);
    await sleep(500);
  }
  return seen;
}

describe('on a Redis Cluster of 3 masters and 3 replicas, 3 instances', () => {
  const prefix = redisPrefix();
  const streamName = uniqueStreamName();
  let redis: LocalRedisCluster;
  let cluster: Cluster;
  let stream: EventsStreamReader;
  let instances: Instance[];

  before(async () => {
    redis = await startRedisCluster(3);
    try {
      cluster = await startCluster(3, {
        REDIS_URL: undefined,
        REDIS_CLUSTER_NODES: redis.seeds,
        REDIS_PREFIX: prefix,
        EVENTS_STREAM: streamName,
        PRESENCE_LEASE_MS: String(LEASE_MS),
        ...UNLIMITED_RATES,
      });
    } catch (err) {
      await redis.stop();
      throw err;
    }
    instances = cluster.instances;
    stream = new EventsStreamReader(streamName, redis.client());
  });

  after(async () => {
    await cluster?.stop();
    await stream?.close();
    await redis?.stop();
  });

  async function joined(kind: Kind, inst: Instance, user: string, roomId: string): Promise<TestClient> {
    const client = cluster.track(await connect(kind, inst.url, await tokenFor(user)));
    await client.ok('room.join', { roomId });
    return client;
  }

  it('delivers every message exactly once to every member, on both transports over the 3 instances, and appends it to the stream', async () => {
    const room = 'cluster-matrix';
    const members: TestClient[] = [];
    for (const [i, inst] of instances.entries())
      for (const kind of KINDS) members.push(await joined(kind, inst, `member-${i}-${kind}`, room));
    const outsider = await joined('ws', instances[1], 'outsider', 'elsewhere');

    const acks = await Promise.all(members.map((c, i) => c.ok('message.send', { roomId: room, body: `hello ${i} from ${c.kind}` })));
    assert.deepEqual(
      acks.map((m) => m.seq).sort((a, b) => a - b),
      Array.from({ length: members.length }, (_, i) => i + 1),
    );
    await Promise.all(members.flatMap((c) => acks.map((m) => c.waitFor('message.new', (p) => p.id === m.id, 5000))));
    await sleep(SETTLE_MS);
    for (const c of members) {
      const got = c.messagesIn(room);
      assert.equal(got.length, acks.length, `${c.kind} got ${got.length} pushes for ${acks.length} messages`);
      for (const ack of acks)
        assert.deepEqual(
          got.find((m) => m.id === ack.id),
          ack,
        );
    }
    assert.equal(outsider.messagesIn(room).length, 0);

    const ids = new Set(acks.map((m) => m.id as string));
    const events = await stream.waitUntil(
      'every message.created',
      (es) => es.filter((e) => e.type === 'message.created' && ids.has(e.data.id)).length >= ids.size,
    );
    assert.equal(new Set(events.filter((e) => e.type === 'message.created' && ids.has(e.data.id)).map((e) => e.data.id)).size, ids.size);
  });

  it('relays a room’s messages only to the instances with members in it: the third instance receives none of them', async () => {
    const room = 'cluster-pair';
    const sender = await joined('ws', instances[0], 'pair-sender', room);
    const member = await joined('io', instances[1], 'pair-member', room);
    const before = await Promise.all(instances.map(relayedMessages));
    const acks: { id: unknown }[] = [];
    for (let i = 0; i < 5; i++) acks.push(await sender.ok('message.send', { roomId: room, body: `pair ${i}` }));
    await Promise.all(acks.map((m) => member.waitFor('message.new', (p) => p.id === m.id, 5000)));
    await sleep(SETTLE_MS);
    const grown = (await Promise.all(instances.map(relayedMessages))).map((n, i) => n - before[i]);
    assert.deepEqual(grown, [0, acks.length, 0], 'relayed message.new received by instance 1, 2, 3');
  });

  it('pushes presence.joined once and presence.left once per user, whichever instances its connections are on', async () => {
    const room = 'cluster-presence';
    const [A, B, C] = instances;
    const watchA = await joined('ws', A, 'watcher-a', room);
    const watchC = await joined('io', C, 'watcher-c', room);
    await watchA.waitFor('presence.joined', (d) => d.userId === 'watcher-c', 5000);
    const pat = [await joined('io', B, 'pat', room), await joined('ws', C, 'pat', room), await joined('io-polling', A, 'pat', room)];
    for (const w of [watchA, watchC]) await w.waitFor('presence.joined', (d) => d.roomId === room && d.userId === 'pat', 5000);
    await sleep(SETTLE_MS);
    const count = (w: TestClient, event: string) => w.pushesOf(event).filter((d) => d.roomId === room && d.userId === 'pat').length;
    for (const w of [watchA, watchC]) assert.equal(count(w, 'presence.joined'), 1, `${w.kind}: pat joined once`);
    assert.deepEqual(
      (await watchC.ok('presence.list', { roomId: room })).users.map((u: { userId: string }) => u.userId),
      ['pat', 'watcher-a', 'watcher-c'],
    );

    for (const c of pat) c.close();
    for (const w of [watchA, watchC]) await w.waitFor('presence.left', (d) => d.roomId === room && d.userId === 'pat', 5000);
    await sleep(SETTLE_MS);
    for (const w of [watchA, watchC]) assert.equal(count(w, 'presence.left'), 1, `${w.kind}: pat left once`);
  });

  it('answers each command once (Nest’s Redis transport, classic pub/sub over the cluster)', async () => {
    const pattern = `${prefix}.message.send`;
    const [seed] = redis.nodes;
    const client: ClientProxy = ClientProxyFactory.create({ transport: Transport.REDIS, options: { host: '127.0.0.1', port: seed.port } });
    await client.connect();
    try {
      const before = await Promise.all(instances.map((i) => handledCount(i, pattern)));
      const n = 12;
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          firstValueFrom(client.send(pattern, { roomId: 'cluster-commands', senderId: 'bot', body: `cmd ${i}` }).pipe(timeout(5000))),
        ),
      );
      assert.deepEqual(
        replies.map((m: { seq: number }) => m.seq).sort((a, b) => a - b),
        Array.from({ length: n }, (_, i) => i + 1),
      );
      await sleep(SETTLE_MS);
      const handled = await Promise.all(instances.map((i) => handledCount(i, pattern)));
      assert.equal(
        handled.reduce((s, h, i) => s + h - before[i], 0),
        n,
        'handled once in all',
      );
    } finally {
      await client.close();
    }
  });

  it('holds the per-user message rate and the connection cap over 2 instances of another deployment on the cluster', async () => {
    const RATE = 6;
    const WINDOW_MS = 60_000;
    const limited = await startCluster(2, {
      REDIS_URL: undefined,
      REDIS_CLUSTER_NODES: redis.seeds,
      REDIS_PREFIX: redisPrefix(),
      // No kills here: a longer lease keeps a slot counting while a busy host delays a beat.
      PRESENCE_LEASE_MS: '6000',
      MAX_CONNECTIONS_PER_USER: '2',
      RATE_LIMIT_USER_MESSAGES: String(RATE),
      RATE_LIMIT_USER_WINDOW_MS: String(WINDOW_MS),
    });
    try {
      const [A, B] = limited.instances;
      const token = await tokenFor('capped');
      const clients = [limited.track(await connect('ws', A.url, token)), limited.track(await connect('io', B.url, token))];
      const capLog = () =>
        limited.instances
          .map((i) =>
            i
              .output()
              .split('\n')
              .filter((l) => l.includes('ConnectionCap'))
              .join('\n'),
          )
          .join('\n');
      assert.equal(await handshakeRefusal('ws', A.url, token), 'HTTP 429', `a third connection on A; cap log:\n${capLog()}`);
      assert.equal(await handshakeRefusal('io', B.url, token), 'LIMIT_EXCEEDED', `a third connection on B; cap log:\n${capLog()}`);

      for (const c of clients) await c.ok('room.join', { roomId: 'cluster-limits' });
      // Fixed windows: start the sends well inside one, so they are all counted in the same window.
      const intoWindow = Date.now() % WINDOW_MS;
      if (intoWindow > WINDOW_MS - 10_000) await sleep(WINDOW_MS - intoWindow + 50);
      const replies = [];
      for (let i = 0; i < 2 * RATE; i++)
        replies.push(await clients[i % 2].request('message.send', { roomId: 'cluster-limits', body: `limited ${i}` }));
      assert.equal(
        replies.filter((r) => r.ok).length,
        RATE,
        `exactly ${RATE} of ${replies.length} sends over both instances were accepted`,
      );
      assert.deepEqual(
        replies.filter((r) => !r.ok).map((r) => r.error?.code),
        Array(RATE).fill('RATE_LIMITED'),
      );
    } finally {
      await limited.stop();
    }
  });

  it('keeps acking sends while a master and then a replica are killed, fan-out resumes within 10 s, and no acked message is lost', async (t) => {
    const room = 'cluster-failover';
    const [A, B, C] = instances;
    const receivers = [await joined('io', B, 'recv-b', room), await joined('ws', C, 'recv-c', room)];
    const sender = new ReliableClient('sender', 'ws', () => [A.url], room);
    const loop = sender.runLoop(100);
    try {
      await Promise.all(receivers.map((r) => r.waitFor('message.new', (m) => m.roomId === room, 5000)));
      // The master that carries fan-out: the socket.io adapter's sharded channel lives on its slot.
      const victim = await redis.masterOf(`${prefix}#/#`);
      const seqAtKill = Math.max(...sender.acks.map((a) => a.seq));
      const killedAt = Date.now();
      await victim.kill();
      const readiness = sampleReadiness(instances, () => Date.now() - killedAt > RESUME_WITHIN_MS);
      const successor = await redis.waitForFailover(`${prefix}#/#`, victim);
      t.diagnostic(`killed master :${victim.port}; :${successor.port} took over after ${Date.now() - killedAt} ms`);

      const resumed = await Promise.all(
        receivers.map((r) =>
          r.waitFor('message.new', (m) => m.roomId === room && m.seq > seqAtKill, Math.max(1, killedAt + RESUME_WITHIN_MS - Date.now())),
        ),
      );
      t.diagnostic(`fan-out resumed within ${Date.now() - killedAt} ms (seq ${resumed.map((m) => m.seq).join(', ')})`);
      const samples = await readiness;
      t.diagnostic(`readiness during the 10 s after the kill: ${samples.filter((s) => s === 200).length} of ${samples.length} probes 200`);

      // A replica's end must not stall fan-out either (the subscriber's gap events fire for any node).
      const [replica] = await redis.replicas();
      const seqAtReplicaKill = Math.max(...sender.acks.map((a) => a.seq));
      const replicaKilledAt = Date.now();
      await replica.kill();
      await Promise.all(
        receivers.map((r) => r.waitFor('message.new', (m) => m.roomId === room && m.seq > seqAtReplicaKill + 5, RESUME_WITHIN_MS)),
      );
      t.diagnostic(`replica :${replica.port} killed: fan-out went on, 5 messages later after ${Date.now() - replicaKilledAt} ms`);
    } finally {
      sender.stop();
      await loop;
      sender.close();
    }

    const acks = sender.acks;
    const gaps = acks.slice(1).map((a, i) => a.at - acks[i].at);
    t.diagnostic(`${acks.length} sends acked, longest gap between acks ${Math.max(...gaps)} ms, ${sender.unanswered} unanswered`);
    assert.ok(Math.max(...gaps) < 5000, 'sends kept being acked during the failover');
    const stored = new Set((await cluster.db.query<{ id: string }>('SELECT id FROM messages WHERE room_id = $1', [room])).map((m) => m.id));
    assert.deepEqual(
      acks.filter((a) => !stored.has(a.id)),
      [],
      '0 acked messages lost',
    );
    // A receiver recovers what live fan-out missed during the failover from the history.
    const seen = new Set<string>(receivers[0].messagesIn(room).map((m: { id: string }) => m.id));
    for (let afterSeq = 0, more = true, pages = 0; more && pages < 20; pages++) {
      const page = await receivers[0].ok('message.history', { roomId: room, limit: 100, afterSeq });
      for (const m of page.messages) seen.add(m.id);
      afterSeq = page.messages.at(-1)?.seq ?? afterSeq;
      more = page.hasMore;
    }
    assert.equal(acks.filter((a) => !seen.has(a.id)).length, 0, 'live pushes and history together hold every acked message');
    for (const inst of instances) assert.doesNotMatch(inst.output(), /uncaught|unhandled/i, inst.name);
  });
  it('reports the users of a killed instance left once, within about 4/3 of the lease (the sweep script on the cluster)', async () => {
    const room = 'cluster-sweep';
    const [A, , C] = instances;
    const watcher = await joined('ws', A, 'sweep-watcher', room);
    await joined('io', C, 'kim', room);
    await watcher.waitFor('presence.joined', (d) => d.roomId === room && d.userId === 'kim', 5000);
    const killedAt = Date.now();
    C.proc.kill('SIGKILL');
    await C.exited;
    await watcher.waitFor('presence.left', (d) => d.roomId === room && d.userId === 'kim', 3 * LEASE_MS);
    const after = Date.now() - killedAt;
    await sleep(SETTLE_MS);
    assert.equal(watcher.pushesOf('presence.left').filter((d) => d.roomId === room && d.userId === 'kim').length, 1);
    assert.deepEqual(
      (await watcher.ok('presence.list', { roomId: room })).users.map((u: { userId: string }) => u.userId),
      ['sweep-watcher'],
    );
    assert.ok(after < 3 * LEASE_MS, `left after ${after} ms`);
  });
});
