import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppConfig } from '../../config/config.schema.js';
import type { ChatConnection } from '../chat-connection.js';
import type { UserMessageCounter } from '../../chat/chat.ports.js';
import { RequestLimiter, type LimitDecision } from './request-limiter.js';

const LIMITS: AppConfig['rateLimits'] = {
  perConnection: { perSecond: 10, burst: 5 },
  perUser: { messages: 3, windowMs: 60_000 },
  disconnectAfter: 3,
  roomCreations: { perUser: 20, windowMs: 60_000 },
};

/** Counts per user in one window that ends `windowLeftMs` from the time of each hit. */
class FakeCounter implements UserMessageCounter {
  readonly hits: [string, number][] = [];
  private readonly counts = new Map<string, number>();
  constructor(private readonly windowLeftMs = 30_000) {}

  hit(userId: string, windowMs: number): Promise<{ count: number; resetAt: number }> {
    this.hits.push([userId, windowMs]);
    const count = (this.counts.get(userId) ?? 0) + 1;
    this.counts.set(userId, count);
    return Promise.resolve({ count, resetAt: Date.now() + this.windowLeftMs });
  }
}

function connection(userId = 'alice'): ChatConnection {
  return { id: `conn-${userId}-${Math.random()}`, user: { userId, name: null, expiresAt: Infinity } } as unknown as ChatConnection;
}

const T0 = 1_700_000_000_000;

async function checkTimes(
  limiter: RequestLimiter,
  conn: ChatConnection,
  n: number,
  userMessage = false,
  now = T0,
): Promise<LimitDecision[]> {
  const out: LimitDecision[] = [];
  for (let i = 0; i < n; i++) out.push(await limiter.check(conn, userMessage, now));
  return out;
}

function refused(d: LimitDecision): Extract<LimitDecision, { allowed: false }> {
  assert.equal(d.allowed, false, 'expected a refusal');
  return d as Extract<LimitDecision, { allowed: false }>;
}

describe('RequestLimiter', () => {
  describe('per connection (token bucket)', () => {
    it('allows a burst of RATE_LIMIT_BURST requests at once and refuses the next', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const conn = connection();
      const burst = await checkTimes(limiter, conn, 5);
      assert.deepEqual(burst, Array(5).fill({ allowed: true }));
      refused(await limiter.check(conn, false, T0));
    });

    it('says when the next token arrives in retryAfterMs', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const conn = connection();
      await checkTimes(limiter, conn, 5);
      assert.equal(refused(await limiter.check(conn, false, T0)).retryAfterMs, 100, 'a whole token at 10/s');
      assert.equal(refused(await limiter.check(conn, false, T0 + 40)).retryAfterMs, 60, 'part of a token refilled');
      assert.equal(refused(await limiter.check(conn, false, T0 + 90)).retryAfterMs, 10);
      const almost = refused(await limiter.check(conn, false, T0 + 99.5)).retryAfterMs;
      assert.ok(almost >= 1 && almost <= 2, `a fraction of a millisecond is rounded up, never 0: ${almost}`);
    });

    it('refills at RATE_LIMIT_PER_SECOND', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const conn = connection();
      await checkTimes(limiter, conn, 5);
      refused(await limiter.check(conn, false, T0 + 50));
      assert.deepEqual(await limiter.check(conn, false, T0 + 100), { allowed: true }, 'one token after 100 ms');
      refused(await limiter.check(conn, false, T0 + 100));
      const afterHalfASecond = await checkTimes(limiter, conn, 6, false, T0 + 600);
      assert.deepEqual(
        afterHalfASecond.map((d) => d.allowed),
        [true, true, true, true, true, false],
        '5 tokens after 500 ms more',
      );
    });

    it('never holds more than the burst, however long the connection was idle', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const conn = connection();
      await limiter.check(conn, false, T0);
      const later = await checkTimes(limiter, conn, 6, false, T0 + 3_600_000);
      assert.deepEqual(
        later.map((d) => d.allowed),
        [true, true, true, true, true, false],
      );
    });

    it('keeps a bucket per connection', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const first = connection('alice');
      const second = connection('alice');
      await checkTimes(limiter, first, 5);
      refused(await limiter.check(first, false, T0));
      assert.deepEqual(await limiter.check(second, false, T0), { allowed: true }, 'another connection of the same user has its own bucket');
    });
  });

  describe('per user (message.send window)', () => {
    it("counts a user's messages only, with the user id and the configured window", async () => {
      const counter = new FakeCounter();
      const limiter = new RequestLimiter(LIMITS, counter);
      const conn = connection('alice');
      for (const userMessage of [false, false, false, false, true]) {
        assert.deepEqual(await limiter.check(conn, userMessage, T0), { allowed: true }, String(userMessage));
      }
      assert.deepEqual(counter.hits, [['alice', 60_000]]);
    });

    it('refuses message.send past the window with retryAfterMs until the window ends', async () => {
      const counter = new FakeCounter(30_000);
      const limiter = new RequestLimiter({ ...LIMITS, perConnection: { perSecond: 10, burst: 100 } }, counter);
      const conn = connection('alice');
      const sends = await checkTimes(limiter, conn, 3, true);
      assert.deepEqual(sends, Array(3).fill({ allowed: true }));
      const refusal = refused(await limiter.check(conn, true, T0));
      assert.ok(refusal.retryAfterMs > 29_000 && refusal.retryAfterMs <= 30_000, `retryAfterMs ${refusal.retryAfterMs}`);
    });

    it('still allows other requests when the user exhausted the message window', async () => {
      const limiter = new RequestLimiter({ ...LIMITS, perConnection: { perSecond: 10, burst: 100 } }, new FakeCounter());
      const conn = connection('alice');
      await checkTimes(limiter, conn, 3, true);
      refused(await limiter.check(conn, true, T0));
      assert.deepEqual(await limiter.check(conn, false, T0), { allowed: true });
    });

    it('shares the window between connections of one user, not between users', async () => {
      const limiter = new RequestLimiter({ ...LIMITS, perConnection: { perSecond: 10, burst: 100 } }, new FakeCounter());
      const [a1, a2, bob] = [connection('alice'), connection('alice'), connection('bob')];
      await checkTimes(limiter, a1, 3, true);
      refused(await limiter.check(a2, true, T0));
      assert.deepEqual(await limiter.check(bob, true, T0), { allowed: true });
    });

    it('does not count a message.send the connection bucket already refused', async () => {
      const counter = new FakeCounter();
      const limiter = new RequestLimiter(LIMITS, counter);
      const conn = connection('alice');
      await checkTimes(limiter, conn, 5, false);
      refused(await limiter.check(conn, true, T0));
      assert.deepEqual(counter.hits, []);
    });
  });

  describe('disconnecting abusers', () => {
    it('asks to disconnect at RATE_LIMIT_DISCONNECT_AFTER refusals in a row, not before', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const conn = connection();
      await checkTimes(limiter, conn, 5);
      const refusals = (await checkTimes(limiter, conn, 4)).map((d) => refused(d).disconnect);
      assert.deepEqual(refusals, [false, false, true, true]);
    });

    it('starts counting again after an allowed request', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const conn = connection();
      await checkTimes(limiter, conn, 5);
      assert.deepEqual(
        (await checkTimes(limiter, conn, 2)).map((d) => refused(d).disconnect),
        [false, false],
      );
      assert.deepEqual(await limiter.check(conn, false, T0 + 100), { allowed: true });
      assert.deepEqual(
        (await checkTimes(limiter, conn, 3, false, T0 + 100)).map((d) => refused(d).disconnect),
        [false, false, true],
      );
    });

    it('counts per-user window refusals in the same row', async () => {
      const limiter = new RequestLimiter({ ...LIMITS, perConnection: { perSecond: 10, burst: 100 } }, new FakeCounter());
      const conn = connection();
      await checkTimes(limiter, conn, 3, true);
      assert.deepEqual(
        (await checkTimes(limiter, conn, 3, true)).map((d) => refused(d).disconnect),
        [false, false, true],
      );
    });

    it('counts refusals per connection', async () => {
      const limiter = new RequestLimiter(LIMITS, new FakeCounter());
      const [first, second] = [connection(), connection()];
      await checkTimes(limiter, first, 5 + 2);
      await checkTimes(limiter, second, 5);
      assert.equal(refused(await limiter.check(second, false, T0)).disconnect, false, "the other connection's refusals do not count");
      assert.equal(refused(await limiter.check(first, false, T0)).disconnect, true);
    });
  });
});
