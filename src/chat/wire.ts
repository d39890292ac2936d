// The protocol's payloads as types, and nothing else: no imports, no values. The client package
// compiles a copy of this file (client/src/wire.ts, written by `npm run wire-types` and checked by
// `npm run lint`), so the service and its client cannot drift apart. docs/protocol.md says what
// each field means on the wire.

/** The protocol's stable error codes; every failure a client sees carries one of these. */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'UNKNOWN_EVENT'
  | 'VALIDATION_FAILED'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  /** A stale `expectedVersion` on message.edit; `details.currentVersion` holds the stored one. */
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'LIMIT_EXCEEDED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAVAILABLE'
  | 'INTERNAL';

/** What a refusal carries, in a reply, an `error` push and an HTTP error body alike. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * Every push a connection can get, by event name: what publish, deliver and push accept, so an
 * event is never sent with another event's payload.
 */
export interface ServerEventMap {
  session: SessionPayload;
  'message.new': Message;
  'message.updated': Message;
  'room.removed': RoomRemovedEvent;
  'presence.joined': PresenceEvent;
  'presence.left': PresenceEvent;
  /** A refused request that asked for no reply (its event name echoed), or the token's expiry. */
  error: ErrorBody & { event?: string };
  typing: TypingEvent;
  receipt: ReceiptEvent;
}

export type ServerEvent = keyof ServerEventMap;

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
  /** The room's modSeq of this message's latest change (its creation, an edit, a reaction, …). */
  modSeq: number;
  editedAt: string | null;
  deletedAt: string | null;
  /** The thread root's seq for a reply, else null. */
  parentSeq: number | null;
  /** Replies not deleted, for a thread root; 0 otherwise. */
  replyCount: number;
  lastReplySeq: number | null;
  mentions: string[];
  /** By key in code point order; `userIds` the first MAX_REACTION_USERS in code point order. */
  reactions: Reaction[];
}

export interface Reaction {
  key: string;
  count: number;
  userIds: string[];
}

/** One page of `message.changes`: messages whose latest change is after the cursor, by modSeq. */
export interface ChangesPage {
  messages: Message[];
  hasMore: boolean;
  /** The room's counter when the page was read. */
  lastModSeq: number;
  /** Changes after the cursor may be gone with messages below the room's floor; the page starts at the floor. */
  truncated: boolean;
}

export interface MessageVersion {
  version: number;
  body: string;
  editedAt: string | null;
}

export type Visibility = 'public' | 'private';

export interface Room {
  roomId: string;
  visibility: Visibility;
  title: string | null;
  metadata: Record<string, unknown> | null;
  lastSeq: number;
  lastModSeq: number;
  /** Days messages are kept; null: forever. */
  retentionDays: number | null;
  /** A member who is not a moderator may store one message per this many ms; 0: off. */
  slowModeMs: number;
  /** Every message with a lower seq is gone (retention); 1 until something is removed. */
  floorSeq: number;
  createdAt: string;
}

/** A member's standing in a room; owners and moderators are the room's moderators. */
export type Role = 'owner' | 'moderator' | 'member';

/** Why a connection left a room without asking: `room.removed { roomId, reason? }` (no reason: membership ended). */
export type RemovalReason = 'banned' | 'kicked';

/** An active mute or ban, as listed by moderation.list and GET /v1/rooms/{roomId}/mutes and …/bans (a mute's reason is null). */
export interface Sanction {
  userId: string;
  /** ISO 8601; null: until lifted. */
  until: string | null;
  reason: string | null;
}

/** The `moderation.list` reply: the room's mutes and bans in force, each sorted by userId (a mute's reason is null). */
export interface ModerationList {
  roomId: string;
  mutes: Sanction[];
  bans: Sanction[];
}

export interface Member {
  userId: string;
  role: Role;
  lastReadSeq: number;
}

export interface SessionPayload {
  userId: string;
  connectionId: string;
}

export interface JoinResult {
  roomId: string;
  lastSeq: number;
  lastReadSeq: number;
  /** lastSeq − lastReadSeq. */
  unread: number;
  missed?: Message[];
  hasMore?: boolean;
  /** With sinceSeq: messages after it are gone (below the room's floor); `missed` starts at the floor. */
  truncated?: boolean;
  lastModSeq: number;
  /** The user's role in the room (owners and moderators may delete any message). */
  role: Role;
  /** With sinceModSeq: the first page of message.changes after it. */
  changes?: Message[];
  hasMoreChanges?: boolean;
  /** With sinceModSeq: as message.changes' `truncated`. */
  changesTruncated?: boolean;
}

/** A room in `rooms.list`, with the user's read position. */
export interface RoomReadState {
  roomId: string;
  lastSeq: number;
  lastReadSeq: number;
  unread: number;
}

/** One `rooms.list` page, by roomId; `hasMore`: more rooms follow the last one (page on with `afterRoomId`). */
export interface RoomsPage {
  rooms: RoomReadState[];
  hasMore: boolean;
}

/** The `room.removed` push: the connection left the room (removed from it, or `reason` a ban or a kick). */
export interface RoomRemovedEvent {
  roomId: string;
  reason?: RemovalReason;
}

/** The `presence.joined` and `presence.left` pushes. */
export interface PresenceEvent {
  roomId: string;
  userId: string;
}

/** The `typing` push. */
export interface TypingEvent {
  roomId: string;
  userId: string;
  typing: boolean;
}

/** The `receipt` push: a user's read position in a room grew to `seq`. */
export interface ReceiptEvent {
  roomId: string;
  userId: string;
  seq: number;
}

export interface PresenceList {
  roomId: string;
  /** The first MAX_PRESENCE_LIST users present, by userId. */
  users: { userId: string }[];
  /** More users are present than `users` lists. */
  hasMore: boolean;
}

export interface HistoryPage {
  messages: Message[];
  hasMore: boolean;
}

/** The reply object every request gets, on every transport. */
export type Reply<T = unknown> = { ok: true; data: T } | { ok: false; error: ErrorBody };

/** A request naming one room. */
export interface RoomRef {
  roomId: string;
}

/** A request naming one message of a room. */
export interface MessageRef extends RoomRef {
  seq: number;
}

export interface JoinRequest extends RoomRef {
  /** Catch up on the messages after it (`missed`, `hasMore`, `truncated`). */
  sinceSeq?: number;
  /** Catch up on the changes after it (`changes`, `hasMoreChanges`, `changesTruncated`). */
  sinceModSeq?: number;
}

export interface SendRequest extends RoomRef {
  body: string;
  /** The sender's idempotency key: a repeat answers the message stored the first time. */
  clientMsgId?: string;
  /** A reply in the thread of this message. */
  parentSeq?: number;
  mentions?: string[];
}

export interface EditRequest extends MessageRef {
  body: string;
  mentions?: string[];
  /** Refused with CONFLICT unless the stored message is at this version. */
  expectedVersion?: number;
}

export interface ReactionRequest extends MessageRef {
  key: string;
}

export interface HistoryRequest extends RoomRef {
  beforeSeq?: number;
  afterSeq?: number;
  /** Only this thread's replies. */
  parentSeq?: number;
  limit?: number;
}

export interface ChangesRequest extends RoomRef {
  afterModSeq: number;
  limit?: number;
}

export interface RoomsListRequest {
  limit?: number;
  afterRoomId?: string;
}

export interface ModerationTarget extends RoomRef {
  userId: string;
}

export interface MuteRequest extends ModerationTarget {
  /** No duration: until unmuted. */
  durationMs?: number;
}

export interface BanRequest extends MuteRequest {
  reason?: string | null;
}

export interface AuthRefreshRequest {
  token: string;
}

/**
 * Every request a connection can make, by event name: what it sends and what an `ok` reply holds.
 * The gateway's handlers answer these types, and the client's requests are typed by it.
 */
export interface ClientEventMap {
  'room.join': { request: JoinRequest; reply: JoinResult };
  'room.leave': { request: RoomRef; reply: RoomRef };
  'message.send': { request: SendRequest; reply: Message };
  'message.history': { request: HistoryRequest; reply: HistoryPage };
  'message.edit': { request: EditRequest; reply: Message };
  'message.delete': { request: MessageRef; reply: Message };
  'reaction.add': { request: ReactionRequest; reply: Message };
  'reaction.remove': { request: ReactionRequest; reply: Message };
  'message.changes': { request: ChangesRequest; reply: ChangesPage };
  'message.read': { request: MessageRef; reply: RoomRef & { lastReadSeq: number } };
  'typing.start': { request: RoomRef; reply: RoomRef };
  'typing.stop': { request: RoomRef; reply: RoomRef };
  'rooms.list': { request: RoomsListRequest; reply: RoomsPage };
  'presence.list': { request: RoomRef; reply: PresenceList };
  'moderation.mute': { request: MuteRequest; reply: ModerationTarget };
  'moderation.unmute': { request: ModerationTarget; reply: ModerationTarget };
  'moderation.ban': { request: BanRequest; reply: ModerationTarget };
  'moderation.unban': { request: ModerationTarget; reply: ModerationTarget };
  'moderation.kick': { request: ModerationTarget; reply: ModerationTarget };
  'moderation.list': { request: RoomRef; reply: ModerationList };
  'auth.refresh': { request: AuthRefreshRequest; reply: { userId: string; expiresAt: string } };
}

export type ClientEvent = keyof ClientEventMap;
