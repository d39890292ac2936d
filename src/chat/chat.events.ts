/** The wire protocol in code: event names and payloads shared by every transport. */

export const CLIENT_EVENTS = {
  roomJoin: 'room.join',
  roomLeave: 'room.leave',
  messageSend: 'message.send',
  messageHistory: 'message.history',
  authRefresh: 'auth.refresh',
  typingStart: 'typing.start',
  typingStop: 'typing.stop',
  messageRead: 'message.read',
  roomsList: 'rooms.list',
  presenceList: 'presence.list',
  messageEdit: 'message.edit',
  messageDelete: 'message.delete',
  reactionAdd: 'reaction.add',
  reactionRemove: 'reaction.remove',
  messageChanges: 'message.changes',
  moderationMute: 'moderation.mute',
  moderationUnmute: 'moderation.unmute',
  moderationBan: 'moderation.ban',
  moderationUnban: 'moderation.unban',
  moderationKick: 'moderation.kick',
} as const;

export const SERVER_EVENTS = {
  session: 'session',
  messageNew: 'message.new',
  /** A stored message changed (edit, delete, reaction, reply count): its latest state. */
  messageUpdated: 'message.updated',
  roomRemoved: 'room.removed',
  presenceJoined: 'presence.joined',
  presenceLeft: 'presence.left',
  error: 'error',
  typing: 'typing',
  receipt: 'receipt',
} as const;

/**
 * The senderId of system messages (posted over HTTP with `system: true`). Reserved: a token whose
 * `sub` is this id is refused, so no user can speak as the system.
 */
export const SYSTEM_SENDER_ID = 'system';

export type ServerEvent = (typeof SERVER_EVENTS)[keyof typeof SERVER_EVENTS];

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
export const ROLES = ['owner', 'moderator', 'member'] as const;
export type Role = (typeof ROLES)[number];

/** Why a connection left a room without asking: `room.removed { roomId, reason? }` (no reason: membership ended). */
export type RemovalReason = 'banned' | 'kicked';

/** An active mute or ban, as listed by GET /v1/rooms/{roomId}/mutes and …/bans (a mute's reason is null). */
export interface Sanction {
  userId: string;
  /** ISO 8601; null: until lifted. */
  until: string | null;
  reason: string | null;
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
export type Reply<T = unknown> =
  { ok: true; data: T } | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };
