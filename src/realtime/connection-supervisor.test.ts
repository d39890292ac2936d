import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppConfig } from '../config/config.schema.js';
import { ChatConnection, type CloseReason } from './chat-connection.js';
import { ConnectionSupervisor } from './connection-supervisor.js';
import { LocalConnections } from './local-connections.js';

function fakeConnection(id: string, buffered: number, expiresAt = Number.MAX_SAFE_INTEGER) {
  const conn = {
    id,
    transport: 'socket.io',
    user: { userId: `user-${id}`, name: null, expiresAt },
    terminated: false,
    expired: 0,
    bufferedBytes: () => buffered,
    terminate() {
      conn.terminated = true;
    },
    expire() {
      conn.expired++;
    },
  };
  return conn;
}

function supervisorOf(conns: ReturnType<typeof fakeConnection>[], config: Partial<AppConfig> = {}): ConnectionSupervisor {
  const local = { all: () => conns as unknown as ChatConnection[] } as unknown as LocalConnections;
  return new ConnectionSupervisor(local, config as AppConfig);
}

describe('ConnectionSupervisor', () => {
  it('terminates exactly the connections whose outgoing buffer passed the limit', () => {
    const conns = [fakeConnection('under', 1024), fakeConnection('at', 4096), fakeConnection('over', 4097)];
    const config = { limits: { maxBufferedBytes: 4096 } } as AppConfig;
    supervisorOf(conns, config).dropSlowConsumers();
    assert.deepEqual(
      conns.map((c) => [c.id, c.terminated]),
      [
        ['under', false],
        ['at', false],
        ['over', true],
      ],
    );
  });

  describe('expireTokens', () => {
    const NOW = 1_700_000_000_000;

    it('expires exactly the connections whose token expired, once each', () => {
      const conns = [
        fakeConnection('long-ago', 0, NOW - 60_000),
        fakeConnection('just-now', 0, NOW - 1),
        fakeConnection('at-exp', 0, NOW),
        fakeConnection('soon', 0, NOW + 1),
        fakeConnection('later', 0, NOW + 3_600_000),
      ];
      supervisorOf(conns).expireTokens(NOW);
      assert.deepEqual(
        conns.map((c) => [c.id, c.expired]),
        [
          ['long-ago', 1],
          ['just-now', 1],
          ['at-exp', 1],
          ['soon', 0],
          ['later', 0],
        ],
      );
    });

    it('expires through expire() (error push, then close) and never terminates', () => {
      const conns = [fakeConnection('expired', 10 ** 9, NOW - 1)];
      supervisorOf(conns).expireTokens(NOW);
      assert.equal(conns[0]?.expired, 1);
      assert.equal(conns[0]?.terminated, false);
    });

    it('uses the current time by default', () => {
      const conns = [fakeConnection('past', 0, Date.now() - 1000), fakeConnection('future', 0, Date.now() + 60_000)];
      supervisorOf(conns).expireTokens();
      assert.deepEqual(
        conns.map((c) => c.expired),
        [1, 0],
      );
    });

    it('expires a real connection with an UNAUTHORIZED push, then a close for "expired"', () => {
      const local = new LocalConnections();
      const conn = new RecordingConnection('alice', NOW - 1);
      local.add(conn);
      new ConnectionSupervisor(local, {} as AppConfig).expireTokens(NOW);
      assert.deepEqual(conn.calls, [
        ['push', 'error', { code: 'UNAUTHORIZED', message: 'token expired' }],
        ['close', 'expired'],
      ]);
    });

    it('leaves alone a connection whose token was refreshed (replaceIdentity) past now', () => {
      const local = new LocalConnections();
      const conn = new RecordingConnection('alice', NOW - 1);
      local.add(conn);
      conn.replaceIdentity({ userId: 'alice', name: null, expiresAt: NOW + 60_000 });
      new ConnectionSupervisor(local, {} as AppConfig).expireTokens(NOW);
      assert.deepEqual(conn.calls, []);
    });
  });
});

/** A ChatConnection that records what the supervisor makes it do. */
class RecordingConnection extends ChatConnection {
  readonly calls: unknown[][] = [];

  constructor(userId: string, expiresAt: number) {
    super(`rec-${userId}`, 'ws', { userId, name: null, expiresAt }, 10);
  }
  push(event: string, data: unknown): void {
    this.calls.push(['push', event, data]);
  }
  protected subscribe(): void {}
  protected unsubscribe(): void {}
  onRequest(): void {}
  bufferedBytes(): number {
    return 0;
  }
  terminate(): void {
    this.calls.push(['terminate']);
  }
  close(reason: CloseReason): void {
    this.calls.push(['close', reason]);
  }
}
