import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventRelay } from './event-relay.js';
import type { Leadership, LeaderSession } from './leadership.js';
import type { OutboxRelay } from './outbox-relay.js';

/** Hands out sessions on demand and records what happened to them. */
class FakeLeadership implements Leadership {
  acquired = 0;
  released = 0;
  readonly sessions: AbortController[] = [];

  async acquire(stop: AbortSignal): Promise<LeaderSession | null> {
    if (stop.aborted) return null;
    this.acquired++;
    const lost = new AbortController();
    this.sessions.push(lost);
    return { lost: lost.signal, query: async () => [], release: async () => void this.released++ };
  }
}

/** A relay loop that runs until its term ends, or fails when told to. */
function fakeRelay(failFirst = false) {
  let runs = 0;
  const relay = {
    get runs() {
      return runs;
    },
    run: (_session: LeaderSession, signal: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        runs++;
        if (failFirst && runs === 1) return reject(new Error('database went away'));
        signal.addEventListener('abort', () => resolve(), { once: true });
      }),
  };
  return relay;
}

const until = async (cond: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), 'condition not reached in time');
};

describe('EventRelay', () => {
  it('relays while it leads, takes the leadership again after losing it, and stops on shutdown', async () => {
    const leadership = new FakeLeadership();
    const relay = fakeRelay();
    const events = new EventRelay({ leadership, relay: relay as unknown as OutboxRelay, webhooks: null, stream: null });
    events.onApplicationBootstrap();
    await until(() => events.isLeader && relay.runs === 1);
    leadership.sessions[0].abort();
    await until(() => leadership.released === 1 && relay.runs === 2);
    assert.equal(events.isLeader, true);
    await events.beforeApplicationShutdown();
    assert.equal(leadership.released, 2);
    assert.equal(events.isLeader, false);
  });

  it('ends the term on a failure, releases the session and leads again after a pause', async () => {
    const leadership = new FakeLeadership();
    const relay = fakeRelay(true);
    const events = new EventRelay({ leadership, relay: relay as unknown as OutboxRelay, webhooks: null, stream: null });
    events.onApplicationBootstrap();
    await until(() => relay.runs === 2);
    assert.equal(leadership.released, 1);
    await events.beforeApplicationShutdown();
  });

  it('does nothing without anywhere to relay to', async () => {
    const leadership = new FakeLeadership();
    const events = new EventRelay({ leadership, relay: null, webhooks: null, stream: null });
    events.onApplicationBootstrap();
    await events.beforeApplicationShutdown();
    assert.equal(leadership.acquired, 0);
  });
});
