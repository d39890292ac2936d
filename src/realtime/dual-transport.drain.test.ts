// DualTransportAdapter at shutdown: refusing new connections while the instance drains, then close().
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatConnection } from './chat-connection.js';
import {
  adapterOn,
  adapterOptions,
  IoClient,
  ioRefusal,
  pollingHandshake,
  TestServer,
  within,
  WsClient,
  wsRefusal,
  type TestClient,
  type WireError,
} from './dual-transport.test-support.js';

describe('DualTransportAdapter while the instance drains', () => {
  let srv: TestServer;
  let ws: WsClient;
  let sio: IoClient;
  before(async () => {
    srv = await TestServer.start();
    ws = await srv.connectWs('drain-ws');
    sio = await srv.connectIo('drain-io');
    srv.gate.beginDraining();
  });
  after(() => srv.stop());

  it('answers a new ws upgrade with HTTP 503 UNAVAILABLE, before checking the token or the origin', async () => {
    for (const headers of [
      { Authorization: 'Bearer good-late' },
      { Authorization: 'Bearer bad' },
      { Origin: 'https://evil.example' },
    ] as Record<string, string>[]) {
      const res = await wsRefusal(srv.wsUrl, headers);
      assert.equal(res.status, 503, JSON.stringify(headers));
      assert.equal((JSON.parse(res.body) as { error: WireError }).error.code, 'UNAVAILABLE');
    }
  });

  it('answers a new socket.io polling handshake with HTTP 403, and socket.io-client gets connect_error', async () => {
    assert.equal((await pollingHandshake(srv.port)).status, 403);
    const upgrade = await wsRefusal(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
    assert.ok(upgrade.status >= 400, `the socket.io websocket transport is refused too: ${upgrade.status}`);
    const err = await ioRefusal(srv.baseUrl, { token: 'good-late-io' }, 'polling');
    assert.ok(err instanceof Error);
    assert.equal(srv.connections.countForUser('late-io'), 0);
  });

  it('still serves the connections it has while draining, and answers UNAVAILABLE once closing', async () => {
    const wsReply = await ws.request('echo', 1);
    assert.equal(wsReply.ok, true);
    assert.deepEqual(wsReply.data, { echo: 1 });
    assert.deepEqual(await sio.request('echo', 2), { ok: true, data: { echo: 2 } });
    srv.gate.beginClosing();
    for (const c of [ws, sio] as TestClient[]) {
      const reply = await c.request('echo', 3);
      assert.equal(reply.ok, false);
      assert.equal(reply.error?.code, 'UNAVAILABLE');
    }
  });
});

describe('DualTransportAdapter.close', () => {
  it('closes ws clients with 1012, closes socket.io transports (clients reconnect) and stops the HTTP server', async () => {
    const httpServer = createServer();
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    const { port } = httpServer.address() as AddressInfo;
    const adapter = adapterOn(httpServer, adapterOptions());
    const io = adapter.create(0);
    const disconnects: Promise<string>[] = [];
    adapter.bindClientConnect(io, (conn: ChatConnection) => {
      disconnects.push(new Promise((resolve) => adapter.bindClientDisconnect(conn, resolve)));
      conn.push('session', { userId: conn.user.userId, connectionId: conn.id });
    });
    const ws = new WsClient(`ws://127.0.0.1:${port}/ws`, { Authorization: 'Bearer good-closing' });
    const sio = new IoClient(`http://127.0.0.1:${port}`, { token: 'good-closing-io' }, 'websocket');
    try {
      await Promise.all([ws.waitPush('session'), sio.waitPush('session')]);
      const ioDisconnected = within(new Promise<string>((resolve) => sio.socket.once('disconnect', resolve)), 'socket.io disconnect');
      await within(adapter.close(io), 'adapter.close');
      assert.equal((await within(ws.closed, 'ws close')).code, 1012);
      assert.equal(await ioDisconnected, 'transport close');
      assert.equal(httpServer.listening, false);
      assert.equal(disconnects.length, 2);
      await within(Promise.all(disconnects), 'both server-side connections to report their disconnect');
    } finally {
      ws.close();
      sio.close();
      if (httpServer.listening) {
        httpServer.closeAllConnections();
        httpServer.close();
      }
    }
  });
});
