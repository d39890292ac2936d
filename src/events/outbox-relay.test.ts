import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChatMetrics } from '../metrics/chat-metrics.js';
import type { ChatEventOut } from './chat-events-out.js';
import type { LeaderSession } from './leadership.js';
import { OutboxRelay, RELAY_BATCH } from './outbox-relay.js';
import type { StreamPublisher } from './stream-publisher.js';

interface Row {
  position: string;
  event_id: string;
  type: string;
  room_id: string;
  data: unknown;
}

/** An in-memory outbox behind the relay's SQL: SELECT reads, DELETE / the move removes by exact positions. */
class FakeOutbox implements LeaderSession {
  rows: Row[] = [];
  readonly removed: { positions: string[]; urls: string[] | null }[] = [];
  readonly lost = new AbortController().signal;
  failNext: Error | null = null;

  add(count: number): void {
    for (let i = 0; i < count; i++) {
      const position = String(this.rows.length + this.removed.flatMap((r) => r.positions).length + 1);
      this.rows.push({
        position,
        event_id: `e${position}`,
        type: 'member.added',
        room_id: 'r',
        data: { roomId: 'r', userId: `u${position}` },
      });
    }
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = null;
      throw err;
    }
    if (sql.startsWith('SELECT')) return this.rows.slice(0, params[0] as number) as T[];
    const positions = params[0] as string[];
    this.rows = this.rows.filter((r) => !positions.includes(r.position));
    this.removed.push({ positions, urls: sql.includes('webhook_deliveries') ? (params[1] as string[]) : null });
    return [];
  }

  async release(): Promise<void> {}
}

class FakeStream {
  readonly stream = 'events';
  readonly published: ChatEventOut[][] = [];
  failures = 0;
  async publish(events: ChatEventOut[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('Redis is down');
    }
    this.published.push(events);
  }
}

function metrics(): ChatMetrics & { published: number } {
  const m = { published: 0, eventsPublished: { inc: (n = 1) => (m.published += n) } };
  return m as unknown as ChatMetrics & { published: number };
}

/** The times of the outbox reads (after `beforeRead`, which may add events). */
function recordReads(outbox: FakeOutbox, beforeRead: () => Promise<void> = async () => undefined): number[] {
  const reads: number[] = [];
  const query = outbox.query.bind(outbox);
  outbox.query = async <T>(sql: string, params?: unknown[]): Promise<T[]> => {
    if (sql.startsWith('SELECT')) {
      await beforeRead();
      reads.push(Date.now());
    }
    return query<T>(sql, params);
  };
  return reads;
}

/** Runs the relay until `done()` holds (or 3 s), then stops it. */
async function relayUntil(relay: OutboxRelay, session: LeaderSession, done: () => boolean): Promise<void> {
  const stop = new AbortController();
  const running = relay.run(session, stop.signal);
  const deadline = Date.now() + 3000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  stop.abort();
  await running;
  assert.ok(done(), 'the relay did not get there in time');
}

describe('OutboxRelay', () => {
  it('publishes in position order, in batches, and removes exactly what it published', async () => {
    const outbox = new FakeOutbox();
    const stream = new FakeStream();
    const m = metrics();
    outbox.add(RELAY_BATCH + 20);
    await relayUntil(new OutboxRelay(stream as unknown as StreamPublisher, null, m, 5), outbox, () => outbox.rows.length === 0);
    assert.deepEqual(
      stream.published.map((b) => b.length),
      [RELAY_BATCH, 20],
    );
    const ids = stream.published.flat().map((e) => e.id);
    assert.deepEqual(
      ids,
      Array.from({ length: RELAY_BATCH + 20 }, (_, i) => `e${i + 1}`),
    );
    assert.deepEqual(
      outbox.removed.map((r) => r.positions.length),
      [RELAY_BATCH, 20],
    );
    assert.deepEqual(stream.published[1][0], {
      id: `e${RELAY_BATCH + 1}`,
      type: 'member.added',
      roomId: 'r',
      data: { roomId: 'r', userId: `u${RELAY_BATCH + 1}` },
    });
    assert.equal(m.published, RELAY_BATCH + 20);
  });

  it('waits the poll interval after a partial batch, so events arriving meanwhile go out together', async () => {
    const outbox = new FakeOutbox();
    const stream = new FakeStream();
    const reads = recordReads(outbox, async () => {
      // Like a real query, a read lets timers run.
      await new Promise((resolve) => setImmediate(resolve));
      // A new event arrives on every read, as under a steady trickle of sends.
      outbox.add(1);
    });
    await relayUntil(new OutboxRelay(stream as unknown as StreamPublisher, null, metrics(), 40), outbox, () => reads.length >= 5);
    const gaps = reads.slice(1).map((t, i) => t - reads[i]);
    assert.ok(
      gaps.every((g) => g >= 35),
      `reads ${gaps} ms apart`,
    );
  });

  it('polls an empty outbox ever more slowly, up to the idle poll, and quickly again once events come', async () => {
    const outbox = new FakeOutbox();
    const stream = new FakeStream();
    const reads = recordReads(outbox);
    const start = Date.now();
    let added = 0;
    await relayUntil(new OutboxRelay(stream as unknown as StreamPublisher, null, metrics(), 5, 80), outbox, () => {
      // After 700 ms of quiet, one event: it is relayed within one idle poll.
      if (added === 0 && Date.now() - start > 700) outbox.add((added = 1));
      return added === 1 && outbox.rows.length === 0 && reads.length > 0 && Date.now() - reads.at(-1)! > 30;
    });
    const quiet = reads.filter((t) => t - start < 700);
    const gaps = quiet.slice(1).map((t, i) => t - quiet[i]);
    // 5, 10, 20, 40, then 80 ms: about 12 reads in 700 ms, where a steady 5 ms poll makes 140.
    assert.ok(quiet.length <= 16, `${quiet.length} reads of an empty outbox in 700 ms (gaps ${gaps})`);
    assert.ok(
      gaps.slice(-3).every((g) => g >= 70),
      `the last gaps are the idle poll (gaps ${gaps})`,
    );
    assert.equal(stream.published.flat().length, 1, 'the event after the quiet spell is published');
    const after = reads.filter((t) => t > quiet.at(-1)!);
    const firstGaps = after.slice(1, 3).map((t, i) => t - after[i]);
    assert.ok(
      firstGaps.every((g) => g < 40),
      `polls quick again after events (gaps ${firstGaps})`,
    );
  });

  it('keeps a batch in the outbox while the stream refuses it, then publishes the same events', async () => {
    const outbox = new FakeOutbox();
    const stream = new FakeStream();
    outbox.add(3);
    stream.failures = 2;
    await relayUntil(new OutboxRelay(stream as unknown as StreamPublisher, null, metrics(), 5), outbox, () => outbox.rows.length === 0);
    assert.equal(stream.published.length, 1);
    assert.deepEqual(
      stream.published[0].map((e) => e.id),
      ['e1', 'e2', 'e3'],
    );
    assert.equal(outbox.removed.length, 1, 'removed once, after the publish that succeeded');
  });

  it('moves events to the webhook queue with the configured URLs, with or without a stream', async () => {
    for (const stream of [new FakeStream(), null]) {
      const outbox = new FakeOutbox();
      outbox.add(2);
      const relay = new OutboxRelay(
        stream as unknown as StreamPublisher | null,
        ['http://a.test/hook', 'http://b.test/hook'],
        metrics(),
        5,
      );
      await relayUntil(relay, outbox, () => outbox.rows.length === 0);
      assert.deepEqual(outbox.removed, [{ positions: ['1', '2'], urls: ['http://a.test/hook', 'http://b.test/hook'] }]);
    }
  });

  it('rejects on a database failure, leaving the outbox as it was', async () => {
    const outbox = new FakeOutbox();
    outbox.add(2);
    outbox.failNext = new Error('connection terminated');
    const relay = new OutboxRelay(new FakeStream() as unknown as StreamPublisher, null, metrics(), 5);
    await assert.rejects(relay.run(outbox, new AbortController().signal), /connection terminated/);
    assert.equal(outbox.rows.length, 2);
  });
});
