import type { HistoryPage, Message } from './chat.events.js';

export interface NewMessage {
  roomId: string;
  senderId: string;
  body: string;
  clientMsgId: string | null;
}

export interface PageQuery {
  roomId: string;
  beforeSeq?: number;
  afterSeq?: number;
  limit: number;
}

/**
 * Storage of rooms and messages. An abstract class so it is both the interface and the DI token.
 * Implementations throw StorageUnavailableError when the database cannot confirm an outcome.
 */
export abstract class MessageStore {
  /** Stores a message with the room's next seq, or returns the stored one for a repeated clientMsgId. */
  abstract append(input: NewMessage): Promise<{ message: Message; created: boolean }>;
  /** The room's last seq; creates the room (public) when it does not exist yet. */
  abstract openRoom(roomId: string): Promise<number>;
  abstract page(query: PageQuery): Promise<HistoryPage>;
}

/** Live delivery of an event to every connection that joined a room, on every instance. */
export abstract class RoomBroadcaster {
  abstract publish(roomId: string, event: string, data: unknown): void;
}

/** Limits the chat domain enforces; provided from the validated configuration. */
export abstract class ChatLimits {
  abstract readonly maxMessageLength: number;
}
