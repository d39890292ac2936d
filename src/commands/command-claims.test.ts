import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandClaims, type ClaimStore } from './command-claims.js';

/** Redis's SET NX PX on one shared map: what every replica's client sees. */
class FakeRedis implements ClaimStore {
  readonly keys = new Map<string, { value: string; ttlMs: number }>();
  readonly calls: unknown[][] = [];

  async set(key: string, value: string, px: 'PX', ttlMs: number, nx: 'NX'): Promise<string | null> {
    this.calls.push([key, value, px, ttlMs, nx]);
    await new Promise((resolve) => setImmediate(resolve));
    if (this.keys.has(key)) return null;
    this.keys.set(key, { value, ttlMs });
    return 'OK';
  }
}

describe('CommandClaims', () => {
  it('lets exactly one of many replicas win a request id, however they interleave', async () => {
    const redis = new FakeRedis();
    const replicas = Array.from({ length: 5 }, (_, i) => new CommandClaims('chat', `host:${i}`));
    const wins = await Promise.all(replicas.map((r) => r.claim(redis, 'chat.message.send', 'req-1')));
    assert.equal(wins.filter(Boolean).length, 1);
    const winner = wins.indexOf(true);
    assert.deepEqual(redis.keys.get('chat:cmd:chat.message.send:req-1')?.value, `host:${winner}`, 'the key names the winner');
  });

  it('claims each id and each pattern separately, under the deployment’s prefix', async () => {
    const redis = new FakeRedis();
    const claims = new CommandClaims('tenant-a', 'me');
    assert.equal(await claims.claim(redis, 'chat.message.send', 'one'), true);
    assert.equal(await claims.claim(redis, 'chat.message.send', 'two'), true);
    assert.equal(await claims.claim(redis, 'chat.member.add', 'one'), true);
    assert.equal(await claims.claim(redis, 'chat.message.send', 'one'), false, 'a repeated id on the same pattern');
    assert.equal(
      await new CommandClaims('tenant-b', 'me').claim(redis, 'chat.message.send', 'one'),
      true,
      'another prefix is another deployment',
    );
    assert.deepEqual([...redis.keys.keys()].sort(), [
      'tenant-a:cmd:chat.member.add:one',
      'tenant-a:cmd:chat.message.send:one',
      'tenant-a:cmd:chat.message.send:two',
      'tenant-b:cmd:chat.message.send:one',
    ]);
  });

  it('uses one SET with NX and a short PX expiry', async () => {
    const redis = new FakeRedis();
    await new CommandClaims('chat', 'me', 30_000).claim(redis, 'chat.room.upsert', 'x');
    assert.deepEqual(redis.calls, [['chat:cmd:chat.room.upsert:x', 'me', 'PX', 30_000, 'NX']]);
  });

  it('rejects when Redis fails, so the caller neither runs nor answers the request', async () => {
    const failing: ClaimStore = { set: () => Promise.reject(new Error('Connection is closed.')) };
    await assert.rejects(new CommandClaims('chat', 'me').claim(failing, 'chat.message.send', 'a'), /Connection is closed/);
  });

  it('rejects when Redis does not answer in time', async () => {
    const hanging: ClaimStore = { set: () => new Promise(() => undefined) };
    const started = Date.now();
    await assert.rejects(new CommandClaims('chat', 'me', 30_000, 50).claim(hanging, 'chat.message.send', 'a'), /within 50 ms/);
    assert.ok(Date.now() - started < 1000);
  });
});
