import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { throwError } from 'rxjs';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { ClaimingRedisServer, REFUSAL_DELAY_MS } from './claiming-redis.server.js';

Logger.overrideLogger(false);

const PATTERN = 'member.add';
/** The deployment's own channel for PATTERN (its prefix is `unit`). */
const CHANNEL = `unit.${PATTERN}`;
const REPLY_CHANNEL = `${CHANNEL}.reply`;

/** The shared Redis every replica's publisher talks to: SET NX claims and published replies. */
class FakeRedis {
  readonly keys = new Map<string, string>();
  readonly replies: { channel: string; packet: any }[] = [];
  failClaims = false;

  async set(key: string, value: string): Promise<string | null> {
    await new Promise((resolve) => setImmediate(resolve));
    if (this.failClaims) throw new Error('Connection is closed.');
    if (this.keys.has(key)) return null;
    this.keys.set(key, value);
    return 'OK';
  }

  async publish(channel: string, message: string): Promise<number> {
    this.replies.push({ channel, packet: JSON.parse(message) });
    return 1;
  }
}

interface Replica {
  server: ClaimingRedisServer;
  gate: ShutdownGate;
  calls: unknown[];
}

/** A replica with one handler for PATTERN; `handler` defaults to echoing the data back. */
function replica(handler: (data: unknown) => unknown = (data) => Promise.resolve({ echoed: data }), barePatterns = false): Replica {
  const gate = new ShutdownGate();
  const server = new ClaimingRedisServer({ url: 'redis://127.0.0.1:1', prefix: 'unit', barePatterns, gate, maxPayloadBytes: 64 * 1024 });
  const calls: unknown[] = [];
  server.addHandler(PATTERN, async (data: unknown) => {
    calls.push(data);
    return handler(data);
  });
  return { server, gate, calls };
}

const request = (id: unknown, data: unknown = { roomId: 'r', userId: 'u' }) => JSON.stringify({ pattern: PATTERN, data, id });

function deliver(r: Replica, redis: FakeRedis, raw: string, channel = CHANNEL): Promise<void> {
  return r.server.handleMessage(channel, raw, redis as unknown as Redis, channel);
}

/** The channels a replica subscribes to when it starts. */
function subscribedChannels(r: Replica): string[] {
  const channels: string[] = [];
  const sub = { on: () => sub, subscribe: (...c: string[]) => (channels.push(...c), Promise.resolve(c.length)) };
  r.server.bindEvents(sub as unknown as Redis, new FakeRedis() as unknown as Redis);
  return channels;
}

describe('ClaimingRedisServer', () => {
  it('runs a request on exactly one of the replicas that receive it, and replies once on <pattern>.reply', async () => {
    const redis = new FakeRedis();
    const replicas = [replica(), replica(), replica()];
    await Promise.all(replicas.map((r) => deliver(r, redis, request('req-1'))));
    await Promise.all(replicas.map((r) => r.gate.whenIdle(1000)));
    assert.equal(
      replicas.reduce((n, r) => n + r.calls.length, 0),
      1,
      'handler runs',
    );
    assert.deepEqual(redis.replies, [
      { channel: REPLY_CHANNEL, packet: { response: { echoed: { roomId: 'r', userId: 'u' } }, isDisposed: true, id: 'req-1' } },
    ]);
    assert.deepEqual([...redis.keys.keys()], [`unit:cmd:${CHANNEL}:req-1`]);
  });

  it('replies with what the exception filter throws as { id, err, isDisposed: true }', async () => {
    const redis = new FakeRedis();
    const error = { code: 'NOT_FOUND', message: 'room r does not exist' };
    const r = replica(() => throwError(() => error));
    await deliver(r, redis, request('req-2'));
    assert.equal(await r.gate.whenIdle(1000), true);
    assert.deepEqual(redis.replies, [{ channel: REPLY_CHANNEL, packet: { err: error, isDisposed: true, id: 'req-2' } }]);
  });

  it('ignores what it cannot claim and answer, without touching Redis or the handler', async () => {
    const redis = new FakeRedis();
    const r = replica();
    for (const raw of ['not json', '[]', JSON.stringify({ pattern: PATTERN, data: {} }), request(42), request({ nested: 'id' })]) {
      await deliver(r, redis, raw);
    }
    assert.deepEqual([r.calls, redis.replies, [...redis.keys.keys()]], [[], [], []]);
    assert.equal(await r.gate.whenIdle(10), true, 'nothing left in flight');
  });

  it('leaves a request unanswered when the claim fails, rather than risk running it twice', async () => {
    const redis = new FakeRedis();
    redis.failClaims = true;
    const r = replica();
    await deliver(r, redis, request('req-3'));
    assert.deepEqual([r.calls, redis.replies], [[], []]);
    assert.equal(await r.gate.whenIdle(10), true);
  });

  it('keeps a request in flight for the shutdown gate until its reply is published', async () => {
    const redis = new FakeRedis();
    let finish: (v: unknown) => void = () => undefined;
    const r = replica(() => new Promise((resolve) => (finish = resolve)));
    const delivered = deliver(r, redis, request('req-4'));
    for (let i = 0; i < 100 && r.calls.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(r.calls.length, 1, 'the handler is running');
    r.gate.beginClosing();
    assert.equal(await r.gate.whenIdle(50), false, 'still running');
    finish({ done: true });
    await delivered;
    assert.equal(await r.gate.whenIdle(1000), true);
    assert.deepEqual(redis.replies, [{ channel: REPLY_CHANNEL, packet: { response: { done: true }, isDisposed: true, id: 'req-4' } }]);
  });

  it('while closing, leaves new requests to live replicas, and answers UNAVAILABLE only when none takes them', async () => {
    const redis = new FakeRedis();
    const closing = replica();
    closing.gate.beginClosing();
    const live = replica();
    const started = Date.now();
    await Promise.all([deliver(closing, redis, request('req-5')), deliver(live, redis, request('req-5'))]);
    assert.ok(Date.now() - started >= REFUSAL_DELAY_MS - 5, 'the closing replica waited before claiming');
    await live.gate.whenIdle(1000);
    assert.deepEqual([closing.calls.length, live.calls.length], [0, 1]);
    assert.deepEqual(
      redis.replies.map((x) => x.packet.response),
      [{ echoed: { roomId: 'r', userId: 'u' } }],
    );

    redis.replies.length = 0;
    await deliver(closing, redis, request('req-6'));
    assert.equal(closing.calls.length, 0);
    assert.deepEqual(redis.replies, [
      {
        channel: REPLY_CHANNEL,
        packet: { err: { code: 'UNAVAILABLE', message: 'server is shutting down, retry' }, isDisposed: true, id: 'req-6' },
      },
    ]);
  });

  it("subscribes to and runs only its own deployment's channels, <prefix>.<command>", async () => {
    const r = replica();
    assert.deepEqual(subscribedChannels(r), ['unit.member.add']);
    const redis = new FakeRedis();
    // The contract's bare channel, another deployment's, and a bare handler name.
    for (const channel of ['chat.member.add', 'other.member.add', 'member.add', 'unitmember.add']) {
      await deliver(r, redis, request(`req-${channel}`), channel);
    }
    assert.deepEqual([r.calls, redis.replies, [...redis.keys.keys()]], [[], [], []]);
  });

  it('serves the bare chat.<command> channels as well only with barePatterns, replying on the channel asked', async () => {
    const r = replica(undefined, true);
    assert.deepEqual(subscribedChannels(r), ['unit.member.add', 'chat.member.add']);
    const redis = new FakeRedis();
    await deliver(r, redis, request('req-bare'), 'chat.member.add');
    await r.gate.whenIdle(1000);
    assert.equal(r.calls.length, 1);
    assert.deepEqual(
      redis.replies.map((x) => x.channel),
      ['chat.member.add.reply'],
    );
  });
});
