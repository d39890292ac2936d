import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { DiagnosticSeverity, Parser, type AsyncAPIDocumentInterface, type OperationInterface } from '@asyncapi/parser';
import { MetadataScanner } from '@nestjs/core';
import { MESSAGE_MAPPING_METADATA, MESSAGE_METADATA } from '@nestjs/websockets/constants.js';
import { ERROR_CODES } from '../chat/chat.errors.js';
import { SERVER_EVENTS } from '../chat/chat.events.js';
import { ChatGateway } from './chat.gateway.js';

const DOCUMENT = fileURLToPath(new URL('../../../docs/asyncapi.yaml', import.meta.url));
/** The channel of each transport; both must describe the same events. */
const TRANSPORT_CHANNELS = ['socketio', 'ws'];

/** The event names Nest binds to ChatGateway's handlers: what @SubscribeMessage recorded on each method. */
function gatewayEvents(): string[] {
  const proto = ChatGateway.prototype as unknown as Record<string, unknown>;
  return new MetadataScanner()
    .getAllMethodNames(proto)
    .map((name) => proto[name])
    .filter((handler) => typeof handler === 'function' && Reflect.getMetadata(MESSAGE_MAPPING_METADATA, handler) === true)
    .map((handler) => String(Reflect.getMetadata(MESSAGE_METADATA, handler as object)));
}

function sorted(names: Iterable<string>): string[] {
  return [...names].sort();
}

/** The one message an operation carries, and its name (the event name). */
function eventOf(op: OperationInterface): string {
  const messages = op.messages().all();
  assert.equal(messages.length, 1, `operation ${op.id()} carries exactly one message`);
  const name = messages[0].name();
  assert.ok(name, `operation ${op.id()}: its message has a name (the event name)`);
  return name;
}

function operationsOn(doc: AsyncAPIDocumentInterface, channel: string): OperationInterface[] {
  return doc
    .operations()
    .all()
    .filter((op) => op.channels().all()[0]?.id() === channel);
}

describe('docs/asyncapi.yaml', () => {
  let doc: AsyncAPIDocumentInterface;

  before(async () => {
    const { document, diagnostics } = await new Parser().parse(await readFile(DOCUMENT, 'utf8'), { source: DOCUMENT });
    const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
    assert.deepEqual(
      errors.map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`),
      [],
      'the AsyncAPI parser reports no error',
    );
    assert.ok(document, 'the parser returned a document');
    doc = document;
  });

  it('is an AsyncAPI 3 document with one server and one channel per transport', () => {
    assert.match(doc.version(), /^3\./);
    assert.deepEqual(
      sorted(
        doc
          .servers()
          .all()
          .map((s) => s.id()),
      ),
      ['socketio', 'ws'],
    );
    for (const channel of TRANSPORT_CHANNELS) {
      const servers = doc.channels().get(channel)?.servers().all() ?? [];
      assert.deepEqual(
        servers.map((s) => s.id()),
        [channel],
        `channel ${channel} is served by server ${channel}`,
      );
    }
    const unassigned = doc
      .operations()
      .all()
      .filter((op) => !TRANSPORT_CHANNELS.includes(op.channels().all()[0]?.id() ?? ''));
    assert.deepEqual(
      unassigned.map((op) => op.id()),
      [],
      'every operation belongs to a transport channel',
    );
  });

  it('the gateway registers each event once', () => {
    const events = gatewayEvents();
    assert.ok(events.length > 0, 'ChatGateway has @SubscribeMessage handlers');
    assert.deepEqual(sorted(new Set(events)), sorted(events));
  });

  for (const channel of TRANSPORT_CHANNELS) {
    describe(`transport ${channel}`, () => {
      it('describes exactly the client → server events ChatGateway handles, each with a reply', () => {
        const requests = operationsOn(doc, channel).filter((op) => op.isReceive());
        const names = requests.map(eventOf);
        assert.deepEqual(sorted(names), sorted(new Set(names)), 'no event is described twice');
        assert.deepEqual(sorted(names), sorted(gatewayEvents()), 'documented requests = gateway handlers');
        for (const op of requests) {
          const replies = op.reply()?.messages().all() ?? [];
          assert.equal(replies.length, 1, `${op.id()} has one reply message`);
          assert.equal(op.reply()?.channel()?.id(), channel, `${op.id()} is answered on its own transport`);
        }
      });

      it('describes exactly the server → client pushes of SERVER_EVENTS', () => {
        const pushes = operationsOn(doc, channel).filter((op) => op.isSend());
        const names = pushes.map(eventOf);
        assert.deepEqual(sorted(names), sorted(new Set(names)), 'no push is described twice');
        assert.deepEqual(sorted(names), sorted(Object.values(SERVER_EVENTS)), 'documented pushes = SERVER_EVENTS');
      });
    });
  }

  it('raw ws frames name their event and wrap the same data, and replies, as socket.io carries them', () => {
    const io = new Map(operationsOn(doc, 'socketio').map((op) => [`${op.action()} ${eventOf(op)}`, op]));
    for (const op of operationsOn(doc, 'ws')) {
      const event = eventOf(op);
      const key = `${op.action()} ${event}`;
      const twin = io.get(key);
      assert.ok(twin, `socket.io also describes ${key}`);
      const frame = op.messages().all()[0].payload();
      assert.equal(frame?.properties()?.event?.const(), event, `the ws frame of ${key} has event "${event}"`);
      assert.deepEqual(
        frame?.properties()?.data?.json(),
        twin.messages().all()[0].payload()?.json(),
        `${key}: same data on both transports`,
      );
      if (op.isReceive()) {
        const wsReply = op.reply()?.messages().all()[0].payload();
        const ioReply = twin.reply()?.messages().all()[0].payload();
        const [id, reply] = wsReply?.allOf() ?? [];
        assert.deepEqual(id?.required(), ['id'], `${key}: the ws reply carries the request id`);
        assert.deepEqual(reply?.json(), ioReply?.json(), `${key}: same reply on both transports`);
      }
    }
  });

  it('lists exactly the error codes of the protocol', () => {
    const codes = doc.components().schemas().get('ErrorCode')?.enum();
    assert.deepEqual(codes, [...ERROR_CODES]);
  });
});
