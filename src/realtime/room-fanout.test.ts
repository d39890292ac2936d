import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { ChatConnection, type CloseReason } from './chat-connection.js';
import type { Message } from '../chat/chat.events.js';
import { fakeRelay } from './fake-relay.test-support.js';
import { LocalConnections } from './local-connections.js';
import type { RedisClients } from '../redis/redis-clients.js';
import type { RoomAccessReconciler } from './room-access-reconciler.js';
import { RedisNames } from '../redis/redis-names.js';
import { RoomFanout } from './room-fanout.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import type { DataSource } from 'typeorm';

interface Push {
  event: string;
  data: unknown;
}

/** The subscriber's gap events on one server (RedisClients.subscriberGaps). */
const ONE_SERVER = { lost: 'close', back: 'ready' };

let nextId = 0;
class FakeConnection extends ChatConnection {
  readonly pushes: Push[] = [];
  readonly subscriptions: string[][] = [];

  constructor(userId: string) {
    super(`fake-${++nextId}`, 'ws', { userId, name: null, expiresAt: Date.now() + 3600e3 }, 100);
  }
  push(event: string, data: unknown): void {
    this.pushes.push({ event, data });
  }
  protected subscribe(roomId: string): void {
    this.subscriptions.push(['subscribe', roomId]);
  }
  protected unsubscribe(roomId: string): void {
    this.subscriptions.push(['unsubscribe', roomId]);
  }
  onRequest(): void {}
  bufferedBytes(): number {
    return 0;
  }
  terminate(): void {}
  close(_reason: CloseReason): void {}
}

/** Connections added to a real LocalConnections, joined to the given rooms. */
function connect(local: LocalConnections, userId: string, ...rooms: string[]): FakeConnection {
  const conn = new FakeConnection(userId);
  local.add(conn);
  for (const roomId of rooms) conn.join(roomId);
  return conn;
}

function removedPushes(conn: FakeConnection): unknown[] {
  return conn.pushes.filter((p) => p.event === 'room.removed').map((p) => p.data);
}

/** A payload the fan-out carries without looking into it, told apart by `n`. */
function numbered(n: number): Message {
  return { n } as unknown as Message;
}

describe('RoomFanout', () => {
  describe('removeUsers', () => {
    it("takes only those users' connections out of the room and pushes each room.removed {roomId}", () => {
      const local = new LocalConnections();
      const alice1 = connect(local, 'alice', 'r1', 'r2');
      const alice2 = connect(local, 'alice', 'r1');
      const bob = connect(local, 'bob', 'r1');
      const carol = connect(local, 'carol', 'r1');
      new RoomFanout(local).removeUsers('r1', ['alice', 'carol']);

      for (const conn of [alice1, alice2, carol]) {
        assert.equal(conn.rooms.has('r1'), false, `${conn.user.userId} left r1`);
        assert.deepEqual(removedPushes(conn), [{ roomId: 'r1' }]);
        assert.deepEqual(conn.subscriptions.at(-1), ['unsubscribe', 'r1'], 'the transport subscription is dropped too');
      }
      assert.equal(alice1.rooms.has('r2'), true, 'other rooms are kept');
      assert.equal(bob.rooms.has('r1'), true);
      assert.deepEqual(bob.pushes, []);
    });

    it("pushes nothing to the users' connections that are not in the room", () => {
      const local = new LocalConnections();
      const inOther = connect(local, 'alice', 'r2');
      const inNone = connect(local, 'alice');
      new RoomFanout(local).removeUsers('r1', ['alice']);
      assert.deepEqual(inOther.pushes, []);
      assert.deepEqual(inNone.pushes, []);
      assert.equal(inOther.rooms.has('r2'), true);
    });
  });

  describe('removeNonMembers', () => {
    it('keeps the connections of members and evicts everyone else in the room', () => {
      const local = new LocalConnections();
      const member1 = connect(local, 'alice', 'r1');
      const member2 = connect(local, 'alice', 'r1');
      const outsider1 = connect(local, 'bob', 'r1');
      const outsider2 = connect(local, 'carol', 'r1', 'r2');
      const elsewhere = connect(local, 'dave', 'r2');
      new RoomFanout(local).removeNonMembers('r1', ['alice', 'dave']);

      for (const conn of [member1, member2]) {
        assert.equal(conn.rooms.has('r1'), true);
        assert.deepEqual(conn.pushes, []);
      }
      for (const conn of [outsider1, outsider2]) {
        assert.equal(conn.rooms.has('r1'), false);
        assert.deepEqual(removedPushes(conn), [{ roomId: 'r1' }]);
      }
      assert.equal(outsider2.rooms.has('r2'), true);
      assert.deepEqual(elsewhere.pushes, []);
    });

    it('evicts everyone in the room when the room has no members', () => {
      const local = new LocalConnections();
      const alice = connect(local, 'alice', 'r1');
      const bob = connect(local, 'bob', 'r1', 'r2');
      const elsewhere = connect(local, 'carol', 'r2');
      new RoomFanout(local).removeNonMembers('r1', []);
      for (const conn of [alice, bob]) {
        assert.equal(conn.rooms.has('r1'), false);
        assert.deepEqual(removedPushes(conn), [{ roomId: 'r1' }]);
      }
      assert.equal(bob.rooms.has('r2'), true);
      assert.deepEqual(elsewhere.pushes, []);
    });
  });

  describe('with a relay (relayThrough)', () => {
    it('relays removeUsers once through serverSideEmit and applies it locally', () => {
      const local = new LocalConnections();
      const alice = connect(local, 'alice', 'r1');
      const bob = connect(local, 'bob', 'r1');
      const { relay, emitted } = fakeRelay();
      const fanout = new RoomFanout(local, relay);
      fanout.relayThrough();
      fanout.removeUsers('r1', ['alice']);
      assert.equal(emitted.length, 1);
      assert.deepEqual(emitted[0]?.slice(1), ['r1', { userIds: ['alice'] }]);
      assert.deepEqual(removedPushes(alice), [{ roomId: 'r1' }]);
      assert.deepEqual(removedPushes(bob), []);
    });

    it('relays removeNonMembers once through serverSideEmit and applies it locally', () => {
      const local = new LocalConnections();
      const alice = connect(local, 'alice', 'r1');
      const bob = connect(local, 'bob', 'r1');
      const { relay, emitted } = fakeRelay();
      const fanout = new RoomFanout(local, relay);
      fanout.relayThrough();
      fanout.removeNonMembers('r1', ['alice']);
      assert.equal(emitted.length, 1);
      assert.deepEqual(emitted[0]?.slice(1), ['r1', { keepMembers: ['alice'] }]);
      assert.deepEqual(removedPushes(alice), []);
      assert.deepEqual(removedPushes(bob), [{ roomId: 'r1' }]);
    });

    it('applies evictions relayed from another instance locally, without relaying them again', () => {
      const local = new LocalConnections();
      const alice = connect(local, 'alice', 'r1');
      const bob = connect(local, 'bob', 'r1');
      const carol = connect(local, 'carol', 'r1');
      const { relay, listeners, emitted } = fakeRelay();
      const fanout = new RoomFanout(local, relay);
      fanout.relayThrough();

      // Learn the eviction event's name the way another instance would send it.
      const sent = fakeRelay();
      const probe = new RoomFanout(new LocalConnections(), sent.relay);
      probe.relayThrough();
      probe.removeUsers('r1', ['alice']);
      probe.removeNonMembers('r1', ['carol']);
      assert.equal(sent.emitted.length, 2);

      for (const [event, ...args] of sent.emitted) {
        const listener = listeners.get(event as string);
        assert.ok(listener, `a listener for ${String(event)}`);
        listener(...args);
      }
      assert.deepEqual(removedPushes(alice), [{ roomId: 'r1' }], 'removed by the relayed removeUsers');
      assert.deepEqual(removedPushes(bob), [{ roomId: 'r1' }], 'removed by the relayed removeNonMembers');
      assert.deepEqual(removedPushes(carol), [], 'a member stays');
      assert.equal(carol.rooms.has('r1'), true);
      assert.deepEqual(emitted, [], 'nothing is sent back out');
    });

    it('publishes locally once and relays once, and delivers relayed events without relaying them again', () => {
      const local = new LocalConnections();
      const delivered: unknown[][] = [];
      local.deliver = (...args: unknown[]) => void delivered.push(args);
      const { relay, listeners, emitted } = fakeRelay();
      const fanout = new RoomFanout(local, relay);
      fanout.relayThrough();

      fanout.publish('r1', 'message.new', numbered(1));
      assert.deepEqual(delivered, [['r1', 'message.new', { n: 1 }]]);
      assert.equal(emitted.length, 1);
      assert.deepEqual(emitted[0]?.slice(1), ['r1', 'message.new', { n: 1 }]);

      const relayed = listeners.get(emitted[0]?.[0] as string);
      assert.ok(relayed);
      relayed('r1', 'message.new', { n: 2 });
      assert.deepEqual(delivered.at(-1), ['r1', 'message.new', { n: 2 }]);
      assert.equal(emitted.length, 1, 'a relayed event is not sent back out');
    });

    it('counts every message the Redis subscriber receives, of any kind, and nothing else it emits', async () => {
      const metrics = new ChatMetrics({ driver: {} } as unknown as DataSource);
      const fanout = new RoomFanout(new LocalConnections(), fakeRelay().relay, metrics);
      const sub = new EventEmitter();
      fanout.relayThrough({ sub, pub: new EventEmitter(), subscriberGaps: ONE_SERVER } as unknown as RedisClients);
      sub.emit('pmessageBuffer', Buffer.from('p#*'), Buffer.from('p#/#'), Buffer.from('x'));
      sub.emit('messageBuffer', Buffer.from('p-request#/#'), Buffer.from('x'));
      sub.emit('smessageBuffer', Buffer.from('p:room:r1'), Buffer.from('x'));
      sub.emit('pmessage', 'p#*', 'p#/#', 'x');
      sub.emit('ready');
      const counted = await metrics.registry.getSingleMetricAsString('chat_relay_messages_received_total');
      assert.match(counted, /^chat_relay_messages_received_total 3$/m);
      fanout.onApplicationShutdown();
    });
  });
});

describe('RoomFanout reconcile after a Redis subscriber gap', () => {
  /** A reconciler whose answer the test releases, standing in for the Postgres reads. */
  function gatedReconciler(local: LocalConnections, stillMember: (userId: string) => boolean) {
    let release: () => void = () => undefined;
    let calls = 0;
    const reconciler = {
      async staleJoins() {
        calls++;
        await new Promise<void>((r) => (release = r));
        return [...local.all()].flatMap((conn) =>
          [...conn.rooms].filter(() => !stillMember(conn.user.userId)).map((roomId) => ({ conn: conn as ChatConnection, roomId })),
        );
      },
    };
    return { reconciler: reconciler as unknown as RoomAccessReconciler, release: () => release(), calls: () => calls };
  }

  /** What reaches the room's local members (fake connections are not in the ws registry). */
  function recordDeliveries(local: LocalConnections): unknown[] {
    const delivered: unknown[] = [];
    local.deliver = (_roomId, _event, data) => void delivered.push(data);
    return delivered;
  }

  it('holds relayed pushes from the disconnect until membership was re-read, evicts the removed member first, then delivers in order', async () => {
    const local = new LocalConnections();
    const removed = connect(local, 'removed', 'secret');
    connect(local, 'stays', 'secret');
    const delivered = recordDeliveries(local);
    const gate = gatedReconciler(local, (u) => u !== 'removed');
    const { relay: instances, listeners } = fakeRelay();
    const fanout = new RoomFanout(local, instances, undefined, gate.reconciler);
    const sub = new EventEmitter();
    fanout.relayThrough({ sub, pub: new EventEmitter(), subscriberGaps: ONE_SERVER } as unknown as RedisClients);
    const relay = listeners.get('chat:room-event')!;

    sub.emit('close');
    sub.emit('ready');
    relay('secret', 'message.new', { n: 1 });
    relay('secret', 'message.new', { n: 2 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([delivered, removed.pushes], [[], []], 'nothing is delivered before the reconcile');
    gate.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(removed.pushes, [{ event: 'room.removed', data: { roomId: 'secret' } }]);
    assert.deepEqual(delivered, [{ n: 1 }, { n: 2 }]);
    relay('secret', 'message.new', { n: 3 });
    assert.equal(delivered.length, 3, 'after the reconcile, relays deliver at once again');
    assert.equal(gate.calls(), 1);
    fanout.onApplicationShutdown();
  });

  it('on a cluster, holds from a shard subscriber’s end (-node) until every shard resubscribed (subscribersReady) and membership was re-read', async () => {
    const local = new LocalConnections();
    const removed = connect(local, 'removed', 'secret');
    const delivered = recordDeliveries(local);
    const gate = gatedReconciler(local, (u) => u !== 'removed');
    const { relay: instances, listeners } = fakeRelay();
    const fanout = new RoomFanout(local, instances, undefined, gate.reconciler);
    const sub = new EventEmitter();
    const subscriberGaps = { lost: '-node', back: 'subscribersReady' };
    fanout.relayThrough({ sub, pub: new EventEmitter(), subscriberGaps } as unknown as RedisClients);
    const relay = listeners.get('chat:room-event')!;

    sub.emit('-node');
    relay('secret', 'message.new', { n: 1 });
    sub.emit('subscribersReady');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [], 'held until the reconcile ran');
    gate.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(removed.pushes, [{ event: 'room.removed', data: { roomId: 'secret' } }]);
    assert.deepEqual(delivered, [{ n: 1 }]);
    fanout.onApplicationShutdown();
  });

  it('ends a gap whose back event never comes after overAfterMs (a cluster’s -node for a replica nothing was subscribed on)', async () => {
    const local = new LocalConnections();
    connect(local, 'stays', 'secret');
    const delivered = recordDeliveries(local);
    const gate = gatedReconciler(local, () => true);
    const { relay: instances, listeners } = fakeRelay();
    const fanout = new RoomFanout(local, instances, undefined, gate.reconciler);
    const sub = new EventEmitter();
    const subscriberGaps = { lost: '-node', back: 'subscribersReady', overAfterMs: 30 };
    fanout.relayThrough({ sub, pub: new EventEmitter(), subscriberGaps } as unknown as RedisClients);
    const relay = listeners.get('chat:room-event')!;

    sub.emit('-node');
    relay('secret', 'message.new', { n: 1 });
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(delivered, [], 'held within the bound');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(gate.calls(), 1, 'the bound started a reconcile');
    gate.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [{ n: 1 }], 'delivered once the bound ended the gap and membership was re-read');
    fanout.onApplicationShutdown();
  });

  it('keeps holding when the subscriber dropped again during the reconcile, until the next reconnect’s run', async () => {
    const local = new LocalConnections();
    connect(local, 'stays', 'secret');
    const delivered = recordDeliveries(local);
    const gate = gatedReconciler(local, () => true);
    const { relay: instances, listeners } = fakeRelay();
    const fanout = new RoomFanout(local, instances, undefined, gate.reconciler);
    const sub = new EventEmitter();
    fanout.relayThrough({ sub, pub: new EventEmitter(), subscriberGaps: ONE_SERVER } as unknown as RedisClients);
    sub.emit('close');
    sub.emit('ready');
    await new Promise((r) => setImmediate(r));
    sub.emit('close');
    listeners.get('chat:room-event')!('secret', 'message.new', { n: 1 });
    gate.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [], 'a run that saw another gap delivers nothing');
    sub.emit('ready');
    await new Promise((r) => setImmediate(r));
    gate.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [{ n: 1 }]);
    fanout.onApplicationShutdown();
  });

  it('an eviction published while the publisher was away asks every instance to reconcile once it is back', async () => {
    const local = new LocalConnections();
    const gate = gatedReconciler(local, () => true);
    const { relay: instances, listeners, emitted } = fakeRelay();
    const fanout = new RoomFanout(local, instances, undefined, gate.reconciler);
    const pub = Object.assign(new EventEmitter(), { status: 'reconnecting' });
    fanout.relayThrough({ sub: new EventEmitter(), pub, subscriberGaps: ONE_SERVER } as unknown as RedisClients);
    fanout.removeUsers('secret', ['gone']);
    pub.status = 'ready';
    pub.emit('ready');
    pub.emit('ready');
    assert.deepEqual(
      emitted.map((e) => e[0]),
      ['chat:room-evict', 'chat:membership-reconcile'],
      'the eviction, then one reconcile request',
    );
    const delivered = recordDeliveries(local);
    listeners.get('chat:membership-reconcile')!();
    listeners.get('chat:room-event')!('secret', 'message.new', { n: 1 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [], 'a receiver holds relayed pushes until its reconcile ran');
    gate.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [{ n: 1 }]);
    fanout.onApplicationShutdown();
  });
});

describe('RoomFanout on a Redis Cluster: a sharded channel per room', () => {
  const names = new RedisNames('pfx', true);
  const CLUSTER = { lost: '-node', back: 'subscribersReady', overAfterMs: 5000 };

  /** A cluster connection standing in for pub and sub: records the pub/sub commands; the test confirms subscriptions. */
  function fakeCluster() {
    const client = new EventEmitter() as EventEmitter & Record<string, unknown>;
    const commands: string[][] = [];
    const pending = new Map<string, () => void>();
    client.status = 'ready';
    client.ssubscribe = (channel: string) => {
      commands.push(['ssubscribe', channel]);
      return new Promise<number>((resolve) => pending.set(channel, () => resolve(1)));
    };
    client.sunsubscribe = (channel: string) => {
      commands.push(['sunsubscribe', channel]);
      return Promise.resolve(0);
    };
    client.spublish = (channel: string, message: string) => {
      commands.push(['spublish', channel, message]);
      return Promise.resolve(1);
    };
    return { client, commands, confirm: (channel: string) => pending.get(channel)?.() };
  }

  function setUp() {
    const local = new LocalConnections();
    const delivered: unknown[][] = [];
    local.deliver = (...args: unknown[]) => void delivered.push(args);
    const redis = fakeCluster();
    const { relay, emitted } = fakeRelay();
    const fanout = new RoomFanout(local, relay);
    fanout.relayThrough({
      pub: redis.client,
      sub: redis.client,
      subscriberGaps: CLUSTER,
      names,
      isCluster: true,
    } as unknown as RedisClients);
    return { local, delivered, redis, emitted, fanout };
  }

  it('subscribes on the first local join of a room, resolves the joins once it is confirmed, unsubscribes when the last member leaves or closes', async () => {
    const { local, redis } = setUp();
    const channel = names.roomChannel('r1');
    const a = new FakeConnection('a');
    const b = new FakeConnection('b');
    local.add(a);
    local.add(b);
    let joined = 0;
    void a.join('r1').then(() => joined++);
    void b.join('r1').then(() => joined++);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(redis.commands, [['ssubscribe', channel]], 'one subscription for two members');
    assert.equal(joined, 0, 'the joins wait for the confirmation');
    redis.confirm(channel);
    await new Promise((r) => setImmediate(r));
    assert.equal(joined, 2);
    a.leave('r1');
    assert.equal(redis.commands.length, 1, 'a member is left');
    (b as unknown as { notifyClosed(reason: string): void }).notifyClosed('restart');
    assert.deepEqual(redis.commands.at(-1), ['sunsubscribe', channel]);
  });

  it("publishes a room's pushes, pushes to others and evictions on its channel, in order, and none through serverSideEmit", () => {
    const { redis, emitted, fanout } = setUp();
    fanout.publish('r1', 'message.new', numbered(1));
    fanout.publishToOthers('r1', 'typing', { roomId: 'r1', userId: 'alice', typing: true }, 'alice');
    fanout.removeUsers('r1', ['bob']);
    const published = redis.commands.filter((c) => c[0] === 'spublish');
    assert.deepEqual(
      published.map((c) => [c[1], (JSON.parse(c[2]!) as { relay: unknown }).relay]),
      [
        [names.roomChannel('r1'), { kind: 'event', event: 'message.new', data: { n: 1 } }],
        [
          names.roomChannel('r1'),
          { kind: 'others', event: 'typing', data: { roomId: 'r1', userId: 'alice', typing: true }, exceptUserId: 'alice' },
        ],
        [names.roomChannel('r1'), { kind: 'evict', who: { userIds: ['bob'] } }],
      ],
    );
    assert.deepEqual(emitted, []);
  });

  it("delivers another instance's messages on a subscribed room's channel, not its own, and none after the last member left", () => {
    const { local, delivered, redis, fanout } = setUp();
    const conn = new FakeConnection('a');
    local.add(conn);
    void conn.join('r1');
    const channel = names.roomChannel('r1');
    const from = (origin: string, n: number) =>
      JSON.stringify({ origin, relay: { kind: 'event', event: 'message.new', data: { n, createdAt: new Date().toISOString() } } });
    redis.client.emit('smessage', channel, from('other-instance', 1));
    redis.client.emit('smessage', names.roomChannel('not-joined'), from('other-instance', 2));
    assert.deepEqual(
      delivered.map((d) => (d[2] as { n: number }).n),
      [1],
    );
    // Its own publish comes back from Redis too: delivered locally once, not again.
    fanout.publish('r1', 'message.new', numbered(4));
    const own = redis.commands.find((c) => c[0] === 'spublish')!;
    redis.client.emit('smessage', own[1], own[2]);
    assert.deepEqual(
      delivered.map((d) => (d[2] as { n: number }).n),
      [1, 4],
    );
    conn.leave('r1');
    redis.client.emit('smessage', channel, from('other-instance', 3));
    assert.equal(delivered.length, 2, 'nothing after the last member left');
  });
});
