import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sharedReading } from './shared-reading.js';

describe('sharedReading', () => {
  it('runs one read for any number of concurrent callers', async () => {
    let reads = 0;
    let release!: (n: number) => void;
    const read = sharedReading(() => {
      reads += 1;
      return new Promise<number>((resolve) => (release = resolve));
    }, 5000);
    const pending = Array.from({ length: 300 }, () => read());
    release(7);
    assert.deepEqual(new Set(await Promise.all(pending)), new Set([7]));
    assert.equal(reads, 1);
  });

  it('serves the settled result until it is maxAgeMs old, then reads again', async () => {
    let clock = 0;
    let reads = 0;
    const read = sharedReading(
      async () => ++reads,
      5000,
      () => clock,
    );
    assert.equal(await read(), 1);
    clock = 4999;
    assert.equal(await read(), 1);
    clock = 5000;
    assert.equal(await read(), 2);
  });

  it('shares a failure like a result, and reads again after maxAgeMs', async () => {
    let clock = 0;
    let reads = 0;
    const read = sharedReading(
      async () => {
        reads += 1;
        if (reads === 1) throw new Error('database down');
        return reads;
      },
      1000,
      () => clock,
    );
    await assert.rejects(read(), /database down/);
    await assert.rejects(read(), /database down/);
    assert.equal(reads, 1);
    clock = 1000;
    assert.equal(await read(), 2);
  });
});
