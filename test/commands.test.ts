import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import { Redis } from 'ioredis';
import { firstValueFrom, timeout, TimeoutError } from 'rxjs';
import { connect, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { redisPrefix, SHARED_REDIS_URL, startInstance, waitUntilReady, type Instance } from './support/instance.js';
import { PrivateRedis } from './support/private-infra.js';
import { tokenFor } from './support/tokens.js';
import { EMPTY_ROOM, ROOM_KEYS, UNCHANGED } from './support/message-shape.js';

/** Nest's client logs every Redis reconnection attempt; the outage tests cause plenty. */
Logger.overrideLogger(false);

const COMMANDS = ['message.send', 'message.edit', 'message.delete', 'room.upsert', 'member.add', 'member.remove'] as const;
/** The cluster's deployment prefix: each test run serves its commands on channels of its own. */
const PREFIX = redisPrefix();
/** The channel a command is sent on: `<REDIS_PREFIX>.<command>`. */
const cmd = (command: string) => `${PREFIX}.${command}`;
/** Long enough for a duplicate reply or push to arrive behind the one we waited for. */
const SETTLE_MS = 500;

/** A Nest ClientProxy on Nest's Redis transport, as another Nest service would create it. */
async function commandClient(redisUrl: string): Promise<ClientProxy> {
  const url = new URL(redisUrl);
  const client = ClientProxyFactory.create({ transport: Transport.REDIS, options: { host: url.hostname, port: Number(url.port || 6379) } });
  await client.connect();
  return client;
}

type Answer = { ok: true; data: any } | { ok: false; err: any };

/** `client.send(pattern, data)`: the reply's data, or the `err` it failed with; throws when no reply comes within `ms`. */
async function call(client: ClientProxy, pattern: string, data: unknown, ms = 5000): Promise<Answer> {
  try {
    return { ok: true, data: await firstValueFrom(client.send(pattern, data).pipe(timeout(ms))) };
  } catch (err) {
    if (err instanceof TimeoutError) throw new Error(`no reply to ${pattern} within ${ms} ms`);
    return { ok: false, err };
  }
}

async function ok(client: ClientProxy, pattern: string, data: unknown): Promise<any> {
  const answer = await call(client, pattern, data);
  if (!answer.ok) throw new Error(`${pattern} failed: ${JSON.stringify(answer.err)}`);
  return answer.data;
}

async function fails(client: ClientProxy, pattern: string, data: unknown): Promise<any> {
  const answer = await call(client, pattern, data);
  assert.equal(answer.ok, false, `${pattern} ${JSON.stringify(data)} should fail`);
  return (answer as { err: any }).err;
}

/** Every reply on the `<pattern>.reply` channels, read with a plain ioredis subscriber. */
class ReplyRecorder {
  readonly redis = new Redis(SHARED_REDIS_URL);
  readonly got: { channel: string; packet: any }[] = [];

  async listen(): Promise<void> {
    this.redis.on('message', (channel: string, message: string) => this.got.push({ channel, packet: JSON.parse(message) }));
    await this.redis.subscribe(...COMMANDS.map((c) => `${cmd(c)}.reply`));
  }

  withId(id: string): { channel: string; packet: any }[] {
    return this.got.filter((r) => r.packet.id === id);
  }

  async waitForId(id: string, ms = 5000): Promise<{ channel: string; packet: any }> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const [first] = this.withId(id);
      if (first) return first;
      await sleep(20);
    }
    throw new Error(`no reply with id ${id} within ${ms} ms`);
  }

  close(): void {
    this.redis.disconnect();
  }
}

/** chat_commands_total{pattern, outcome} as one instance's /metrics reports it. */
async function commandCount(inst: Instance, pattern: string, outcome: string): Promise<number> {
  const text = await (await fetch(`${inst.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('chat_commands_total{') && l.includes(`pattern="${pattern}"`) && l.includes(`outcome="${outcome}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const isIso = (v: unknown) => typeof v === 'string' && new Date(v).toISOString() === v;

describe('commands in over the Redis transport, two instances', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;
  let client: ClientProxy;
  let replies: ReplyRecorder;
  let raw: Redis;

  before(async () => {
    cluster = await startCluster(2, { REDIS_PREFIX: PREFIX });
    [A, B] = cluster.instances;
    client = await commandClient(SHARED_REDIS_URL);
    replies = new ReplyRecorder();
    await replies.listen();
    raw = new Redis(SHARED_REDIS_URL);
  });

  after(async () => {
    await client.close();
    replies.close();
    raw.disconnect();
    await cluster.stop();
  });

  const stored = async (roomId: string) =>
    (await cluster.db.query<{ body: string }>('SELECT body FROM messages WHERE room_id = $1 ORDER BY seq', [roomId])).map((m) => m.body);
  const members = async (roomId: string) =>
    (await cluster.db.query<{ user_id: string }>('SELECT user_id FROM room_members WHERE room_id = $1 ORDER BY user_id', [roomId])).map(
      (m) => m.user_id,
    );

  /** Connects `user` with each kind on each instance, joined to `roomId`. */
  async function placeEverywhere(user: string, roomId: string, kinds: Kind[] = ['io', 'ws']): Promise<TestClient[]> {
    const placed: TestClient[] = [];
    for (const inst of cluster.instances)
      for (const kind of kinds) {
        const c = cluster.track(await connect(kind, inst.url, await tokenFor(user)));
        await c.ok('room.join', { roomId });
        placed.push(c);
      }
    return placed;
  }

  it('chat.room.upsert answers the Room; chat.member.add and chat.member.remove answer { roomId, userId }, idempotently', async () => {
    const roomId = 'cmd-room';
    const created = await ok(client, cmd('room.upsert'), { roomId, visibility: 'private', title: 'Ops', metadata: { team: 'core' } });
    assert.deepEqual(Object.keys(created).sort(), ROOM_KEYS);
    const { createdAt, ...rest } = created;
    assert.deepEqual(rest, {
      roomId,
      visibility: 'private',
      title: 'Ops',
      metadata: { team: 'core' },
      ...EMPTY_ROOM,
    });
    assert.ok(isIso(createdAt), `createdAt ${createdAt}`);
    const replaced = await ok(client, cmd('room.upsert'), { roomId, visibility: 'private' });
    assert.deepEqual(replaced, {
      roomId,
      visibility: 'private',
      title: null,
      metadata: null,
      ...EMPTY_ROOM,
      createdAt,
    });

    for (const userId of ['alice', 'alice', 'bob']) {
      assert.deepEqual(await ok(client, cmd('member.add'), { roomId, userId }), { roomId, userId });
    }
    assert.deepEqual(await members(roomId), ['alice', 'bob']);
    for (const userId of ['alice', 'alice', 'never-a-member']) {
      assert.deepEqual(await ok(client, cmd('member.remove'), { roomId, userId }), { roomId, userId });
    }
    assert.deepEqual(await members(roomId), ['bob']);
  });

  it('chat.member.remove takes the user’s live connections out of the room on every instance', async () => {
    const roomId = 'cmd-evict';
    await ok(client, cmd('room.upsert'), { roomId, visibility: 'private' });
    await ok(client, cmd('member.add'), { roomId, userId: 'carol' });
    const carol = await placeEverywhere('carol', roomId);
    await ok(client, cmd('member.remove'), { roomId, userId: 'carol' });
    await Promise.all(carol.map((c) => c.waitFor('room.removed', (d) => d.roomId === roomId)));
    for (const c of carol) assert.equal((await c.request('message.send', { roomId, body: 'still here?' })).error?.code, 'FORBIDDEN');
  });

  it('chat.message.send answers the stored Message and delivers it to ws and socket.io clients on both instances, once each', async () => {
    const roomId = 'cmd-live';
    const watchers = await placeEverywhere('watcher', roomId);
    const msg = await ok(client, cmd('message.send'), { roomId, senderId: 'backend-bot', body: 'hello from a command' });
    assert.deepEqual(
      { ...msg, id: undefined, createdAt: undefined },
      {
        ...UNCHANGED,
        id: undefined,
        roomId,
        seq: 1,
        modSeq: 1,
        senderId: 'backend-bot',
        body: 'hello from a command',
        clientMsgId: null,
        createdAt: undefined,
      },
    );
    assert.ok(isIso(msg.createdAt));
    await Promise.all(watchers.map((c) => c.waitFor('message.new', (m) => m.id === msg.id)));
    await sleep(SETTLE_MS);
    for (const c of watchers) assert.deepEqual(c.messagesIn(roomId), [msg], `${c.kind} pushes`);
    assert.deepEqual(await stored(roomId), ['hello from a command']);
  });

  it('chat.message.edit and chat.message.delete change any message of the room, answer the latest Message and push message.updated once', async () => {
    const roomId = 'cmd-change';
    const watchers = await placeEverywhere('watcher3', roomId);
    const sent = await watchers[0]!.ok('message.send', { roomId, body: 'typo' });
    const edited = await ok(client, cmd('message.edit'), { roomId, seq: sent.seq, body: 'fixed', mentions: ['bob', 'bob'] });
    assert.deepEqual(
      { body: edited.body, version: edited.version, modSeq: edited.modSeq, mentions: edited.mentions, senderId: edited.senderId },
      { body: 'fixed', version: 2, modSeq: 2, mentions: ['bob'], senderId: 'watcher3' },
    );
    assert.ok(isIso(edited.editedAt));
    const deleted = await ok(client, cmd('message.delete'), { roomId, seq: sent.seq });
    assert.deepEqual({ body: deleted.body, version: deleted.version, modSeq: deleted.modSeq }, { body: '', version: 3, modSeq: 3 });
    assert.ok(isIso(deleted.deletedAt));
    assert.deepEqual(await ok(client, cmd('message.delete'), { roomId, seq: sent.seq }), deleted, 'a second delete answers the tombstone');
    await Promise.all(watchers.map((c) => c.waitFor('message.updated', (m) => m.modSeq === 3)));
    await sleep(SETTLE_MS);
    for (const c of watchers)
      assert.deepEqual(
        c.pushesOf('message.updated').map((m) => m.modSeq),
        [2, 3],
        `${c.kind} pushes`,
      );
    assert.equal((await fails(client, cmd('message.edit'), { roomId, seq: 99, body: 'x' })).code, 'NOT_FOUND');
    assert.equal((await fails(client, cmd('message.delete'), { roomId: 'cmd-no-such-room', seq: 1 })).code, 'NOT_FOUND');
    assert.deepEqual((await fails(client, cmd('message.edit'), { roomId, seq: -1, body: 'x' })).details, { fields: ['seq'] });
  });

  it('a repeated clientMsgId answers the stored message again, without storing or broadcasting it again', async () => {
    const roomId = 'cmd-idempotent';
    const [watcher] = await placeEverywhere('watcher2', roomId, ['ws']);
    const data = { roomId, senderId: 'backend-bot', body: 'exactly once', clientMsgId: 'order-42-shipped' };
    const first = await ok(client, cmd('message.send'), data);
    assert.equal(first.clientMsgId, 'order-42-shipped');
    const repeats = await Promise.all([1, 2, 3, 4].map(() => ok(client, cmd('message.send'), data)));
    for (const r of repeats) assert.deepEqual(r, first);
    await watcher.waitFor('message.new', (m) => m.id === first.id);
    await sleep(SETTLE_MS);
    assert.equal(watcher.messagesIn(roomId).length, 1);
    assert.deepEqual(await stored(roomId), ['exactly once']);
  });

  it('invalid data is answered VALIDATION_FAILED with details.fields, as { id, err, isDisposed: true } on <pattern>.reply', async () => {
    const err = await fails(client, cmd('message.send'), { roomId: 'not a room id', senderId: '', body: '   ' });
    assert.equal(err.code, 'VALIDATION_FAILED');
    assert.equal(typeof err.message, 'string');
    assert.deepEqual([...err.details.fields].sort(), ['body', 'roomId', 'senderId']);

    for (const pattern of COMMANDS.map(cmd)) {
      // (Nest's client itself refuses to send null or undefined data; the raw packets below cover those.)
      for (const data of ['text', [1, 2], 42, true]) {
        assert.deepEqual(await fails(client, pattern, data), {
          code: 'VALIDATION_FAILED',
          message: 'data must be an object',
          details: { fields: [] },
        });
      }
      assert.equal((await fails(client, pattern, {})).code, 'VALIDATION_FAILED', `${pattern} {}`);
    }
    assert.deepEqual((await fails(client, cmd('room.upsert'), { roomId: 'r', visibility: 'secret' })).details, { fields: ['visibility'] });
    assert.deepEqual((await fails(client, cmd('member.add'), { roomId: 'r', userId: 'x'.repeat(129) })).details, { fields: ['userId'] });
    let deep: unknown = 'leaf';
    for (let i = 0; i < 40; i++) deep = { deep };
    const tooDeep = await fails(client, cmd('room.upsert'), { roomId: 'r', visibility: 'public', metadata: deep });
    assert.deepEqual([tooDeep.code, tooDeep.details], ['VALIDATION_FAILED', { fields: ['metadata'] }]);

    // The exact packet on the wire, as any client (not only Nest's) sees it.
    const id = 'raw-validation-1';
    await raw.publish(cmd('member.add'), JSON.stringify({ pattern: cmd('member.add'), data: { roomId: 'some-room' }, id }));
    const reply = await replies.waitForId(id);
    assert.equal(reply.channel, `${cmd('member.add')}.reply`);
    assert.deepEqual(Object.keys(reply.packet).sort(), ['err', 'id', 'isDisposed']);
    assert.deepEqual(reply.packet, {
      id,
      isDisposed: true,
      err: { code: 'VALIDATION_FAILED', message: reply.packet.err.message, details: { fields: ['userId'] } },
    });
    assert.match(reply.packet.err.message, /^userId: /);
    for (const [i, packet] of [{ data: null }, {}].entries()) {
      const rawId = `raw-validation-no-data-${i}`;
      await raw.publish(cmd('room.upsert'), JSON.stringify({ pattern: cmd('room.upsert'), ...packet, id: rawId }));
      assert.deepEqual((await replies.waitForId(rawId)).packet, {
        id: rawId,
        isDisposed: true,
        err: { code: 'VALIDATION_FAILED', message: 'data must be an object', details: { fields: [] } },
      });
    }
    await sleep(SETTLE_MS);
    for (const rawId of [id, 'raw-validation-no-data-0', 'raw-validation-no-data-1'])
      assert.equal(replies.withId(rawId).length, 1, 'one reply, from one instance');
  });

  it('chat.member.add and chat.member.remove on a room that does not exist answer NOT_FOUND and create nothing', async () => {
    for (const pattern of [cmd('member.add'), cmd('member.remove')]) {
      assert.deepEqual(await fails(client, pattern, { roomId: 'no-such-room', userId: 'alice' }), {
        code: 'NOT_FOUND',
        message: 'room no-such-room does not exist',
      });
    }
    assert.deepEqual(await cluster.db.query("SELECT id FROM rooms WHERE id = 'no-such-room'"), []);
  });

  it('ignores malformed messages and emit()s (no id) without answering, storing or crashing, and goes on serving', async () => {
    const roomId = 'cmd-ignored';
    const valid = { roomId, senderId: 'bot', body: 'must not be stored' };
    const ignoredBefore = await Promise.all([A, B].map((i) => commandCount(i, cmd('message.send'), 'ignored')));
    const mark = replies.got.length;
    const junk = [
      'not json {',
      '',
      'null',
      '[1,2]',
      JSON.stringify({ pattern: cmd('message.send'), data: valid }),
      JSON.stringify({ pattern: cmd('message.send'), data: valid, id: 42 }),
      JSON.stringify({ pattern: cmd('message.send'), data: valid, id: { id: 'x' } }),
      JSON.stringify({ pattern: cmd('message.send'), data: valid, id: 'x'.repeat(200) }),
      JSON.stringify({ pattern: cmd('message.send'), data: { ...valid, body: 'x'.repeat(70_000) }, id: 'too-large' }),
    ];
    for (const message of junk) await raw.publish(cmd('message.send'), message);
    await firstValueFrom(client.emit(cmd('message.send'), valid), { defaultValue: undefined });
    await sleep(SETTLE_MS);
    assert.deepEqual(replies.got.slice(mark), [], 'no replies');
    assert.deepEqual(await stored(roomId), []);
    for (const [i, inst] of [A, B].entries()) {
      assert.equal(inst.proc.exitCode, null, `${inst.name} is running`);
      assert.equal(
        await commandCount(inst, cmd('message.send'), 'ignored'),
        ignoredBefore[i] + junk.length + 1,
        `${inst.name} counted them`,
      );
    }
    const msg = await ok(client, cmd('message.send'), { roomId, senderId: 'bot', body: 'after the junk' });
    assert.equal(msg.seq, 1);
  });

  it('runs each request on exactly one instance, whichever claims it first', async (t) => {
    const roomId = 'cmd-once';
    const pattern = cmd('message.send');
    const count = async (outcome: string) => Promise.all([A, B].map((i) => commandCount(i, pattern, outcome)));
    const [handledBefore, elsewhereBefore] = [await count('handled'), await count('claimed_elsewhere')];
    const mark = replies.got.length;
    const n = 40;
    const msgs = await Promise.all(
      Array.from({ length: n }, (_, i) => ok(client, pattern, { roomId, senderId: 'bot', body: `once ${i}` })),
    );
    assert.deepEqual(
      msgs.map((m) => m.seq).sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.equal((await stored(roomId)).length, n, 'each request stored one message');
    await sleep(SETTLE_MS);
    const ids = replies.got.slice(mark).map((r) => r.packet.id);
    assert.equal(ids.length, n, 'one reply per request');
    assert.equal(new Set(ids).size, n);
    const [handled, elsewhere] = [await count('handled'), await count('claimed_elsewhere')];
    const handledBy = handled.map((h, i) => h - handledBefore[i]);
    t.diagnostic(`handled by A: ${handledBy[0]}, by B: ${handledBy[1]}`);
    assert.equal(handledBy[0] + handledBy[1], n, 'handled once in all');
    assert.equal(
      elsewhere[0] - elsewhereBefore[0] + (elsewhere[1] - elsewhereBefore[1]),
      n,
      'and seen claimed by the other instance once each',
    );
  });

  it('answers every request exactly once while an instance shuts down, and everything still works with it gone', async (t) => {
    const roomId = 'cmd-shutdown';
    const mark = replies.got.length;
    const stopping = B.stop();
    const answers: Promise<Answer>[] = [];
    for (let i = 0; i < 30; i++) {
      answers.push(call(client, cmd('message.send'), { roomId, senderId: 'bot', body: `during shutdown ${i}` }));
      await sleep(50);
    }
    await stopping;
    assert.deepEqual(await B.exited, { code: 0, signal: null });
    const settled = await Promise.all(answers);
    for (const a of settled) if (!a.ok) assert.equal(a.err.code, 'UNAVAILABLE', JSON.stringify(a.err));
    const okBodies = settled.flatMap((a) => (a.ok ? [a.data.body] : [])).sort();
    t.diagnostic(`${okBodies.length} ok, ${settled.length - okBodies.length} UNAVAILABLE`);
    assert.deepEqual((await stored(roomId)).sort(), okBodies, 'stored exactly what was acknowledged');
    await sleep(SETTLE_MS);
    const ids = replies.got.slice(mark).map((r) => r.packet.id);
    assert.equal(ids.length, 30, 'one reply per request');
    assert.equal(new Set(ids).size, 30);

    const room = 'cmd-after-shutdown';
    assert.equal((await ok(client, cmd('room.upsert'), { roomId: room, visibility: 'private' })).roomId, room);
    assert.deepEqual(await ok(client, cmd('member.add'), { roomId: room, userId: 'dave' }), { roomId: room, userId: 'dave' });
    assert.equal((await ok(client, cmd('message.send'), { roomId: room, senderId: 'dave', body: 'one instance left' })).seq, 1);
    assert.deepEqual(await ok(client, cmd('member.remove'), { roomId: room, userId: 'dave' }), { roomId: room, userId: 'dave' });
  });
});

describe('commands through a Redis outage, one instance with a Redis of its own', () => {
  const redis = new PrivateRedis();
  let db: TestDatabase;
  let inst: Instance;

  before(async () => {
    db = await createTestDatabase();
    // Learn a port, then leave Redis down: the instance starts without it.
    await redis.start();
    await redis.stop();
    inst = await startInstance('solo', { DATABASE_URL: db.url, REDIS_URL: redis.url, REDIS_PREFIX: PREFIX }, { waitReady: false });
  });

  after(async () => {
    await inst?.stop();
    await redis.stop();
    await db?.drop();
  });

  /** Sends with a fresh client until a reply comes (each attempt bounded), for at most `ms`. */
  async function answeredWithin(ms: number, data: unknown): Promise<any> {
    const end = Date.now() + ms;
    let last: unknown;
    while (Date.now() < end) {
      const client = await commandClient(redis.url).catch((err: unknown) => {
        last = err;
        return null;
      });
      if (client) {
        try {
          return await ok(client, cmd('message.send'), data);
        } catch (err) {
          last = err;
        } finally {
          await client.close();
        }
      }
      await sleep(250);
    }
    throw new Error(`no answer within ${ms} ms: ${String(last)}`);
  }

  const live = async () => (await fetch(`${inst.url}/health/live`, { signal: AbortSignal.timeout(2000) })).status;

  it('starts while Redis is down and answers commands once Redis is up', async () => {
    const end = Date.now() + 60_000;
    while (Date.now() < end && (await live().catch(() => 0)) !== 200) await sleep(200);
    assert.equal(await live(), 200);
    await redis.start();
    await waitUntilReady(inst);
    const msg = await answeredWithin(20_000, { roomId: 'outage', senderId: 'bot', body: 'first' });
    assert.equal(msg.seq, 1);
  });

  it('survives Redis going away, and subscribes again when it returns', async () => {
    await redis.stop();
    await sleep(1500);
    assert.equal(inst.proc.exitCode, null, 'still running');
    assert.equal(await live(), 200);
    await redis.start();
    const msg = await answeredWithin(20_000, { roomId: 'outage', senderId: 'bot', body: 'after the outage' });
    assert.equal(msg.seq, 2);
    assert.equal(inst.proc.exitCode, null);
    assert.doesNotMatch(inst.output(), /unhandled|uncaught/i);
  });
});
