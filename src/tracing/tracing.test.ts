import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { Tracing } from './tracing.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
// The context manager, without which no span would be active inside `within`.
provider.register();
const tracing = new Tracing(provider.getTracer('test'));

function finished(name: string) {
  return exporter.getFinishedSpans().filter((s) => s.name === name);
}

describe('Tracing', () => {
  it('is off, holding no tracer, unless given one', () => {
    assert.equal(Tracing.off.on, false);
    assert.equal(tracing.on, true);
  });

  it('ends a send span with the stored message, or with the error code and ERROR status only for server faults', () => {
    exporter.reset();
    tracing.endSend(tracing.startSend('ws'), { ok: true, data: { id: 'm1', roomId: 'r1', seq: 7 } });
    tracing.endSend(tracing.startSend('socket.io'), { ok: false, error: { code: 'FORBIDDEN', message: 'not a member' } });
    tracing.endSend(tracing.startSend('socket.io'), { ok: false, error: { code: 'UNAVAILABLE', message: 'storage unavailable' } });
    const [ok, forbidden, unavailable] = finished('message.send');
    assert.deepEqual(
      { ...ok.attributes },
      {
        'messaging.system': 'chat',
        'messaging.operation.name': 'message.send',
        'messaging.operation.type': 'process',
        'chat.transport': 'ws',
        'chat.outcome': 'ok',
        'chat.room_id': 'r1',
        'chat.message.seq': 7,
        'messaging.message.id': 'm1',
      },
    );
    assert.equal(forbidden.attributes['error.type'], 'FORBIDDEN');
    assert.equal(forbidden.status.code, 0);
    assert.equal(unavailable.status.code, 2);
  });

  it('makes a fan-out span only inside a traced request', () => {
    exporter.reset();
    let published = 0;
    tracing.fanout('r1', 'typing', 'none', () => published++);
    assert.equal(finished('chat.fanout').length, 0);
    const send = tracing.startSend('ws');
    tracing.within(send, () => tracing.fanout('r1', 'message.new', 'redis', () => published++));
    send.end();
    assert.equal(published, 2);
    const [fanout] = finished('chat.fanout');
    assert.equal(fanout.parentSpanContext?.spanId, send.spanContext().spanId);
  });

  it('links a batch, a root of its own counting untraced sends too, and the append spans of its sends both ways', () => {
    exporter.reset();
    const sends = [tracing.startSend('ws'), tracing.startSend('ws')];
    assert.equal(tracing.startAppend('r1'), null, 'no append span outside a traced request');
    const appends = sends.map((s) => tracing.within(s, () => tracing.startAppend('r1')!));
    tracing.within(sends[0], () => tracing.endBatch(tracing.startBatch(appends, 3, 1)));
    appends.forEach((a, i) => tracing.endAppend(a, i === 1 ? new Error('lock timeout') : undefined));
    const [batch] = finished('chat.append.batch');
    assert.equal(batch.parentSpanContext, undefined);
    assert.equal(batch.attributes['chat.batch.size'], 3);
    assert.deepEqual(
      batch.links.map((l) => l.context.spanId),
      appends.map((a) => a.span.spanContext().spanId),
    );
    const done = finished('chat.store.append');
    for (const [i, a] of done.entries()) {
      assert.equal(a.parentSpanContext?.spanId, sends[i].spanContext().spanId);
      assert.deepEqual(
        a.links.map((l) => l.context.spanId),
        [batch.spanContext().spanId],
      );
      assert.equal(a.attributes['chat.batch.size'], 3);
    }
    assert.equal(done[1].status.code, 2);
  });
});
