import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShutdownGate } from './shutdown-gate.js';

describe('ShutdownGate', () => {
  it('serves requests until closing, while draining only flips readiness and handshakes', () => {
    const gate = new ShutdownGate();
    assert.equal(gate.draining, false);
    assert.equal(gate.enter(), true);
    gate.beginDraining();
    assert.equal(gate.draining, true);
    assert.equal(gate.enter(), true, 'existing connections are still served while draining');
    gate.beginClosing();
    assert.equal(gate.enter(), false, 'closing refuses new requests');
  });

  it('resolves whenIdle once the last request in flight leaves', async () => {
    const gate = new ShutdownGate();
    gate.enter();
    gate.enter();
    let idle = false;
    const waiting = gate.whenIdle(1000).then((v) => (idle = v));
    gate.leave();
    await Promise.resolve();
    assert.equal(idle, false);
    gate.leave();
    assert.equal(await waiting, true);
  });

  it('gives up waiting after the timeout', async () => {
    const gate = new ShutdownGate();
    gate.enter();
    assert.equal(await gate.whenIdle(20), false);
    assert.equal(await new ShutdownGate().whenIdle(20), true, 'idle at once when nothing is in flight');
  });
});
