import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type TestClient } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { redisPrefix, SHARED_REDIS_URL, startInstance, type Instance } from './support/instance.js';
import { OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';
import { tokenFor } from './support/tokens.js';

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
/** The SDK's default OTLP/HTTP port, where an SDK started without an endpoint would export. */
const OTLP_DEFAULT_PORT = 4318;

/**
 * Sends one message on each transport, one refused, and a burst at once (which group commit stores
 * in one batch: a room is in one transaction at a time, so the burst queues behind its first
 * message), then stops the instance: shutdown must export the spans.
 */
async function sendAndStop(inst: Instance, room: string): Promise<{ io: any; ws: any; burst: any[] }> {
  const io = await connect('io', inst.url, await tokenFor('tracer-io'));
  const ws = await connect('ws', inst.url, await tokenFor('tracer-ws'));
  try {
    for (const c of [io, ws]) await c.ok('room.join', { roomId: room });
    const sent = {
      io: await io.ok('message.send', { roomId: room, body: 'traced over socket.io' }),
      ws: await ws.ok('message.send', { roomId: room, body: 'traced over ws' }),
    };
    assert.equal((await ws.request('message.send', { roomId: room, body: '' })).error?.code, 'VALIDATION_FAILED');
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => ws.ok('message.send', { roomId: room, body: `burst ${i}` })));
    await io.waitFor('message.new', (m) => m.id === burst[7].id);
    return { ...sent, burst };
  } finally {
    for (const c of [io, ws] as TestClient[]) c.close();
    await inst.stop();
  }
}

describe('tracing of message.send over OTLP/HTTP', () => {
  let db: TestDatabase;
  let receiver: OtlpReceiver;
  let sent: { io: any; ws: any; burst: any[] };
  const room = 'traced-room';

  before(async () => {
    db = await createTestDatabase();
    receiver = await OtlpReceiver.start();
    const inst = await startInstance('traced', {
      DATABASE_URL: db.url,
      REDIS_URL: SHARED_REDIS_URL,
      REDIS_PREFIX: redisPrefix(),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'chat-traced',
      // Nothing is exported on the schedule during the test: every span must come from the shutdown's flush.
      OTEL_BSP_SCHEDULE_DELAY: '600000',
      SHUTDOWN_DRAIN_MS: '0',
    });
    sent = await sendAndStop(inst, room);
  });

  after(async () => {
    await receiver?.close();
    await db?.drop();
  });

  const named = (name: string) => receiver.spans.filter((s) => s.name === name);
  const sendSpanOf = (messageId: string) => {
    const span = named('message.send').find((s) => s.attributes['messaging.message.id'] === messageId);
    assert.ok(span, `no message.send span for ${messageId} among ${JSON.stringify(named('message.send'))}`);
    return span;
  };
  const childrenOf = (parent: ReceivedSpan, name: string) =>
    receiver.spans.filter((s) => s.name === name && s.parentSpanId === parent.spanId && s.traceId === parent.traceId);

  it('exports a server span per send, with the transport, room, seq and outcome, under OTEL_SERVICE_NAME', () => {
    for (const [transport, message] of [
      ['socket.io', sent.io],
      ['ws', sent.ws],
    ] as const) {
      const span = sendSpanOf(message.id);
      assert.equal(span.service, 'chat-traced');
      assert.equal(span.kind, SERVER);
      assert.equal(span.parentSpanId, '');
      assert.match(span.traceId, /^[0-9a-f]{32}$/);
      assert.deepEqual(
        {
          transport: span.attributes['chat.transport'],
          room: span.attributes['chat.room_id'],
          seq: span.attributes['chat.message.seq'],
          outcome: span.attributes['chat.outcome'],
        },
        { transport, room, seq: message.seq, outcome: 'ok' },
      );
    }
    assert.notEqual(sendSpanOf(sent.io.id).traceId, sendSpanOf(sent.ws.id).traceId, 'each send is a trace of its own');
  });

  it('records a refused send as an error outcome with its code, without the client input or store spans', () => {
    const refused = named('message.send').filter((s) => s.attributes['chat.outcome'] === 'error');
    assert.equal(refused.length, 1);
    const [span] = refused;
    assert.equal(span.attributes['error.type'], 'VALIDATION_FAILED');
    assert.equal(span.attributes['chat.transport'], 'ws');
    assert.equal(span.attributes['chat.room_id'], undefined);
    // A client's mistake is no server error: the status stays unset.
    assert.notEqual(span.status.code, 2);
    assert.equal(childrenOf(span, 'chat.store.append').length, 0);
  });

  it('gives each send a store child linked both ways to the group-commit batch span that committed it', () => {
    for (const message of [sent.io, sent.ws]) {
      const send = sendSpanOf(message.id);
      const [append] = childrenOf(send, 'chat.store.append');
      assert.ok(append, 'no chat.store.append child');
      assert.equal(append.attributes['chat.room_id'], room);
      assert.ok(Number(append.attributes['chat.batch.size']) >= 1);
      const batches = named('chat.append.batch').filter((b) =>
        b.links.some((l) => l.spanId === append.spanId && l.traceId === append.traceId),
      );
      assert.equal(batches.length, 1, 'one batch span links to the append span');
      const [batch] = batches;
      assert.equal(batch.kind, CLIENT);
      // A batch serves sends of many traces: a root of its own, not a child of one of them.
      assert.equal(batch.parentSpanId, '');
      assert.notEqual(batch.traceId, send.traceId);
      assert.equal(batch.attributes['db.system.name'], 'postgresql');
      assert.equal(batch.attributes['chat.batch.size'], batch.links.length);
      assert.deepEqual(append.links, [{ traceId: batch.traceId, spanId: batch.spanId }]);
    }
  });

  it('carries a burst of sends in a shared batch span that links to each of them', () => {
    const appends = sent.burst.map((m) => childrenOf(sendSpanOf(m.id), 'chat.store.append')[0]);
    const shared = named('chat.append.batch').filter((b) => b.links.length > 1);
    assert.ok(shared.length >= 1, 'no batch carried more than one send');
    for (const batch of shared)
      for (const link of batch.links)
        assert.ok(
          appends.some((a) => a.spanId === link.spanId && a.traceId === link.traceId),
          'a batch links only to append spans of the sends it carried',
        );
  });

  it('puts the fan-out of message.new under the send that stored it, also for sends that shared a batch', () => {
    for (const message of [sent.io, sent.ws, ...sent.burst]) {
      const fanouts = childrenOf(sendSpanOf(message.id), 'chat.fanout');
      assert.equal(fanouts.length, 1, JSON.stringify(fanouts));
      const [fanout] = fanouts;
      assert.equal(fanout.kind, PRODUCER);
      assert.deepEqual(
        { event: fanout.attributes['chat.event'], room: fanout.attributes['chat.room_id'], relay: fanout.attributes['chat.fanout.relay'] },
        { event: 'message.new', room, relay: 'redis' },
      );
    }
  });
});

describe('tracing off', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db?.drop());

  it('exports nothing with OTEL_SDK_DISABLED=true, even with an endpoint', async () => {
    const receiver = await OtlpReceiver.start();
    try {
      const inst = await startInstance('disabled', {
        DATABASE_URL: db.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SDK_DISABLED: 'true',
        OTEL_BSP_SCHEDULE_DELAY: '50',
        SHUTDOWN_DRAIN_MS: '0',
      });
      await sendAndStop(inst, 'untraced-1');
      await sleep(300);
      assert.equal(receiver.requests, 0);
    } finally {
      await receiver.close();
    }
  });

  it('exports nothing without an endpoint (not even to the SDK default localhost:4318)', async (t) => {
    if (!(await portFree(OTLP_DEFAULT_PORT))) return t.skip(`port ${OTLP_DEFAULT_PORT} is in use here`);
    const receiver = await OtlpReceiver.start(OTLP_DEFAULT_PORT);
    try {
      const inst = await startInstance('no-endpoint', {
        DATABASE_URL: db.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
        OTEL_BSP_SCHEDULE_DELAY: '50',
        SHUTDOWN_DRAIN_MS: '0',
      });
      await sendAndStop(inst, 'untraced-2');
      await sleep(300);
      assert.equal(receiver.requests, 0);
    } finally {
      await receiver.close();
    }
  });
});

async function portFree(port: number): Promise<boolean> {
  const srv = createServer();
  srv.listen(port, '127.0.0.1');
  try {
    await Promise.race([once(srv, 'listening'), once(srv, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch {
    return false;
  }
  srv.close();
  await once(srv, 'close');
  return true;
}
