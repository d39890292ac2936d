import assert from 'node:assert/strict';
import type { Socket as NetSocket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, sleep, type IoTestClient, type TestClient, type WsTestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { clusterEnv, redisPrefix, startInstance, UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const BODY = 'x'.repeat(3900);

/**
 * Makes a client stop reading while keeping its connection: its WebSocket library loses the TCP
 * socket's data listener and cannot resume it, until the returned function hands the data back.
 */
function stopReading(tcp: NetSocket): () => void {
  const listeners = tcp.listeners('data') as ((chunk: Buffer) => void)[];
  const resume = tcp.resume;
  tcp.removeAllListeners('data');
  tcp.pause();
  tcp.resume = () => tcp;
  return () => {
    tcp.resume = resume;
    for (const l of listeners) tcp.on('data', l);
    tcp.resume();
  };
}

describe('slow consumers and dead peers', () => {
  let cluster: Cluster;
  let url: string;

  before(async () => {
    cluster = await startCluster(1, { ...UNLIMITED_RATES, MAX_BUFFERED_BYTES: String(256 * 1024) });
    url = cluster.instances[0].url;
  });
  after(() => cluster.stop());

  /**
   * Floods the room while `slow` reads nothing, until the server logs that it dropped it; then
   * lets the client read again and checks it finds its connection closed, short of the flood.
   */
  async function floodUntilDropped(room: string, slow: TestClient, resumeReading: () => void, healthy: TestClient): Promise<number> {
    const connectionId = slow.session!.connectionId;
    const dropped = () => cluster.instances[0].output().includes(`dropping slow consumer ${connectionId}`);
    const flooders = await Promise.all(
      [1, 2, 3, 4].map(async (n) => cluster.track(await connect('ws', url, await tokenFor(`flooder-${n}`)))),
    );
    let sent = 0;
    const deadline = Date.now() + 30_000;
    while (!dropped() && sent < 8000 && Date.now() < deadline) {
      await Promise.all(flooders.map((f) => f.ok('message.send', { roomId: room, body: BODY })));
      sent += flooders.length;
    }
    assert.ok(dropped(), `slow consumer not dropped after ${sent} messages`);
    const closed = slow.whenClosed();
    resumeReading();
    assert.ok(
      await Promise.race([closed.then(() => true), sleep(5000).then(() => false)]),
      'the dropped client sees its connection closed',
    );
    assert.ok(slow.messagesIn(room).length < sent, 'the dropped client did not get the whole flood');
    const last = await flooders[0].ok('message.send', { roomId: room, body: 'after the drop' });
    await healthy.waitFor('message.new', (m) => m.id === last.id, 10_000);
    assert.equal(healthy.messagesIn(room).length, sent + 1, 'the rest of the room got every message');
    return sent;
  }

  it('drops a raw ws client that stops reading, and the rest of the room is unaffected', async () => {
    const room = 'slow-ws';
    const slow = (await connect('ws', url, await tokenFor('slow-ws'))) as WsTestClient;
    const healthy = cluster.track(await connect('io', url, await tokenFor('healthy-1')));
    await slow.ok('room.join', { roomId: room });
    await healthy.ok('room.join', { roomId: room });
    // The client keeps its connection but reads nothing: the server's send buffer has to grow.
    await floodUntilDropped(room, slow, stopReading((slow.ws as unknown as { _socket: NetSocket })._socket), healthy);
  });

  it('drops a socket.io client that stops reading, and the rest of the room is unaffected', async () => {
    const room = 'slow-io';
    const slow = (await connect('io', url, await tokenFor('slow-io'))) as IoTestClient;
    const healthy = cluster.track(await connect('ws', url, await tokenFor('healthy-2')));
    await slow.ok('room.join', { roomId: room });
    await healthy.ok('room.join', { roomId: room });
    const engine = slow.socket.io.engine as unknown as { transport: { ws: { _socket: NetSocket } } };
    await floodUntilDropped(room, slow, stopReading(engine.transport.ws._socket), healthy);
  });

  it('terminates a raw ws peer that stops answering pings, and keeps one that answers', async () => {
    const inst = await startInstance('heartbeat', { ...clusterEnv(cluster.db.url, redisPrefix()), HEARTBEAT_INTERVAL_MS: '300' });
    try {
      await expectSilentPeerTerminated(inst.url);
    } finally {
      await inst.stop();
    }
  });

  async function expectSilentPeerTerminated(url: string): Promise<void> {
    const token = await tokenFor('silent');
    const silent = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: { Authorization: `Bearer ${token}` }, autoPong: false });
    const alive = cluster.track(await connect('ws', url, await tokenFor('answering')));
    const started = Date.now();
    const code = await new Promise<number>((resolve, reject) => {
      silent.once('close', (c) => resolve(c));
      setTimeout(() => reject(new Error('silent peer not terminated within 3 s')), 3000);
    });
    assert.equal(code, 1006, 'terminated without a close frame');
    assert.ok(Date.now() - started < 3000);
    assert.equal(alive.isOpen, true);
    assert.ok((await alive.request('message.history', { roomId: 'any' })).ok);
  }
});
