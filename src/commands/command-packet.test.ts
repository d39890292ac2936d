import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_REQUEST_ID_LENGTH, parseCommandPacket } from './command-packet.js';

const LIMIT = 1024;

describe('parseCommandPacket', () => {
  it('reads a request as Nest’s ClientProxy publishes it', () => {
    const raw = JSON.stringify({
      pattern: 'chat.member.add',
      data: { roomId: 'r', userId: 'u' },
      id: 'b1f0c7e2-0000-4000-8000-000000000000',
    });
    assert.deepEqual(parseCommandPacket(raw, LIMIT), {
      kind: 'request',
      id: 'b1f0c7e2-0000-4000-8000-000000000000',
      data: { roomId: 'r', userId: 'u' },
    });
    assert.deepEqual(parseCommandPacket(Buffer.from(raw), LIMIT).kind, 'request');
  });

  it('passes any data on, missing or of the wrong type, for the handler to refuse with VALIDATION_FAILED', () => {
    assert.deepEqual(parseCommandPacket('{"id":"a"}', LIMIT), { kind: 'request', id: 'a', data: undefined });
    assert.deepEqual(parseCommandPacket('{"id":"a","data":"text"}', LIMIT), { kind: 'request', id: 'a', data: 'text' });
  });

  it('ignores what cannot be claimed and answered, with the reason', () => {
    const cases: [string, RegExp][] = [
      ['not json {', /not JSON/],
      ['', /not JSON/],
      ['null', /not a JSON object/],
      ['42', /not a JSON object/],
      ['"chat"', /not a JSON object/],
      ['[{"id":"a"}]', /not a JSON object/],
      ['{"pattern":"chat.message.send","data":{}}', /no id.*emit/],
      ['{"id":7,"data":{}}', /id must be a string/],
      ['{"id":"","data":{}}', /id must be a string/],
      ['{"id":{"$gt":""},"data":{}}', /id must be a string/],
      [JSON.stringify({ id: 'x'.repeat(MAX_REQUEST_ID_LENGTH + 1), data: {} }), /id must be a string of 1-128/],
    ];
    for (const [raw, reason] of cases) {
      const packet = parseCommandPacket(raw, LIMIT);
      assert.equal(packet.kind, 'ignored', raw);
      assert.match((packet as { reason: string }).reason, reason, raw);
    }
  });

  it('ignores a message above the payload limit without parsing it, counting bytes rather than characters', () => {
    const body = 'é'.repeat(600); // 600 characters, 1200 bytes in UTF-8
    const packet = parseCommandPacket(JSON.stringify({ id: 'a', data: { body } }), LIMIT);
    assert.equal(packet.kind, 'ignored');
    assert.match((packet as { reason: string }).reason, /larger than MAX_PAYLOAD_BYTES/);
  });

  it('never throws on hostile nesting (the handler refuses what parses)', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    assert.doesNotThrow(() => parseCommandPacket(`{"id":"a","data":${deep}}`, 1_000_000));
  });
});
