import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Logger, type LoggerService } from '@nestjs/common';
import { HandshakeGuard } from './handshake-guard.js';

const warnings: unknown[] = [];
const recorder: LoggerService = { log: () => undefined, warn: (m: unknown) => void warnings.push(m), error: () => undefined };

const from = (ip: string) => ({ headers: {}, socket: { remoteAddress: ip } }) as unknown as IncomingMessage;

describe('HandshakeGuard', () => {
  before(() => Logger.overrideLogger(recorder));
  after(() => Logger.overrideLogger(false));

  it('lets a burst through per address, then refuses with 429 RATE_LIMITED until tokens refill', () => {
    let now = 0;
    const guard = new HandshakeGuard({ connectTimeoutMs: 1000, maxUnauthenticated: 100, perSecond: 2, burst: 3 }, () => now);
    assert.deepEqual(
      [1, 2, 3].map(() => guard.admitNew(from('10.0.0.1'), 'ws')),
      [null, null, null],
    );
    const refusal = guard.admitNew(from('10.0.0.1'), 'socket.io');
    assert.deepEqual([refusal?.status, refusal?.code], [429, 'RATE_LIMITED']);
    assert.equal(guard.admitNew(from('10.0.0.2'), 'ws'), null, 'another address has its own bucket');
    now = 500;
    assert.equal(guard.admitNew(from('10.0.0.1'), 'ws'), null, 'one token back after 500 ms at 2/s');
    assert.equal(guard.admitNew(from('10.0.0.1'), 'ws')?.status, 429);
  });

  it('warns once per address per 10 s, however many refusals', () => {
    let now = 0;
    const guard = new HandshakeGuard({ connectTimeoutMs: 1000, maxUnauthenticated: 100, perSecond: 1, burst: 1 }, () => now);
    warnings.length = 0;
    for (let i = 0; i < 1000; i++) guard.admitNew(from('10.0.0.9'), 'ws');
    assert.equal(warnings.length, 1);
    now = 10_000;
    guard.admitNew(from('10.0.0.9'), 'ws');
    guard.admitNew(from('10.0.0.9'), 'ws');
    assert.equal(warnings.length, 2);
  });

  it('caps open unauthenticated engine.io sessions with 503; settled and closing ones do not count; ws upgrades are not capped', () => {
    const guard = new HandshakeGuard({ connectTimeoutMs: 1000, maxUnauthenticated: 2, perSecond: 1000, burst: 1000 });
    const a = { readyState: 'open' };
    const b = { readyState: 'open' };
    guard.opened(a);
    guard.opened(b);
    assert.deepEqual(
      [guard.admitNew(from('10.0.1.1'), 'socket.io')?.status, guard.admitNew(from('10.0.1.1'), 'socket.io')?.code],
      [503, 'UNAVAILABLE'],
    );
    assert.equal(guard.admitNew(from('10.0.1.1'), 'ws'), null);
    guard.settled(a);
    assert.equal(guard.admitNew(from('10.0.1.1'), 'socket.io'), null, 'an authenticated session frees its place');
    guard.opened(a);
    a.readyState = 'closing';
    assert.equal(guard.admitNew(from('10.0.1.1'), 'socket.io'), null, 'a closing session frees its place');
  });
});
