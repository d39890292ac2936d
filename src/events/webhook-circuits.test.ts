import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UrlCircuits } from './webhook-circuits.js';

const A = 'https://a.example.com/hook';
const B = 'https://b.example.com/hook';

function circuits(policy = { perUrl: 2, failures: 3, cooldownMs: 1000 }) {
  const clock = { now: 0 };
  return { clock, c: new UrlCircuits(policy, () => clock.now) };
}

describe('UrlCircuits', () => {
  it('admits at most perUrl requests to one URL, independently of the others', () => {
    const { c } = circuits();
    assert.equal(c.admit(A), true);
    assert.equal(c.admit(A), true);
    assert.equal(c.admit(A), false, 'A is full');
    assert.deepEqual(c.blocked(), [A]);
    assert.equal(c.admit(B), true, 'B has its own share');
    c.settle(A, true);
    assert.deepEqual(c.blocked(), []);
    assert.equal(c.admit(A), true);
  });

  it('opens after the threshold of consecutive failures and admits nothing until the cool-down ends', () => {
    const { c, clock } = circuits();
    for (let i = 0; i < 2; i++) {
      c.admit(A);
      assert.equal(c.settle(A, false), null);
    }
    c.admit(A);
    assert.equal(c.settle(A, false), 'opened');
    assert.deepEqual(c.openUrls(), [A]);
    clock.now = 999;
    assert.equal(c.admit(A), false);
    assert.deepEqual(c.blocked(), [A]);
    clock.now = 1000;
    assert.deepEqual(c.blocked(), []);
  });

  it('a success between failures resets the count', () => {
    const { c } = circuits();
    for (const ok of [false, false, true, false, false]) {
      c.admit(A);
      assert.equal(c.settle(A, ok), null);
    }
    assert.deepEqual(c.openUrls(), []);
  });

  it('lets one probe through after the cool-down: a failure reopens for another cool-down, a success closes', () => {
    const { c, clock } = circuits({ perUrl: 4, failures: 1, cooldownMs: 1000 });
    c.admit(A);
    c.settle(A, false);
    clock.now = 1000;
    assert.equal(c.admit(A), true, 'the probe');
    assert.equal(c.admit(A), false, 'only one probe');
    assert.equal(c.settle(A, false), null, 'still open');
    clock.now = 1999;
    assert.equal(c.admit(A), false, 'a new cool-down from the failed probe');
    clock.now = 2000;
    assert.equal(c.admit(A), true);
    assert.equal(c.settle(A, true), 'closed');
    assert.deepEqual(c.openUrls(), []);
    for (let i = 0; i < 4; i++) assert.equal(c.admit(A), true, 'the full share again');
  });

  it('requests sent before the circuit opened do not extend it when they fail afterwards', () => {
    const { c, clock } = circuits({ perUrl: 3, failures: 1, cooldownMs: 1000 });
    c.admit(A);
    c.admit(A);
    assert.equal(c.settle(A, false), 'opened');
    clock.now = 900;
    assert.equal(c.settle(A, false), null);
    clock.now = 1000;
    assert.equal(c.admit(A), true, 'the probe goes at the first cool-down’s end');
  });
});
