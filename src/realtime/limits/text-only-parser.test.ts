import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PacketType, type Packet } from 'socket.io-parser';
import { textOnlyParser } from './text-only-parser.js';

function decoder(): { add(chunk: unknown): void; decoded: Packet[] } {
  const d = new textOnlyParser.Decoder();
  const decoded: Packet[] = [];
  d.on('decoded', (p: Packet) => decoded.push(p));
  return { add: (chunk) => d.add(chunk), decoded };
}

describe('textOnlyParser', () => {
  it('decodes a normal event with its ack id', () => {
    const d = decoder();
    d.add('227["message.send",{"roomId":"r1","body":"hi"}]');
    assert.deepEqual(d.decoded, [{ type: PacketType.EVENT, nsp: '/', id: 27, data: ['message.send', { roomId: 'r1', body: 'hi' }] }]);
  });

  it('decodes connect, ack and disconnect packets', () => {
    const d = decoder();
    d.add('0{"token":"t"}');
    d.add('31[{"ok":true}]');
    d.add('1');
    assert.deepEqual(
      d.decoded.map((p) => p.type),
      [PacketType.CONNECT, PacketType.ACK, PacketType.DISCONNECT],
    );
    assert.deepEqual(d.decoded[0]?.data, { token: 't' });
  });

  it('encodes with the stock encoder', () => {
    const encoded = new textOnlyParser.Encoder().encode({ type: PacketType.EVENT, nsp: '/', data: ['session', { userId: 'u' }] });
    assert.deepEqual(encoded, ['2["session",{"userId":"u"}]']);
  });

  for (const [label, packet] of [
    ['a binary event', '51-["x",{"_placeholder":true,"num":0}]'],
    ['a binary event with an ack id', '51-12["x",{"_placeholder":true,"num":0}]'],
    ['a binary event announcing many attachments', '5999999-["x"]'],
    ['a binary ack', '61-12[{"_placeholder":true,"num":0}]'],
  ] as const) {
    it(`throws for ${label} instead of waiting for attachments`, () => {
      const d = decoder();
      assert.throws(() => d.add(packet), /binary/);
      assert.deepEqual(d.decoded, []);
    });
  }

  for (const [label, chunk] of [
    ['a Buffer', Buffer.from('2["x",{}]')],
    ['an ArrayBuffer', new ArrayBuffer(4)],
    ['a Uint8Array', new Uint8Array([50, 91, 93])],
    ['a number', 2],
    ['an object', { type: 2, data: ['x'] }],
    ['null', null],
  ] as const) {
    it(`throws for ${label} chunk`, () => {
      const d = decoder();
      assert.throws(() => d.add(chunk), /binary/);
      assert.deepEqual(d.decoded, []);
    });
  }

  it('keeps decoding text packets after refusing a binary one', () => {
    const d = decoder();
    assert.throws(() => d.add('51-["x",{"_placeholder":true,"num":0}]'));
    d.add('2["after",1]');
    assert.deepEqual(
      d.decoded.map((p) => p.data),
      [['after', 1]],
    );
  });
});

describe('textOnlyParser: one CONNECT per session', () => {
  it('refuses a second CONNECT, to any namespace, while allowing everything else', () => {
    const d = decoder();
    d.add('0{"token":"t"}');
    d.add('2["x"]');
    assert.throws(() => d.add('0{"token":"t"}'), /one CONNECT per session/);
    assert.throws(() => d.add('0/admin,{"token":"t"}'), /one CONNECT per session/);
    assert.deepEqual(
      d.decoded.map((p) => p.type),
      [PacketType.CONNECT, PacketType.EVENT],
    );
  });
});
