import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type IoTestClient, type WsTestClient, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { setDatabaseReachable } from './support/database.js';
import { tokenFor } from './support/tokens.js';

describe('error codes on both transports', () => {
  let cluster: Cluster;
  let ioClient: TestClient;
  let wsClient: WsTestClient;
  const room = 'errors-room';

  before(async () => {
    cluster = await startCluster(1);
    const [A] = cluster.instances;
    ioClient = cluster.track(await connect('io', A.url, await tokenFor('err-io')));
    wsClient = cluster.track((await connect('ws', A.url, await tokenFor('err-ws'))) as WsTestClient);
  });
  after(async () => {
    await setDatabaseReachable(cluster.db.name, true);
    await cluster.stop();
  });

  const both = () => [ioClient, wsClient];
  const storedCount = async () => Number((await cluster.db.query<{ n: string }>('SELECT count(*) AS n FROM messages'))[0].n);

  it('UNKNOWN_EVENT for names without a handler, including prototype names', async () => {
    for (const c of both()) {
      for (const event of ['no.such.event', '__proto__', 'constructor', 'toString']) {
        const r = await c.request(event, { roomId: room });
        assert.equal(r.error?.code, 'UNKNOWN_EVENT', `${c.kind} ${event}`);
      }
      assert.ok((await c.request('message.history', { roomId: room })).ok, 'connection still usable');
    }
  });

  it('VALIDATION_FAILED naming the field, with nothing stored', async () => {
    const before = await storedCount();
    const bad: [object | null | number | string, string | null][] = [
      [null, null],
      [42, null],
      ['text', null],
      [{ roomId: room, body: '' }, 'body'],
      [{ roomId: room, body: ' \n\t ' }, 'body'],
      [{ roomId: room, body: 'x'.repeat(4001) }, 'body'],
      [{ roomId: room, body: 'nul\u0000' }, 'body'],
      [{ roomId: 'has space', body: 'x' }, 'roomId'],
      [{ roomId: room, body: 'x', clientMsgId: 'bad id!' }, 'clientMsgId'],
    ];
    for (const c of both()) {
      for (const [data, field] of bad) {
        const r = await c.request('message.send', data);
        assert.equal(r.error?.code, 'VALIDATION_FAILED', `${c.kind} ${JSON.stringify(data)?.slice(0, 60)}`);
        if (field) assert.ok(r.error?.details?.fields.includes(field), `${c.kind}: fields ${JSON.stringify(r.error?.details)}`);
      }
      const h = await c.request('message.history', { roomId: room, beforeSeq: 5, afterSeq: 1 });
      assert.equal(h.error?.code, 'VALIDATION_FAILED');
      for (const limit of [0, 101, -1, 1e9, '10'])
        assert.equal((await c.request('message.history', { roomId: room, limit })).error?.code, 'VALIDATION_FAILED');
    }
    assert.equal(await storedCount(), before);
  });

  it('pushes `error` with the event name for a failing request without ack or id', async () => {
    for (const c of both()) {
      const seen = c.pushesOf('error').length;
      c.emit('message.send', { roomId: room, body: '' });
      await c.waitFor('error', (e) => e.event === 'message.send' && c.pushesOf('error').indexOf(e) >= seen);
      const e = c.pushesOf('error').at(-1);
      assert.equal(e.code, 'VALIDATION_FAILED');
      assert.equal(typeof e.message, 'string');
    }
  });

  it('BAD_REQUEST for raw ws frames that are not requests, as a push or as a reply to a string id', async () => {
    for (const frame of ['not json {', '[1,2]', '42', 'null', '"x"', JSON.stringify({ data: {} }), JSON.stringify({ event: 7 })]) {
      const seen = wsClient.pushesOf('error').length;
      wsClient.sendRaw(frame);
      const e = await wsClient.waitFor('error', (p) => wsClient.pushesOf('error').indexOf(p) >= seen);
      assert.equal(e.code, 'BAD_REQUEST', frame);
    }
    const reply = await wsClient.requestRaw(JSON.stringify({ id: 'no-event', data: {} }), 'no-event');
    assert.deepEqual([reply.ok, reply.error?.code], [false, 'BAD_REQUEST']);
    assert.ok((await wsClient.request('message.history', { roomId: room })).ok, 'connection still usable');
  });

  it('closes a raw ws connection with 1009 for a frame over the payload limit', async () => {
    const c = (await connect('ws', cluster.instances[0].url, await tokenFor('big-frame'))) as WsTestClient;
    c.sendRaw(JSON.stringify({ event: 'message.send', data: { roomId: room, body: 'x'.repeat(70 * 1024) } }));
    assert.equal((await c.closed).code, 1009);
  });

  it('disconnects a socket.io client whose packet is over the payload limit', async () => {
    const c = await connect('io', cluster.instances[0].url, await tokenFor('big-packet'));
    const reason = new Promise<string>((resolve) => (c as IoTestClient).socket.once('disconnect', resolve));
    c.emit('message.send', { roomId: room, body: 'x'.repeat(70 * 1024) });
    assert.equal(await reason, 'transport close');
    assert.equal((await ioClient.request('message.history', { roomId: room })).ok, true, 'other clients unaffected');
  });

  it('UNAVAILABLE while the database is unreachable, then sends succeed again without a restart', async () => {
    await setDatabaseReachable(cluster.db.name, false);
    try {
      for (const c of both()) {
        const started = Date.now();
        const r = await c.request('message.send', { roomId: room, body: 'during outage', clientMsgId: `outage-${c.kind}` });
        assert.equal(r.error?.code, 'UNAVAILABLE', `${c.kind}: ${JSON.stringify(r)}`);
        assert.ok(Date.now() - started < 3000, 'UNAVAILABLE must come within 3 s');
      }
      const ready = await fetch(`${cluster.instances[0].url}/health/ready`);
      assert.equal(ready.status, 503, 'readiness fails while the database is unreachable');
      assert.equal(((await ready.json()) as { status?: string }).status, 'error', "terminus's report is the body");
      assert.equal((await fetch(`${cluster.instances[0].url}/health/live`)).status, 200);
    } finally {
      await setDatabaseReachable(cluster.db.name, true);
    }
    for (const c of both()) {
      let r = await c.request('message.send', { roomId: room, body: 'during outage', clientMsgId: `outage-${c.kind}` });
      for (let i = 0; !r.ok && i < 20; i++) {
        await sleep(250);
        r = await c.request('message.send', { roomId: room, body: 'during outage', clientMsgId: `outage-${c.kind}` });
      }
      assert.equal(r.ok, true, `${c.kind} after recovery: ${JSON.stringify(r)}`);
    }
  });
});
