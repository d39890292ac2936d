import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pause, retryDelayMs } from './retry-delay.js';

describe('retryDelayMs', () => {
  it('starts at the base and doubles with each failure', () => {
    const mid = () => 0.5;
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => retryDelayMs(n, 100, 1_000_000, mid)),
      [100, 200, 400, 800, 1600],
    );
  });

  it('never exceeds the cap (plus jitter), even after very many failures', () => {
    assert.equal(
      retryDelayMs(1000, 100, 5000, () => 0.5),
      5000,
    );
    assert.equal(
      retryDelayMs(1000, 100, 5000, () => 1),
      5500,
    );
  });

  it('jitters by ±10%, so each delay still exceeds the previous one by far below the cap', () => {
    assert.equal(
      retryDelayMs(1, 1000, 1e9, () => 0),
      900,
    );
    assert.equal(
      retryDelayMs(1, 1000, 1e9, () => 1),
      1100,
    );
    for (let n = 1; n < 10; n++) {
      assert.ok(retryDelayMs(n + 1, 1000, 1e9, () => 0) >= 1.6 * retryDelayMs(n, 1000, 1e9, () => 1), `failure ${n + 1}`);
    }
  });
});

describe('pause', () => {
  it('resolves after the delay, or at once on abort', async () => {
    const started = Date.now();
    await pause(30, new AbortController().signal);
    assert.ok(Date.now() - started >= 25);
    const stop = new AbortController();
    const waiting = pause(60_000, stop.signal);
    stop.abort();
    await waiting;
    await pause(60_000, stop.signal);
  });
});
