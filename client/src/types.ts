export type Transport = 'socket.io' | 'ws';

/** OPEN once the server's `session` push arrived; CONNECTING during the handshake and while retrying. */
export type ConnectionState = 'CONNECTING' | 'OPEN' | 'CLOSING' | 'CLOSED';

export interface Message {
  id: string;
  roomId: string;
  seq: number;
  senderId: string;
  body: string;
  clientMsgId: string | null;
  createdAt: string;
  /** 1 when created, +1 per edit or delete. */
  version: number;
  /** The room's change counter at this message's latest change: keep the state with the highest. */
  modSeq: number;
  editedAt: string | null;
  /** Set on a tombstone (body "", no mentions, no reactions). */
  deletedAt: string | null;
  /** The thread's root seq for a reply; null for a top-level message. */
  parentSeq: number | null;
  replyCount: number;
  lastReplySeq: number | null;
  mentions: string[];
  reactions: Reaction[];
}

/** One reaction key of a message; `userIds` holds at most the first 50 reacting users. */
export interface Reaction {
  key: string;
  count: number;
  userIds: string[];
}

export interface SendOptions {
  /** Sends a reply in the thread of that top-level message. */
  parentSeq?: number;
  /** User ids the body mentions (0–50). */
  mentions?: string[];
}

export interface HistoryOptions {
  beforeSeq?: number;
  afterSeq?: number;
  /** Only the replies of that thread. */
  parentSeq?: number;
  limit?: number;
}

export interface EditOptions {
  /** Replaces the message's mentions; left out, they stay as they were. */
  mentions?: string[];
  /** Refused with CONFLICT when the stored version differs. */
  expectedVersion?: number;
}

export interface RoomInfo {
  roomId: string;
  lastSeq: number;
  lastReadSeq: number;
  unread: number;
}

export interface ConnectOptions {
  /**
   * The service's base URL (http(s):// or ws(s)://; relative URLs resolve against the page). A list
   * is tried round-robin: each reconnect moves on to the next URL, so a client survives the death of
   * the instance it was on without a load balancer in front.
   */
  url: string | string[];
  /** The JWT to connect with. */
  token: string;
  transport: Transport;
  /**
   * Token-refresh hook: called shortly before the current token's `exp` (the new token is sent with
   * `auth.refresh`) and before reconnecting after the server refused or expired the token.
   */
  getToken?: () => Promise<string>;
  /** Backoff between reconnect attempts: exponential from minDelayMs (250) up to maxDelayMs (10000), with jitter. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /** A WebSocket constructor for the `ws` transport (e.g. the `ws` package in Node); defaults to the global one. */
  WebSocket?: unknown;
  /** How long one request waits for its reply, and a handshake for `session` (ms, default 10000). */
  requestTimeoutMs?: number;
}

export interface ChatClientEvents {
  state: ConnectionState;
  reconnecting: { attempt: number; delayMs: number };
  session: { userId: string; connectionId: string };
  message: Message;
  updated: Message;
  presence: { roomId: string; userId: string; online: boolean };
  typing: { roomId: string; userId: string; typing: boolean };
  receipt: { roomId: string; userId: string; seq: number };
  removed: { roomId: string };
  error: { code: string; message: string };
}

export interface ChatClient {
  readonly state: ConnectionState;
  readonly userId: string | null;
  readonly reconnecting: boolean;
  on(event: 'state', fn: (s: ConnectionState) => void): () => void;
  on(event: 'reconnecting', fn: (info: { attempt: number; delayMs: number }) => void): () => void;
  on(event: 'session', fn: (s: { userId: string; connectionId: string }) => void): () => void;
  /** Messages of joined rooms: in seq order per room, each once, gaps filled from the history. */
  on(event: 'message', fn: (m: Message) => void): () => void;
  /**
   * Changes to messages of joined rooms (edits, deletes, reactions, reply counts), live and caught
   * up after a reconnect; may overlap with each other and with 'message': keep, per (roomId, seq),
   * the state with the highest modSeq.
   */
  on(event: 'updated', fn: (m: Message) => void): () => void;
  on(event: 'presence', fn: (p: { roomId: string; userId: string; online: boolean }) => void): () => void;
  on(event: 'typing', fn: (t: { roomId: string; userId: string; typing: boolean }) => void): () => void;
  on(event: 'receipt', fn: (r: { roomId: string; userId: string; seq: number }) => void): () => void;
  on(event: 'removed', fn: (r: { roomId: string }) => void): () => void;
  on(event: 'error', fn: (e: { code: string; message: string }) => void): () => void;
  /**
   * Joins a room. The room is rejoined after every reconnect with sinceSeq = the last delivered
   * seq, and the messages missed meanwhile are emitted as 'message'. The first join starts at the
   * room's current lastSeq: load older messages with history().
   */
  join(roomId: string): Promise<RoomInfo>;
  leave(roomId: string): Promise<void>;
  /** Sends with a generated clientMsgId, retried until acknowledged (across reconnects); stored once. */
  send(roomId: string, body: string, opts?: SendOptions): Promise<Message>;
  history(roomId: string, opts?: HistoryOptions): Promise<{ messages: Message[]; hasMore: boolean }>;
  /** message.edit: resolves with the latest Message. Only the sender may edit. */
  edit(roomId: string, seq: number, body: string, opts?: EditOptions): Promise<Message>;
  /** message.delete: resolves with the tombstone. */
  deleteMessage(roomId: string, seq: number): Promise<Message>;
  /** reaction.add / reaction.remove: resolves with the latest Message. */
  react(roomId: string, seq: number, key: string, on: boolean): Promise<Message>;
  presence(roomId: string): Promise<string[]>;
  typing(roomId: string, typing: boolean): Promise<void>;
  markRead(roomId: string, seq: number): Promise<number>;
  /** Every room of the user (rooms.list), by roomId: pages through the list until the last page. */
  rooms(): Promise<RoomInfo[]>;
  /** One rooms.list page: up to `limit` (1–1000, default 1000) rooms after `afterRoomId`; `hasMore` when more follow. */
  roomsPage(opts?: { limit?: number; afterRoomId?: string }): Promise<{ rooms: RoomInfo[]; hasMore: boolean }>;
  close(): void;
}
