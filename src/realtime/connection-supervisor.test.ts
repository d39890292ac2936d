import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppConfig } from '../config/config.schema.js';
import type { ChatConnection } from './chat-connection.js';
import { ConnectionSupervisor } from './connection-supervisor.js';
import type { LocalConnections } from './local-connections.js';

function fakeConnection(id: string, buffered: number) {
  const conn = {
    id,
    transport: 'socket.io',
    user: { userId: `user-${id}`, name: null, expiresAt: 0 },
    terminated: false,
    bufferedBytes: () => buffered,
    terminate() {
      conn.terminated = true;
    },
  };
  return conn;
}

describe('ConnectionSupervisor', () => {
  it('terminates exactly the connections whose outgoing buffer passed the limit', () => {
    const conns = [fakeConnection('under', 1024), fakeConnection('at', 4096), fakeConnection('over', 4097)];
    const local = { all: () => conns as unknown as ChatConnection[] } as unknown as LocalConnections;
    const config = { limits: { maxBufferedBytes: 4096 } } as AppConfig;
    new ConnectionSupervisor(local, config).dropSlowConsumers();
    assert.deepEqual(
      conns.map((c) => [c.id, c.terminated]),
      [
        ['under', false],
        ['at', false],
        ['over', true],
      ],
    );
  });
});
