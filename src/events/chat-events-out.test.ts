import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { streamFields, webhookBody, type ChatEventOut } from './chat-events-out.js';

const message = {
  id: '0b5c1f3e-8a51-4a4e-9f0e-1d2c3b4a5f60',
  roomId: 'lobby',
  seq: 7,
  senderId: 'alice',
  body: 'hi "there"\n',
  clientMsgId: null,
  createdAt: '2025-01-02T03:04:05.678Z',
};
const event: ChatEventOut = { id: '9f7b6d0e-2c1a-4b3d-8e5f-6a7b8c9d0e1f', type: 'message.created', roomId: 'lobby', data: message };

describe('stream entries and webhook bodies', () => {
  it('stream fields are id, type, roomId and data as a JSON string, in that order', () => {
    const fields = streamFields(event);
    assert.deepEqual(fields.slice(0, 7), ['id', event.id, 'type', 'message.created', 'roomId', 'lobby', 'data']);
    assert.equal(fields.length, 8);
    assert.deepEqual(JSON.parse(fields[7]), message);
  });

  it('the webhook body is { id, type, roomId, data } with data as an object', () => {
    const body = webhookBody(event);
    assert.deepEqual(JSON.parse(body), { id: event.id, type: 'message.created', roomId: 'lobby', data: message });
    assert.equal(webhookBody(event), body, 'the same bytes every time');
  });
});
