import { Injectable } from '@nestjs/common';
import { SERVER_EVENTS, type HistoryPage, type JoinResult, type Message } from './chat.events.js';
import { ChatLimits, MessageStore, RoomBroadcaster } from './chat.ports.js';
import { createSchemas, MAX_PAGE, parseInput, type ChatSchemas } from './chat.schemas.js';

/**
 * The chat domain: every transport (socket.io, raw WebSocket, later HTTP) calls these methods
 * with untrusted data and gets validated, stored, broadcast results back.
 */
@Injectable()
export class ChatService {
  private readonly schemas: ChatSchemas;

  constructor(
    private readonly store: MessageStore,
    private readonly broadcaster: RoomBroadcaster,
    limits: ChatLimits,
  ) {
    this.schemas = createSchemas(limits);
  }

  /**
   * Subscribes before reading, so a message committed meanwhile arrives live or in `missed`
   * (clients de-duplicate by seq) and never falls between the two.
   */
  async join(data: unknown, subscribe: (roomId: string) => void): Promise<JoinResult> {
    const { roomId, sinceSeq } = parseInput(this.schemas.join, data);
    subscribe(roomId);
    const lastSeq = await this.store.openRoom(roomId);
    if (sinceSeq === undefined) return { roomId, lastSeq };
    const { messages, hasMore } = await this.store.page({ roomId, afterSeq: sinceSeq, limit: MAX_PAGE });
    const newest = messages.at(-1)?.seq ?? 0;
    return { roomId, lastSeq: Math.max(lastSeq, newest), missed: messages, hasMore };
  }

  async leave(data: unknown, unsubscribe: (roomId: string) => void): Promise<{ roomId: string }> {
    const { roomId } = parseInput(this.schemas.leave, data);
    unsubscribe(roomId);
    return { roomId };
  }

  /** Resolves only after COMMIT; a repeated clientMsgId returns the stored message without a new broadcast. */
  async send(senderId: string, data: unknown): Promise<Message> {
    const input = parseInput(this.schemas.send, data);
    const { message, created } = await this.store.append({
      roomId: input.roomId,
      senderId,
      body: input.body,
      clientMsgId: input.clientMsgId ?? null,
    });
    if (created) this.broadcaster.publish(message.roomId, SERVER_EVENTS.messageNew, message);
    return message;
  }

  async history(data: unknown): Promise<HistoryPage> {
    return this.store.page(parseInput(this.schemas.history, data));
  }
}
