// The client's per-room modSeq position: what it rejoins with (sinceModSeq) after a reconnect.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModSeqTracker } from '../client/src/mod-seq-tracker.js';

describe('ModSeqTracker', () => {
  it('moves only over changes seen without a gap, whatever order they came in', () => {
    const t = new ModSeqTracker();
    t.see(7); // before the first join answered: held
    assert.equal(t.upTo, null);
    t.start(5);
    assert.deepEqual([t.upTo, t.hasGap], [5, true]);
    t.see(6);
    assert.deepEqual([t.upTo, t.hasGap], [7, false]);
    t.see(9);
    t.see(4);
    assert.deepEqual([t.upTo, t.hasGap], [7, true]);
    t.start(100); // a second start (a rejoin) does not move it
    assert.equal(t.upTo, 7);
  });

  it('jumps to what a page of message.changes covered and drains what was held beyond it', () => {
    const t = new ModSeqTracker();
    t.start(0);
    for (const v of [12, 13, 15]) t.see(v);
    t.advanceTo(11);
    assert.deepEqual([t.upTo, t.hasGap], [13, true]);
    t.advanceTo(20);
    assert.deepEqual([t.upTo, t.hasGap], [20, false]);
    t.advanceTo(3);
    assert.equal(t.upTo, 20);
  });
});
