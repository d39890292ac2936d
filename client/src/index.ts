import { ChatClientImpl } from './chat-client.js';
import type { ChatClient, ConnectOptions } from './types.js';

export type { AbortSignalLike } from './abort.js';
export { ChatRequestError } from './errors.js';
export type {
  BanOptions,
  ChangesPage,
  ChatClient,
  ChatClientEvents,
  ClientErrorCode,
  ConnectOptions,
  ConnectionState,
  HistoryOptions,
  Message,
  ModerationList,
  ProtocolErrorCode,
  Reaction,
  Role,
  RoomEvents,
  RoomHandle,
  RoomInfo,
  RoomRecovery,
  RoomRemoval,
  Sanction,
  SendOptions,
  Transport,
} from './types.js';

/**
 * Connects to the chat service and keeps connecting: the client reconnects with backoff, rejoins
 * its rooms and resumes their messages without gaps until close(). Throws a TypeError for options
 * it cannot work with (unknown transport, empty token, bad URL, no WebSocket implementation).
 */
export function connect(options: ConnectOptions): ChatClient {
  return new ChatClientImpl(options);
}
