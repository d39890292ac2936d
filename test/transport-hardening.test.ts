import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { connect, sleep, type TestClient, type WsTestClient } from './support/clients.js';
import { PollingSession, type PollAnswer } from './support/engine-polling.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { tokenFor } from './support/tokens.js';

describe('SIGTERM closes every transport cleanly', () => {
  let cluster: Cluster | undefined;
  after(async () => cluster?.stop());

  it('socket.io polling and websocket clients see "transport close", ws clients 1012', async () => {
    cluster = await startCluster(1, { SHUTDOWN_DRAIN_MS: '300' });
    const [A] = cluster.instances;
    const clients: TestClient[] = [];
    for (const kind of ['io', 'ws'] as const) clients.push(await connect(kind, A.url, await tokenFor(`sigterm-${kind}`)));
    const [websocket, ws] = clients;
    // Several polling clients, some with a request in flight, so both a held GET and a POST are open at SIGTERM.
    const polling = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => connect('io-polling', A.url, await tokenFor(`sigterm-polling-${i}`))),
    );
    const reasons = Promise.all([Promise.all(polling.map((c) => c.whenClosed())), websocket.whenClosed(), (ws as WsTestClient).closed]);
    A.proc.kill('SIGTERM');
    for (const c of polling) void c.request('message.history', { roomId: 'sigterm' }).catch(() => undefined);
    const [pollingReasons, websocketReason, wsClose] = await reasons;
    assert.deepEqual(
      pollingReasons,
      polling.map(() => 'transport close'),
      'socket.io over polling',
    );
    assert.equal(websocketReason, 'transport close', 'socket.io over websocket');
    assert.equal(wsClose.code, 1012);
    assert.equal((await A.exited).code, 0);
  });
});

describe('SIGTERM with a socket.io polling session that has no poll pending', () => {
  let cluster: Cluster | undefined;
  after(async () => cluster?.stop());

  it('answers its next poll with a close packet instead of dropping the session', async () => {
    cluster = await startCluster(1, { SHUTDOWN_DRAIN_MS: '300' });
    const [A] = cluster.instances;
    const session = await PollingSession.open(A.url);
    await session.post([`40${JSON.stringify({ token: await tokenFor('sigterm-raw') })}`]);
    // Polls until the CONNECT answer and the session push have both come.
    const seen: string[] = [];
    while (!seen.some((p) => p.startsWith('42["session"'))) seen.push(...(await session.poll()).packets);
    assert.match(seen[0], /^40\{"sid"/, 'connected to the namespace');
    // No poll is pending now, as between two polls of a real client.
    A.proc.kill('SIGTERM');
    await sleep(700);
    const next = await session.poll();
    assert.deepEqual([next.status, next.packets.includes('1')], [200, true], `answer: ${JSON.stringify(next)}`);
    assert.equal((await A.exited).code, 0);
  });
});

describe('HTTP server limits', () => {
  let cluster: Cluster | undefined;
  after(async () => cluster?.stop());

  /** Opens a TCP connection; resolves when the server ends it, with what it answered and how long it took. */
  function trickle(port: number, request: string, everyMs: number): Promise<{ answer: string; ms: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = createConnection(port, '127.0.0.1');
      let answer = '';
      let sent = 0;
      const timer = setInterval(() => sent < request.length && socket.write(request[sent++]), everyMs);
      socket.on('data', (d) => (answer += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ answer, ms: Date.now() - started });
      });
    });
  }

  it('cuts a client that sends its headers one byte per second, holds polls longer than the request timeout, caps sockets', async () => {
    cluster = await startCluster(1, {
      HTTP_HEADERS_TIMEOUT_MS: '2000',
      HTTP_REQUEST_TIMEOUT_MS: '2000',
      HTTP_MAX_CONNECTIONS: '20',
      HEARTBEAT_INTERVAL_MS: '4000',
    });
    const [A] = cluster.instances;
    const slow = await trickle(A.port, `GET /health/live HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(100)}\r\n\r\n`, 1000);
    assert.match(slow.answer, /^HTTP\/1\.1 408/, `answer: ${slow.answer}`);
    // Node checks the timeout once a second (main.ts), so the cut comes within 2 s + 1 s, plus a loaded machine's lag.
    assert.ok(slow.ms >= 1900 && slow.ms < 4500, `cut after ${slow.ms} ms`);
    console.log(`slow headers (1 byte/s): 408 and closed after ${slow.ms} ms (HTTP_HEADERS_TIMEOUT_MS=2000)`);

    // A poll is held for the whole ping interval (4 s), past the 2 s request timeout, and answered with a ping.
    const session = await PollingSession.open(A.url);
    await session.post([`40${JSON.stringify({ token: await tokenFor('held-poll') })}`]);
    // The first polls bring the CONNECT answer and the session push; the one after is held until the ping.
    let held: PollAnswer;
    let heldMs: number;
    do {
      const started = Date.now();
      held = await session.poll();
      heldMs = Date.now() - started;
    } while (held.status === 200 && !held.packets.includes('2'));
    assert.equal(held.status, 200);
    assert.ok(heldMs > 3000, `held ${heldMs} ms`);

    // Sockets above HTTP_MAX_CONNECTIONS are dropped at once; the ones below it are served.
    const idle = await Promise.all(Array.from({ length: 20 }, () => openSocket(A.port)));
    const over = await trickle(A.port, 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n', 10);
    assert.deepEqual([over.answer, over.ms < 1000], ['', true], `the socket over the cap: ${JSON.stringify(over)}`);
    for (const s of idle) s.destroy();
    await sleep(200);
    assert.equal((await fetch(`${A.url}/health/live`)).status, 200, 'served again below the cap');
  });
});

async function openSocket(port: number): Promise<Socket> {
  const socket = createConnection(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}
