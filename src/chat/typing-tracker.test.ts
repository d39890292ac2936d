import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TypingTracker } from './typing-tracker.js';

function tracker(ttlMs = 60_000) {
  const changes: string[] = [];
  const typing = new TypingTracker<object>((roomId, userId, on) => changes.push(`${roomId}:${userId}:${on}`), ttlMs);
  return { typing, changes };
}

describe('TypingTracker', () => {
  it('reports a start once, ignores renewals, and reports the stop', () => {
    const { typing, changes } = tracker();
    const conn = {};
    typing.start(conn, 'u', 'r');
    typing.start(conn, 'u', 'r');
    assert.equal(typing.isTyping(conn, 'r'), true);
    typing.stop(conn, 'r');
    typing.stop(conn, 'r');
    assert.equal(typing.isTyping(conn, 'r'), false);
    assert.deepEqual(changes, ['r:u:true', 'r:u:false']);
  });

  it('keeps a user typing while any of their connections is, and per room', () => {
    const { typing, changes } = tracker();
    const a = {};
    const b = {};
    typing.start(a, 'u', 'r');
    typing.start(b, 'u', 'r');
    typing.start(b, 'u', 'r2');
    typing.stop(a, 'r');
    assert.deepEqual(changes, ['r:u:true', 'r2:u:true']);
    typing.drop(b);
    assert.deepEqual(changes, ['r:u:true', 'r2:u:true', 'r:u:false', 'r2:u:false']);
  });

  it('expires a start without a stop after the ttl, and a renewal pushes the expiry back', async () => {
    const { typing, changes } = tracker(150);
    const conn = {};
    typing.start(conn, 'u', 'r');
    await sleep(100);
    typing.start(conn, 'u', 'r');
    await sleep(100);
    assert.deepEqual(changes, ['r:u:true'], 'renewed at 100 ms, so still typing at 200 ms');
    await sleep(120);
    assert.deepEqual(changes, ['r:u:true', 'r:u:false']);
    assert.equal(typing.isTyping(conn, 'r'), false);
  });

  it('ignores a stop or drop of a connection that is not typing', () => {
    const { typing, changes } = tracker();
    typing.stop({}, 'r');
    typing.drop({});
    assert.deepEqual(changes, []);
  });
});
