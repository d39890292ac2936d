import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Transport } from '../common/transport.js';
import { ChatConnection, type CloseReason } from './chat-connection.js';
import { fakeRelay } from './fake-relay.test-support.js';
import { InstanceRelay } from './instance-relay.js';
import { LocalConnections } from './local-connections.js';
import { UserDisconnector } from './user-disconnector.js';

let nextId = 0;
/** Records how it was closed, and closes the way real connections do: by notifying LocalConnections. */
class FakeConnection extends ChatConnection {
  readonly closes: CloseReason[] = [];

  constructor(userId: string, transport: Transport) {
    super(`fake-${++nextId}`, transport, { userId, name: null, expiresAt: Date.now() + 3600e3 }, 100);
  }
  push(): void {}
  protected subscribe(): void {}
  protected unsubscribe(): void {}
  onRequest(): void {}
  bufferedBytes(): number {
    return 0;
  }
  terminate(): void {}
  close(reason: CloseReason): void {
    this.closes.push(reason);
    this.notifyClosed(reason);
  }
}

function connect(local: LocalConnections, userId: string, transport: Transport): FakeConnection {
  const conn = new FakeConnection(userId, transport);
  local.add(conn);
  return conn;
}

describe('UserDisconnector', () => {
  it("closes every local connection of the user, on both transports, with reason 'disconnected'; others stay", () => {
    const local = new LocalConnections();
    const aliceIo = connect(local, 'alice', 'socket.io');
    const aliceWs = connect(local, 'alice', 'ws');
    const bob = connect(local, 'bob', 'ws');
    const alicePrefixed = connect(local, 'alice2', 'socket.io');

    new UserDisconnector(local, new InstanceRelay()).disconnect('alice');

    assert.deepEqual(aliceIo.closes, ['disconnected']);
    assert.deepEqual(aliceWs.closes, ['disconnected']);
    assert.deepEqual(bob.closes, []);
    assert.deepEqual(alicePrefixed.closes, [], 'the user id must match exactly');
    assert.equal(local.countForUser('alice'), 0);
    assert.deepEqual([...local.all()], [bob, alicePrefixed]);
  });

  it('is a no-op for a user without connections here', () => {
    const local = new LocalConnections();
    const bob = connect(local, 'bob', 'ws');
    new UserDisconnector(local, new InstanceRelay()).disconnect('nobody');
    assert.deepEqual(bob.closes, []);
  });

  it('relays the user id once to the other instances and applies relayed disconnects locally', () => {
    const local = new LocalConnections();
    const { relay, listeners, emitted } = fakeRelay();
    const disconnector = new UserDisconnector(local, relay);

    const carol = connect(local, 'carol', 'ws');
    disconnector.disconnect('carol');
    assert.deepEqual(carol.closes, ['disconnected']);
    assert.equal(emitted.length, 1);
    const [event, userId] = emitted[0];
    assert.equal(userId, 'carol');

    // As another instance receives it: local connections only, no relay back.
    const dave = connect(local, 'dave', 'socket.io');
    const relayed = listeners.get(event as string);
    assert.ok(relayed, 'listens for the event it emits');
    relayed('dave');
    assert.deepEqual(dave.closes, ['disconnected']);
    assert.equal(emitted.length, 1, 'a relayed disconnect is not relayed again');
    relayed({ not: 'a user id' });
    assert.equal(emitted.length, 1);
  });
});
