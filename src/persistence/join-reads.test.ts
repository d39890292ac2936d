import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { JOIN_WAVE_LINGER_MS, JoinReads } from './join-reads.js';

/** A DataSource whose query records each statement's keys and answers "no such room" after `delayMs`. */
function fakeDb(delayMs: number): { db: DataSource; waves: string[][] } {
  const waves: string[][] = [];
  const db = {
    query: async (_sql: string, params: [string[], string[]]) => {
      waves.push(params[1]);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return [];
    },
  } as unknown as DataSource;
  return { db, waves };
}

const open = (joins: JoinReads, userId: string) => joins.open({ roomId: 'r', userId });

describe('JoinReads waves', () => {
  it('one client joining one room after another never waits for a wave to fill', async () => {
    const { db, waves } = fakeDb(0);
    const joins = new JoinReads(db);
    const began = performance.now();
    for (let i = 0; i < 8; i++) await open(joins, `u${i}`);
    const elapsed = performance.now() - began;
    assert.deepEqual(
      waves.map((w) => w.length),
      [1, 1, 1, 1, 1, 1, 1, 1],
    );
    // Lingering would take at least 8 x JOIN_WAVE_LINGER_MS; eight immediate turns take a few ms.
    assert.ok(elapsed < 4 * JOIN_WAVE_LINGER_MS, `8 sequential opens took ${elapsed.toFixed(1)} ms`);
  });

  it('joins that come while a wave is in flight, each in a turn of its own, share the next wave', async () => {
    const { db, waves } = fakeDb(5);
    const joins = new JoinReads(db);
    const pending = [open(joins, 'first')];
    await nextTurn(); // the first wave is now in flight
    for (let i = 0; i < 5; i++) {
      pending.push(open(joins, `later${i}`));
      await nextTurn();
    }
    assert.deepEqual(await Promise.all(pending), [null, null, null, null, null, null]);
    assert.deepEqual(waves, [['first'], ['later0', 'later1', 'later2', 'later3', 'later4']]);
  });

  it('after a wave of several, the next joins linger too, and a quiet spell ends the lingering', async () => {
    const { db, waves } = fakeDb(0);
    const joins = new JoinReads(db);
    await Promise.all([open(joins, 'a'), open(joins, 'b')]);
    const later = [open(joins, 'c')];
    await nextTurn();
    later.push(open(joins, 'd'));
    await Promise.all(later);
    await new Promise((resolve) => setTimeout(resolve, JOIN_WAVE_LINGER_MS + 5));
    await open(joins, 'alone');
    await open(joins, 'alone again');
    assert.deepEqual(waves, [['a', 'b'], ['c', 'd'], ['alone'], ['alone again']]);
  });
});
