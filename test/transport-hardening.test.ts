import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, sleep, type TestClient, type WsTestClient } from './support/clients.js';
import { PollingSession } from './support/engine-polling.js';
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
    const polling = await Promise.all(Array.from({ length: 10 }, async (_, i) => connect('io-polling', A.url, await tokenFor(`sigterm-polling-${i}`))));
    const reasons = Promise.all([Promise.all(polling.map((c) => c.whenClosed())), websocket.whenClosed(), (ws as WsTestClient).closed]);
    A.proc.kill('SIGTERM');
    for (const c of polling) void c.request('message.history', { roomId: 'sigterm' }).catch(() => undefined);
    const [pollingReasons, websocketReason, wsClose] = await reasons;
    assert.deepEqual(pollingReasons, polling.map(() => 'transport close'), 'socket.io over polling');
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
    assert.match((await session.poll()).packets[0], /^40\{"sid"/, 'connected to the namespace');
    // No poll is pending now, as between two polls of a real client.
    A.proc.kill('SIGTERM');
    await sleep(700);
    const next = await session.poll();
    assert.deepEqual([next.status, next.packets.includes('1')], [200, true], `answer: ${JSON.stringify(next)}`);
    assert.equal((await A.exited).code, 0);
  });
});
