import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Logger, type LoggerService } from '@nestjs/common';
import type { Identity } from '../auth/identity.js';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { Admission, Refusal } from './admission.js';
import { FakeConnection } from './fake-connection.test-support.js';
import { ConnectionSlots, LocalConnectionSlots } from '../presence/connection-slots.js';
import { LocalConnections } from './local-connections.js';
import { OriginPolicy } from './origin-policy.js';

const SECRET_TOKEN = 'good-alice-s3cr3t';
const HOST = '127.0.0.1:3000';

/** Records what Nest's Logger is asked to print, so tests can check what a refusal logs. */
const logged: unknown[][] = [];
const recorder: LoggerService = {
  log: (...args: unknown[]) => void logged.push(args),
  warn: (...args: unknown[]) => void logged.push(args),
  error: (...args: unknown[]) => void logged.push(args),
  debug: () => undefined,
  verbose: () => undefined,
};

function request(headers: Record<string, string> = {}): IncomingMessage {
  return { headers: { host: HOST, ...headers }, socket: { remoteAddress: '10.1.2.3' } } as unknown as IncomingMessage;
}

/** Fake token check: 'good-<user>[-anything]' is <user>; anything else is refused. */
const authenticated: unknown[] = [];
function authenticate(token: unknown): Promise<Identity> {
  authenticated.push(token);
  const match = typeof token === 'string' ? /^good-([a-z]+)/.exec(token) : null;
  if (match) return Promise.resolve({ userId: match[1], name: null, expiresAt: Date.now() + 3600e3 });
  return Promise.reject(new Error('invalid token'));
}

interface Setup {
  draining?: boolean;
  origins?: OriginPolicy;
  maxConnectionsPerUser?: number;
  /** Another count than this instance's connections (with Redis: every instance's). */
  slots?: ConnectionSlots;
}

function admission(setup: Setup = {}): { admission: Admission; connections: LocalConnections } {
  const gate = new ShutdownGate();
  if (setup.draining) gate.beginDraining();
  const connections = new LocalConnections();
  const a = new Admission({
    origins: setup.origins ?? new OriginPolicy(['https://app.example.com'], false),
    gate,
    slots: setup.slots ?? new LocalConnectionSlots(connections),
    maxConnectionsPerUser: setup.maxConnectionsPerUser ?? 2,
    authenticate,
  });
  return { admission: a, connections };
}

async function refusalOf(promise: Promise<unknown>): Promise<Refusal> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Refusal, `expected a Refusal, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the handshake to be refused');
}

describe('Admission', () => {
  before(() => Logger.overrideLogger(recorder));
  after(() => Logger.overrideLogger(false));

  describe('precheck', () => {
    it('lets a handshake from an allowed origin, or without Origin, go on', () => {
      const { admission: a } = admission();
      assert.equal(a.precheck(request({ origin: 'https://app.example.com' }), 'ws'), null);
      assert.equal(a.precheck(request(), 'socket.io'), null);
      assert.equal(a.precheck(request({ origin: `http://${HOST}` }), 'ws'), null, 'same origin');
    });

    it('refuses a foreign origin with 403 FORBIDDEN', () => {
      const { admission: a } = admission();
      for (const transport of ['ws', 'socket.io'] as const) {
        const refusal = a.precheck(request({ origin: 'https://evil.example' }), transport);
        assert.ok(refusal instanceof Refusal);
        assert.equal(refusal.status, 403);
        assert.equal(refusal.code, 'FORBIDDEN');
      }
    });

    it('refuses with 503 UNAVAILABLE while draining, before looking at the origin', () => {
      const { admission: a } = admission({ draining: true });
      for (const headers of [{ origin: 'https://evil.example' }, { origin: 'https://app.example.com' }, {}] as Record<string, string>[]) {
        const refusal = a.precheck(request(headers), 'ws');
        assert.ok(refusal instanceof Refusal);
        assert.equal(refusal.status, 503, JSON.stringify(headers));
        assert.equal(refusal.code, 'UNAVAILABLE');
      }
    });

    it('does not ask for the token', () => {
      authenticated.length = 0;
      const { admission: a } = admission();
      a.precheck(request({ origin: 'https://evil.example' }), 'ws');
      a.precheck(request(), 'ws');
      assert.deepEqual(authenticated, []);
    });

    it('logs a refusal with the origin and address', () => {
      logged.length = 0;
      const { admission: a } = admission();
      a.precheck(request({ origin: 'https://evil.example', 'x-forwarded-for': '203.0.113.9' }), 'socket.io');
      const text = JSON.stringify(logged);
      assert.match(text, /evil\.example/);
      assert.match(text, /10\.1\.2\.3/);
      assert.match(text, /203\.0\.113\.9/);
      assert.match(text, /FORBIDDEN/);
    });
  });

  describe('admit', () => {
    it("resolves the token's identity below the connection cap", async () => {
      const { admission: a } = admission();
      const user = await a.admit(request(), 'ws', SECRET_TOKEN);
      assert.equal(user.userId, 'alice');
    });

    it('hands the token to authenticate as given', async () => {
      authenticated.length = 0;
      const { admission: a } = admission();
      await a.admit(request(), 'socket.io', 'good-bob');
      await refusalOf(a.admit(request(), 'socket.io', undefined));
      await refusalOf(a.admit(request(), 'socket.io', 42));
      assert.deepEqual(authenticated, ['good-bob', undefined, 42]);
    });

    for (const [label, token] of [
      ['an invalid token', 'bad-alice'],
      ['no token', undefined],
      ['a token that is not a string', { token: 'good-alice' }],
    ] as const) {
      it(`refuses ${label} with 401 UNAUTHORIZED`, async () => {
        const { admission: a } = admission();
        const refusal = await refusalOf(a.admit(request(), 'ws', token));
        assert.equal(refusal.status, 401);
        assert.equal(refusal.code, 'UNAUTHORIZED');
      });
    }

    it('refuses with 429 LIMIT_EXCEEDED once the user has maxConnectionsPerUser open connections', async () => {
      const { admission: a, connections } = admission({ maxConnectionsPerUser: 2 });
      connections.add(new FakeConnection('alice'));
      assert.equal((await a.admit(request(), 'ws', SECRET_TOKEN)).userId, 'alice', 'one below the cap');
      connections.add(new FakeConnection('alice'));
      const refusal = await refusalOf(a.admit(request(), 'ws', SECRET_TOKEN));
      assert.equal(refusal.status, 429);
      assert.equal(refusal.code, 'LIMIT_EXCEEDED');
    });

    it("counts only the user's own connections", async () => {
      const { admission: a, connections } = admission({ maxConnectionsPerUser: 1 });
      connections.add(new FakeConnection('bob'));
      connections.add(new FakeConnection('carol'));
      assert.equal((await a.admit(request(), 'socket.io', SECRET_TOKEN)).userId, 'alice');
      await refusalOf(a.admit(request(), 'socket.io', 'good-bob'));
    });

    it('admits again once one of the connections closed', async () => {
      const { admission: a, connections } = admission({ maxConnectionsPerUser: 1 });
      const first = new FakeConnection('alice');
      connections.add(first);
      await refusalOf(a.admit(request(), 'ws', SECRET_TOKEN));
      first.close('restart');
      assert.equal((await a.admit(request(), 'ws', SECRET_TOKEN)).userId, 'alice');
    });

    it('checks the token before the cap: an invalid token at the cap is 401, not 429', async () => {
      const { admission: a, connections } = admission({ maxConnectionsPerUser: 1 });
      connections.add(new FakeConnection('alice'));
      const refusal = await refusalOf(a.admit(request(), 'ws', 'bad-alice'));
      assert.equal(refusal.status, 401);
    });

    it('asks the slots for one of the cap, per user, and refuses with 429 when they have none left', async () => {
      const asked: [string, number][] = [];
      const taken = new Map<string, number>();
      // As the shared count sees it: bob already has 3 connections on other instances, none here.
      taken.set('bob', 3);
      const slots = new (class extends ConnectionSlots {
        reserve(userId: string, max: number): Promise<boolean> {
          asked.push([userId, max]);
          const n = taken.get(userId) ?? 0;
          if (n >= max) return Promise.resolve(false);
          taken.set(userId, n + 1);
          return Promise.resolve(true);
        }
      })();
      const { admission: a, connections } = admission({ maxConnectionsPerUser: 3, slots });
      const refusal = await refusalOf(a.admit(request(), 'socket.io', 'good-bob'));
      assert.equal(refusal.status, 429);
      assert.equal(refusal.code, 'LIMIT_EXCEEDED');
      assert.equal(connections.countForUser('bob'), 0, 'refused with no connection of bob on this instance');
      assert.equal((await a.admit(request(), 'ws', SECRET_TOKEN)).userId, 'alice');
      await refusalOf(a.admit(request(), 'ws', 'bad-carol'));
      assert.deepEqual(
        asked,
        [
          ['bob', 3],
          ['alice', 3],
        ],
        'once per valid token, never for a refused one',
      );
    });

    it('never logs the token', async () => {
      logged.length = 0;
      const { admission: a, connections } = admission({ maxConnectionsPerUser: 1 });
      await refusalOf(a.admit(request({ origin: 'https://app.example.com' }), 'ws', 'bad-s3cr3t'));
      connections.add(new FakeConnection('alice'));
      await refusalOf(a.admit(request({ origin: 'https://app.example.com' }), 'ws', SECRET_TOKEN));
      const text = JSON.stringify(logged);
      assert.match(text, /UNAUTHORIZED/, 'the refusals are logged');
      assert.match(text, /LIMIT_EXCEEDED/, 'the refusals are logged');
      assert.doesNotMatch(text, /s3cr3t/);
    });
  });
});
