import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, sleep } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { tokenFor } from './support/tokens.js';

/** The value of one sample line, e.g. sample(text, 'chat_connections{transport="ws"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics and logs', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster(2, { LOG_LEVEL: 'info', API_KEYS: 'metrics-test-key-0123456789' });
  });
  after(() => cluster.stop());

  const scrape = async (i: number) => {
    const res = await fetch(`${cluster.instances[i].url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };

  it('exports connections, messages, latency, fan-out lag, errors, pool and Node metrics, per instance', async () => {
    const [A, B] = cluster.instances;
    const sender = cluster.track(await connect('io', A.url, await tokenFor('m-sender')));
    const reader = cluster.track(await connect('ws', B.url, await tokenFor('m-reader')));
    for (const c of [sender, reader]) await c.ok('room.join', { roomId: 'metrics-room' });
    const sent = await sender.ok('message.send', { roomId: 'metrics-room', body: 'counted', clientMsgId: 'metrics-once' });
    await reader.waitFor('message.new', (m) => m.id === sent.id);
    const again = await sender.ok('message.send', { roomId: 'metrics-room', body: 'counted', clientMsgId: 'metrics-once' });
    assert.equal(again.id, sent.id, 'the repeat answers the stored message');
    await sender.request('no.such.event', {});
    await sleep(200);

    const [a, b] = [await scrape(0), await scrape(1)];
    assert.equal(sample(a, 'chat_connections{transport="socket.io"}'), 1);
    assert.equal(sample(b, 'chat_connections{transport="ws"}'), 1);
    assert.equal(sample(a, 'chat_messages_received_total{transport="socket.io"}'), 2);
    assert.equal(sample(a, 'chat_messages_stored_total'), 1, 'the repeat of a clientMsgId stores nothing');
    assert.equal(sample(a, 'chat_messages_delivered_total{transport="socket.io"}'), 1, 'the sender’s own joined connection');
    assert.equal(sample(b, 'chat_messages_delivered_total{transport="ws"}'), 1);
    assert.equal(sample(b, 'chat_fanout_lag_seconds_count'), 1, 'one message relayed to B');
    assert.equal(sample(a, 'chat_ack_latency_seconds_count{event="message.send"}'), 2);
    assert.equal(sample(a, 'chat_errors_total{code="UNKNOWN_EVENT"}'), 1);
    const inUse = sample(a, 'chat_db_pool_open_connections{state="in_use"}') ?? NaN;
    const idle = sample(a, 'chat_db_pool_open_connections{state="idle"}') ?? NaN;
    assert.ok(inUse >= 0 && idle >= 0 && inUse + idle >= 1, `pool: ${inUse} in use, ${idle} idle`);
    assert.equal(inUse + idle, sample(a, 'chat_db_pool_connections{state="total"}'), 'the split adds up to the deprecated total');
    assert.equal(sample(a, 'chat_db_pool_max_connections'), 10, 'DB_POOL_SIZE by default');
    assert.equal(sample(a, 'chat_db_pool_waiting_requests'), 0);
    for (const name of ['nodejs_eventloop_lag_seconds', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
      assert.ok(sample(a, name) !== undefined, `${name} exported`);
    }
  });

  it('counts group-commit transactions and their messages in chat_append_batch_size', async () => {
    const A = cluster.instances[0];
    const sender = cluster.track(await connect('ws', A.url, await tokenFor('m-batcher')));
    // The room exists first (another user's send, outside the burst's rate budget): a send into a
    // room it creates is attempted twice (see chat_append_batch_size's help).
    const creator = cluster.track(await connect('ws', A.url, await tokenFor('m-room-creator')));
    await creator.ok('message.send', { roomId: 'batch-room', body: 'creates the room' });
    const before = await scrape(0);
    // 100 sends at once into one room: they wait for the room's batch in flight and share the next ones.
    const acks = await Promise.all(
      Array.from({ length: 100 }, (_, n) => sender.ok('message.send', { roomId: 'batch-room', body: `batched ${n}` })),
    );
    assert.equal(acks.length, 100);
    const after = await scrape(0);
    const delta = (series: string) => (sample(after, series) ?? NaN) - (sample(before, series) ?? 0);
    assert.equal(delta('chat_append_batch_size_sum'), 100, 'every message counted once, in the transaction that stored it');
    const transactions = delta('chat_append_batch_size_count');
    assert.ok(transactions >= 1 && transactions < 100, `${transactions} transactions for 100 messages: batches, not one each`);
    assert.ok(delta('chat_append_batch_size_bucket{le="1"}') < transactions, 'some transaction held more than one message');
    assert.equal(delta('chat_append_batch_size_bucket{le="512"}'), transactions, 'a batch holds at most 500');
    assert.equal(delta('chat_append_batch_size_bucket{le="+Inf"}'), transactions);
    console.log(`# 100 concurrent sends into one room: ${transactions} append transactions`);
  });

  it('logs each HTTP request with a request id and its path, never its query string', async () => {
    const A = cluster.instances[0];
    const res = await fetch(`${A.url}/v1/rooms/logged/messages?access_token=do-not-log-me`, {
      // Not from a trusted proxy (no TRUSTED_PROXIES here): the header is the caller's word only.
      headers: { 'X-API-Key': 'metrics-test-key-0123456789', 'X-Request-Id': 'req-42', 'X-Forwarded-For': '203.0.113.9' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'req-42');
    const generated = (await fetch(`${A.url}/v1/rooms/logged`, { headers: { 'X-API-Key': 'nope-nope-nope-nope' } })).headers.get(
      'x-request-id',
    );
    assert.match(generated ?? '', /^[0-9a-f-]{36}$/, 'an id is made when the caller sends none');
    await sleep(200);
    const lines = A.output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; req?: { id?: string; path?: string; remoteAddress?: string } });
    const entry = lines.find((l) => l.req?.id === 'req-42');
    assert.equal(entry?.req?.path, '/v1/rooms/logged/messages');
    assert.equal(entry?.req?.remoteAddress, '127.0.0.1', 'a forged X-Forwarded-For is not logged as the address');
    assert.equal(A.output().includes('do-not-log-me'), false);
    assert.ok(
      lines.some((l) => l.msg === 'connection opened'),
      'connections are logged with their ids',
    );
  });
});

describe('HTTP request logs behind a trusted load balancer (TRUSTED_PROXIES)', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster(1, { LOG_LEVEL: 'info', API_KEYS: 'metrics-test-key-0123456789', TRUSTED_PROXIES: '127.0.0.0/8' });
  });
  after(() => cluster.stop());

  it("logs the client's address from X-Forwarded-For, not the balancer's", async () => {
    const A = cluster.instances[0];
    const res = await fetch(`${A.url}/v1/rooms/behind-lb/messages`, {
      headers: { 'X-API-Key': 'metrics-test-key-0123456789', 'X-Request-Id': 'req-lb', 'X-Forwarded-For': '203.0.113.9' },
    });
    assert.equal(res.status, 200);
    await sleep(200);
    const entry = A.output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { req?: { id?: string; remoteAddress?: string } })
      .find((l) => l.req?.id === 'req-lb');
    assert.equal(entry?.req?.remoteAddress, '203.0.113.9');
  });
});
