import type { AbortSignalLike } from './abort.js';
import type { ChangesPage, ErrorCode, Message, ModerationList, Role, RoomRemovedEvent } from './wire.js';

// The protocol's own payloads, shared with the service (wire.ts is its copy of them).
export type { ChangesPage, Message, ModerationList, Reaction, Role, Sanction } from './wire.js';

export type Transport = 'socket.io' | 'ws';

/** OPEN once the server's `session` push arrived; CONNECTING during the handshake and while retrying. */
export type ConnectionState = 'CONNECTING' | 'OPEN' | 'CLOSING' | 'CLOSED';

/** Error codes of the protocol; a ChatRequestError may also carry the client's own TIMEOUT, DISCONNECTED or CLOSED. */
export type ProtocolErrorCode = ErrorCode;

export type ClientErrorCode = 'TIMEOUT' | 'DISCONNECTED' | 'CLOSED';

export interface RoomInfo {
  roomId: string;
  lastSeq: number;
  /** The room's change counter; join() answers it, rooms() does not (rooms.list does not carry it). */
  lastModSeq?: number;
  lastReadSeq: number;
  unread: number;
  /** The user's role in the room, as join() answers it (rooms() does not carry it). */
  role?: Role;
}

/** A ban's length (ms, none: until unbanned) and the reason recorded with it (at most 500 characters). */
export interface BanOptions {
  durationMs?: number;
  reason?: string;
}

/** Why the server took this client out of a room (room.removed): membership removed, banned, kicked. */
export type RoomRemoval = RoomRemovedEvent;

export interface HistoryOptions {
  /** The newest `limit` messages below it. */
  beforeSeq?: number;
  /** The oldest `limit` messages above it (not with beforeSeq). */
  afterSeq?: number;
  /** Only the replies of the thread rooted at this seq. */
  parentSeq?: number;
  /** 1–100, default 50. */
  limit?: number;
}

/** Options of send(). */
export interface SendOptions {
  /** Makes the message a reply in the thread rooted at this seq. */
  parentSeq?: number;
  /** User ids mentioned (0–50). */
  mentions?: string[];
  /**
   * The idempotency key (1–64 characters from [A-Za-z0-9_-]); generated when left out. Give each
   * composed message its own and reuse it only to retry that message: the service stores a
   * (room, sender, clientMsgId) once and answers a repeat with the stored message.
   */
  clientMsgId?: string;
  /**
   * Aborting rejects the send with the signal's reason (an AbortError unless abort() was given
   * one). Before the request was written nothing is sent; after that the service may still store
   * the message, and it still arrives as 'message': send again with the same clientMsgId to learn
   * its stored state without storing it twice.
   */
  signal?: AbortSignalLike;
}

/** What the rejoin after a reconnect recovered for one room (the 'recovered' event). */
export interface RoomRecovery {
  roomId: string;
  /** The last seq delivered before the reconnect. */
  fromSeq: number;
  /** The seq up to which the room is delivered now. */
  toSeq: number;
  /** lastModSeq(roomId) before and after; null where the service tracks no changes. */
  fromModSeq: number | null;
  toModSeq: number | null;
  /**
   * True when messages or changes between fromSeq and toSeq may be missing: the room was moved on
   * to its newest message because the backlog exceeded resume.maxPages (reason 'maxPages'), the
   * service's pages stopped making progress ('incomplete'), messages or changes after fromSeq
   * were removed by the room's retention ('truncated': delivery went on at the room's floor), or
   * the rejoin failed ('failed'; an 'error' was emitted and the next reconnect tries again).
   * Reload what is shown with history().
   */
  discontinuity: boolean;
  reason?: 'maxPages' | 'incomplete' | 'truncated' | 'failed';
}

/** The events of one room; a RoomHandle emits them for its room only. */
export interface RoomEvents {
  message: Message;
  updated: Message;
  presence: { roomId: string; userId: string; online: boolean };
  typing: { roomId: string; userId: string; typing: boolean };
  receipt: { roomId: string; userId: string; seq: number };
  removed: RoomRemoval;
  /** A send waits before its next attempt: the service answered RATE_LIMITED (slow mode, a rate limit). */
  throttled: { roomId: string; retryAfterMs: number };
  recovered: RoomRecovery;
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
  /**
   * The rejoin after a reconnect reads at most `maxPages` history pages (100 messages each) per room
   * beyond the join's own first page (default: no limit). A room with a longer backlog moves on to
   * its newest message and reports discontinuity in 'recovered'.
   */
  resume?: { maxPages?: number };
}

/** Every room's events (as a RoomHandle has them for one room), the connection's, and one `recovered` for all rooms. */
export interface ChatClientEvents extends Omit<RoomEvents, 'recovered'> {
  state: ConnectionState;
  reconnecting: { attempt: number; delayMs: number };
  session: { userId: string; connectionId: string };
  recovered: { rooms: RoomRecovery[]; discontinuity: boolean };
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
   * A newer state of a message of a joined room (edit, delete, reaction, reply count), from a
   * message.updated push, a reply to edit/delete/react/unreact, or the catch-up after a reconnect.
   * Per (roomId, seq) modSeq only grows: older states arriving late are dropped. A message the
   * client has not delivered as 'message' yet arrives there, in its latest state, instead.
   */
  on(event: 'updated', fn: (m: Message) => void): () => void;
  on(event: 'presence', fn: (p: { roomId: string; userId: string; online: boolean }) => void): () => void;
  on(event: 'typing', fn: (t: { roomId: string; userId: string; typing: boolean }) => void): () => void;
  on(event: 'receipt', fn: (r: { roomId: string; userId: string; seq: number }) => void): () => void;
  /** Taken out of a room by the server (membership removed); `reason` when the server gives one. */
  on(event: 'removed', fn: (r: RoomRemoval) => void): () => void;
  /** A send was answered RATE_LIMITED and is retried after retryAfterMs (slow mode or a rate limit). */
  on(event: 'throttled', fn: (t: { roomId: string; retryAfterMs: number }) => void): () => void;
  on(event: 'error', fn: (e: { code: string; message: string }) => void): () => void;
  /**
   * After a reconnect, once every joined room's rejoin settled (including its catch-up pages):
   * per room what was recovered, and `discontinuity` when any room could not recover completely.
   */
  on(event: 'recovered', fn: (r: { rooms: RoomRecovery[]; discontinuity: boolean }) => void): () => void;
  /** The handle of one room: its requests and its events only. The same object for the same roomId. */
  room(roomId: string): RoomHandle;
  /**
   * Joins a room. The room is rejoined after every reconnect with sinceSeq = the last delivered
   * seq and sinceModSeq = lastModSeq(roomId): the messages missed meanwhile are emitted as
   * 'message', the changes missed as 'updated'. The first join starts at the room's current
   * lastSeq and lastModSeq: load older messages with history().
   */
  join(roomId: string): Promise<RoomInfo>;
  leave(roomId: string): Promise<void>;
  /**
   * Sends with opts.clientMsgId (or a generated one), retried until acknowledged (across
   * reconnects); stored once. A clientMsgId not of 1–64 [A-Za-z0-9_-] rejects with a TypeError,
   * and nothing is sent. See SendOptions for parentSeq, mentions and signal.
   */
  send(roomId: string, body: string, opts?: SendOptions): Promise<Message>;
  /**
   * Replaces the body (sender only). Omitted mentions stay; with expectedVersion ≠ the stored version: CONFLICT.
   * edit, delete, react and unreact are retried after UNAVAILABLE and RATE_LIMITED (nothing was stored), not after a timeout.
   */
  edit(roomId: string, seq: number, body: string, opts?: { mentions?: string[]; expectedVersion?: number }): Promise<Message>;
  /** Deletes (sender or moderator): resolves with the tombstone; deleting again returns it unchanged. */
  delete(roomId: string, seq: number): Promise<Message>;
  /** Adds the user's reaction `key`; one they already have changes nothing. */
  react(roomId: string, seq: number, key: string): Promise<Message>;
  unreact(roomId: string, seq: number, key: string): Promise<Message>;
  /** One page of messages, ascending by seq; with parentSeq a thread's replies. */
  history(roomId: string, opts?: HistoryOptions): Promise<{ messages: Message[]; hasMore: boolean }>;
  /** One page of message.changes: every message whose latest change has modSeq > afterModSeq, in its latest state. */
  changes(roomId: string, opts: { afterModSeq: number; limit?: number }): Promise<ChangesPage>;
  /**
   * The modSeq up to which every change of a joined room has been applied (and is sent as
   * sinceModSeq on the rejoin); null before its join answered or for a room not joined.
   */
  lastModSeq(roomId: string): number | null;
  presence(roomId: string): Promise<string[]>;
  typing(roomId: string, typing: boolean): Promise<void>;
  markRead(roomId: string, seq: number): Promise<number>;
  /**
   * Moderation (an owner or moderator of the room; FORBIDDEN otherwise, and for an owner as the
   * target). Each resolves once the action holds on every instance of the service. A muted user's
   * send, edit and react reject with FORBIDDEN, details { reason: 'muted', until }; without
   * durationMs a mute or ban lasts until it is lifted.
   */
  mute(roomId: string, userId: string, opts?: { durationMs?: number }): Promise<void>;
  unmute(roomId: string, userId: string): Promise<void>;
  /** Bans: the user's connections leave the room ('removed' with reason 'banned') and cannot rejoin until it ends. */
  ban(roomId: string, userId: string, opts?: BanOptions): Promise<void>;
  unban(roomId: string, userId: string): Promise<void>;
  /** Takes the user's connections out of the room ('removed' with reason 'kicked'); they may join again. */
  kick(roomId: string, userId: string): Promise<void>;
  /** The room's mutes and bans in force (moderation.list), each sorted by userId; `until` ISO 8601 or null (until lifted). */
  sanctions(roomId: string): Promise<ModerationList>;
  /** Every room of the user (rooms.list), by roomId: pages through the list until the last page. */
  rooms(): Promise<RoomInfo[]>;
  /** One rooms.list page: up to `limit` (1–1000, default 1000) rooms after `afterRoomId`; `hasMore` when more follow. */
  roomsPage(opts?: { limit?: number; afterRoomId?: string }): Promise<{ rooms: RoomInfo[]; hasMore: boolean }>;
  close(): void;
}

/** One room of a ChatClient (client.room(roomId)): the client's requests for that room, and its events only. */
export interface RoomHandle {
  readonly roomId: string;
  on<K extends keyof RoomEvents>(event: K, fn: (payload: RoomEvents[K]) => void): () => void;
  join(): Promise<RoomInfo>;
  leave(): Promise<void>;
  send(body: string, opts?: SendOptions): Promise<Message>;
  history(opts?: HistoryOptions): Promise<{ messages: Message[]; hasMore: boolean }>;
  changes(opts: { afterModSeq: number; limit?: number }): Promise<ChangesPage>;
  edit(seq: number, body: string, opts?: { mentions?: string[]; expectedVersion?: number }): Promise<Message>;
  delete(seq: number): Promise<Message>;
  react(seq: number, key: string): Promise<Message>;
  unreact(seq: number, key: string): Promise<Message>;
  presence(): Promise<string[]>;
  typing(typing: boolean): Promise<void>;
  markRead(seq: number): Promise<number>;
  lastModSeq(): number | null;
  mute(userId: string, opts?: { durationMs?: number }): Promise<void>;
  unmute(userId: string): Promise<void>;
  ban(userId: string, opts?: BanOptions): Promise<void>;
  unban(userId: string): Promise<void>;
  kick(userId: string): Promise<void>;
  sanctions(): Promise<ModerationList>;
}
