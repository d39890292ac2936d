import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SubscribeMessage } from '@nestjs/websockets';
import { ChatGateway } from './chat.gateway.js';
import { SubscribeUserMessage, userMessageEvents } from './user-message.decorator.js';

describe('SubscribeUserMessage', () => {
  it('marks the events of the decorated handlers only', () => {
    class Gateway {
      @SubscribeUserMessage('message.send')
      send(): void {}

      @SubscribeUserMessage('message.edit')
      edit(): void {}

      @SubscribeMessage('room.join')
      join(): void {}
    }
    assert.deepEqual([...userMessageEvents(Gateway)].sort(), ['message.edit', 'message.send']);
  });

  it("is how the chat gateway declares message.send, the one request held to the user's message window", () => {
    assert.deepEqual([...userMessageEvents(ChatGateway)], ['message.send']);
  });
});
