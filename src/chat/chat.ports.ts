import type {
  ChangesPage,
  HistoryPage,
  Member,
  Message,
  MessageVersion,
  RemovalReason,
  Role,
  Room,
  RoomsPage,
  Sanction,
  ServerEvent,
  ServerEventMap,
  Visibility,
} from './chat.events.js';

export interface NewMessage {
  roomId: string;
  senderId: string;
  body: string;
  clientMsgId: string | null;
  /** The thread root's seq for a reply. */
  parentSeq: number | null;
  mentions: string[];
}

export interface PageQuery {
  roomId: string;
  beforeSeq?: number;
  afterSeq?: number;
  /** Only this thread's replies. */
  parentSeq?: number;
  limit: number;
}

/** A page as stored, with the room's floor read in the same snapshot (1 for a room that does not exist). */
export interface StoredPage extends HistoryPage {
  floorSeq: number;
}

export interface ChangesQuery {
  roomId: string;
  afterModSeq: number;
  limit: number;
}

/** A change of one stored message, as asked. */
export type MessageChange =
  | { kind: 'edit'; body: string; mentions?: string[]; expectedVersion?: number }
  | { kind: 'delete' }
  | { kind: 'reaction'; key: string; add: boolean };

/**
 * What a change did. `changed`: every message it changed, in modSeq order (the target first, then
 * a thread root whose reply count moved); `unchanged`: nothing to do (a repeated reaction, a
 * second delete); the rest refuse it, in the contract's order of precedence.
 */
export type ChangeResult =
  | { outcome: 'changed'; message: Message; changed: Message[] }
  | { outcome: 'unchanged'; message: Message }
  | { outcome: 'no_room' | 'forbidden' | 'no_message' | 'not_sender' | 'deleted' | 'too_many_keys' | 'too_many_user_keys' }
  | { outcome: 'conflict'; currentVersion: number };

/** One page of a user's rooms: those with roomId after `afterRoomId` (code point order), at most `limit`. */
export interface RoomsQuery {
  userId: string;
  afterRoomId?: string;
  limit: number;
}

/** What a user may do in a room, and where the room stands. */
export interface RoomAccess {
  visibility: Visibility;
  isMember: boolean;
  /** The user's role in the room: `member` without a membership row. */
  role: Role;
  lastSeq: number;
  lastModSeq: number;
  /** The user's read position in the room (0 before any message.read). */
  lastReadSeq: number;
}

/** What message.read did: `grew` when the stored read position moved forward. */
export type ReadResult = { outcome: 'read'; lastReadSeq: number; grew: boolean } | { outcome: 'forbidden' };

export interface RoomInput {
  roomId: string;
  visibility: Visibility;
  title: string | null;
  metadata: Record<string, unknown> | null;
  retentionDays: number | null;
  slowModeMs: number;
}

/** A moderator's action as stored: mutes and bans are kept (until null: without an end), every action is an event out. */
export type ModerationAction =
  | { kind: 'mute' | 'ban'; userId: string; until: Date | null; reason: string | null; by: string }
  | { kind: 'unmute' | 'unban' | 'kick'; userId: string; by: string };

/** A room's mutes and bans in force. */
export interface RoomSanctionList {
  mutes: Sanction[];
  bans: Sanction[];
  /** The room's slow mode (0: off) and, while it is on, the users it does not slow (owners and moderators). */
  slowModeMs: number;
  moderators: string[];
}

/** `bad_parent`: parentSeq is not a top-level, live message of the room (nothing stored). */
export type AppendResult =
  { outcome: 'created' | 'existing'; message: Message } | { outcome: 'forbidden' } | { outcome: 'missing' } | { outcome: 'bad_parent' };

/**
 * Storage of rooms, members and messages. An abstract class so it is both the interface and the
 * DI token. Implementations throw StorageUnavailableError when the database cannot confirm an outcome.
 */
export abstract class ChatStore {
  /**
   * Stores a message with the room's next seq, or returns the stored one for a repeated
   * clientMsgId. A room that does not exist is created (public) when `createRoom`, else the answer
   * is `missing` and nothing is stored. Unless `trusted`, a sender who is not a member of a private
   * room gets `forbidden` and nothing is stored. `onCreated` runs once when a new message commits,
   * before the result resolves, and also when the caller has already been answered UNAVAILABLE
   * (the commit came late): whatever is stored is delivered. A reply takes the room's next two
   * modSeqs, its own and its parent's; `onCreated` then also gets the parent's new state.
   */
  abstract append(
    input: NewMessage,
    options: { trusted: boolean; createRoom: boolean },
    onCreated: (message: Message, parent: Message | null) => void,
  ): Promise<AppendResult>;
  /**
   * Changes one message under its room's lock, taking the room's next modSeq for each message
   * changed, with their events in the same transaction. `actor` null is a trusted caller (no
   * membership or sender check). `onChanged` runs once after COMMIT, also when the caller was
   * already answered UNAVAILABLE. Nothing is created for a missing room or message.
   */
  abstract change(
    roomId: string,
    seq: number,
    actor: string | null,
    change: MessageChange,
    onChanged: (changed: Message[]) => void,
  ): Promise<ChangeResult>;
  /** Messages whose latest change is after `afterModSeq`, by modSeq; a missing room reads as empty, lastModSeq 0. */
  abstract changes(query: ChangesQuery): Promise<ChangesPage>;
  /** Every version of a message, oldest first (none once deleted); null when there is no such message. */
  abstract versions(roomId: string, seq: number): Promise<MessageVersion[] | null>;
  /**
   * Access to a room, or null when it does not exist (nothing is created). A user allowed in is
   * recorded as having joined it (for rooms.list), in the same round trip.
   */
  abstract openRoom(roomId: string, userId: string): Promise<RoomAccess | null>;
  /** Creates the room, public, unless it exists. */
  abstract createRoom(roomId: string): Promise<void>;
  /** Whether the room exists. Rooms are never deleted, so an implementation may remember a yes. */
  abstract roomExists(roomId: string): Promise<boolean>;
  /** Access to a room, or null when it does not exist. */
  abstract roomAccess(roomId: string, userId: string): Promise<RoomAccess | null>;
  abstract page(query: PageQuery): Promise<StoredPage>;
  /** Creates or replaces a room's settings; reports the visibility it had before (null: it is new). */
  abstract upsertRoom(input: RoomInput): Promise<{ room: Room; previous: Visibility | null }>;
  abstract getRoom(roomId: string): Promise<Room | null>;
  /**
   * Adds (with `role`, or keeping the role it has: a new member is a `member`) or removes a member;
   * null when the room does not exist, else whether membership changed (a new role alone is not).
   */
  abstract setMember(roomId: string, userId: string, member: boolean, role?: Role): Promise<{ changed: boolean } | null>;
  /** The members, or null when the room does not exist. */
  abstract listMembers(roomId: string): Promise<Member[] | null>;
  /**
   * Moves the user's read position forward to `seq`, capped at the room's lastSeq; never back. A
   * room that does not exist reads as an empty public room (nothing is stored).
   */
  abstract markRead(roomId: string, userId: string, seq: number): Promise<ReadResult>;
  /**
   * A page of the public rooms the user ever joined and the private rooms they are a member of
   * now, by roomId; `hasMore` when rooms follow the page.
   */
  abstract listRooms(query: RoomsQuery): Promise<RoomsPage>;
  /**
   * Erases what the user left: their messages become tombstones, their reactions, read state,
   * memberships, mutes and bans go. In bounded transactions, each under one room's lock, so a
   * user with many messages never holds a room long; `onChanged` runs after each one commits.
   * Counts what this call removed (zeros when nothing was left).
   */
  abstract eraseUser(userId: string, onChanged: (roomId: string, changed: Message[]) => void): Promise<ErasureResult>;
  /**
   * Stores a moderator's action (a mute or ban replaces the user's previous one of that kind) with
   * its event out, in one transaction; false when the room does not exist (nothing stored).
   */
  abstract moderate(roomId: string, action: ModerationAction): Promise<boolean>;
  /**
   * Whether each user may still be in each room, in one statement: the room is gone ('missing'),
   * a ban is in force ('banned'), the room is private and the user not a member ('outsider'), or
   * 'allowed'. Answers in the order of `joins`.
   */
  abstract judgeJoins(joins: readonly JoinToJudge[]): Promise<JoinStanding[]>;
  /** The mutes and bans in force (by userId) and slow mode of those of `roomIds` that exist, in one statement. */
  abstract sanctions(roomIds: string[]): Promise<Map<string, RoomSanctionList>>;
  /** Everything stored about the user, read page by page (bounded memory; the consumer sets the pace). */
  abstract exportUser(userId: string): AsyncIterable<UserExportLine>;
}

/** A user's join to a room, as the access reconciler asks about it. */
export interface JoinToJudge {
  roomId: string;
  userId: string;
}

export type JoinStanding = 'allowed' | 'banned' | 'outsider' | 'missing';

export interface ErasureCounts {
  messagesDeleted: number;
  reactionsRemoved: number;
  roomsLeft: number;
}

/** What an erasure did, and the rooms whose mutes or bans of the user it lifted (their caches are stale). */
export interface ErasureResult extends ErasureCounts {
  sanctionedRooms: string[];
}

/** One line of a user's export (GET /v1/users/{userId}/export). */
export type UserExportLine =
  | ({ type: 'message' } & Message)
  | { type: 'reaction'; roomId: string; seq: number; key: string }
  | { type: 'membership'; roomId: string; role: Role }
  | { type: 'read'; roomId: string; lastReadSeq: number };

/** Live delivery to every connection that joined a room, on every instance. */
export abstract class RoomBroadcaster {
  abstract publish<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E]): void;
  /** Like publish, but none of `exceptUserId`'s connections get it. */
  abstract publishToOthers<E extends ServerEvent>(roomId: string, event: E, data: ServerEventMap[E], exceptUserId: string): void;
  /** Takes these users' connections out of the room everywhere; each gets `room.removed`. */
  abstract removeUsers(roomId: string, userIds: string[]): void;
  /** Takes every connection whose user is not among `memberIds` out of the room everywhere (the room became private). */
  abstract removeNonMembers(roomId: string, memberIds: string[]): void;
  /**
   * The room's mutes or bans changed: every instance forgets what it read of them (RoomSanctions)
   * and, with `removal`, takes the user's connections out of the room (`room.removed { roomId,
   * reason }`). Resolves once every instance confirmed, or after a bounded wait (an instance that
   * missed it reads them again within SANCTIONS_FRESH_MS); never rejects.
   */
  abstract moderated(roomId: string, removal: { userId: string; reason: RemovalReason } | null): Promise<void>;
  /**
   * False while the relay to the other instances is down (Redis away). A ban or a removal is
   * stored, and every instance re-reads them when the relay is back; a kick is not, so a kick
   * made meanwhile would never reach the other instances.
   */
  abstract relayReachable(): boolean;
}

/** A connection as the domain sees it: something that can be subscribed to a room's pushes. */
export interface RoomSubscriber {
  /** Throws LIMIT_EXCEEDED when joining would pass the connection's room cap; checked before anything is stored. */
  assertCanJoin(roomId: string): void;
  /** Resolves once the room's pushes from every instance reach the subscriber (its relay subscription is confirmed). */
  join(roomId: string): Promise<void>;
  leave(roomId: string): void;
}

/** A connection that can type: the tracker keys typing state by it and stops it when it closes. */
export interface TypingSubscriber {
  onClose(listener: () => void): void;
  /** Leaving a joined room, however it happens (room.leave, an eviction). */
  onLeave(listener: (roomId: string) => void): void;
}

/** Limits the chat domain enforces; provided from the validated configuration. */
export abstract class ChatLimits {
  abstract readonly maxMessageLength: number;
  abstract readonly maxHistoryPage: number;
  /** The slow-consumer bound (MAX_BUFFERED_BYTES): history pages stay well below it. */
  abstract readonly maxBufferedBytes: number;
  /** Rooms one user may create implicitly (room.join, message.send) per window. */
  abstract readonly roomCreations: { perUser: number; windowMs: number };
}

/**
 * Counts a user's message.send requests in fixed windows (RATE_LIMIT_USER_MESSAGES), shared by
 * every instance where it can be; like RoomCreationCounter, hit() never throws and answers quickly.
 */
export abstract class UserMessageCounter {
  /** Counts one message: how many the user sent in the current window, and when the window ends (epoch ms). */
  abstract hit(userId: string, windowMs: number): Promise<{ count: number; resetAt: number }>;
}

/**
 * Counts one user's room creations in fixed windows, shared by every instance where it can be;
 * hit() never throws and answers quickly (an instance counts alone while the shared count is out
 * of reach, rather than refusing or delaying).
 */
export abstract class RoomCreationCounter {
  /** Counts one creation: how many the user made in the current window, and when the window ends (epoch ms). */
  abstract hit(userId: string, windowMs: number): Promise<{ count: number; resetAt: number }>;
}

/**
 * Slow mode's slots, one per user per room, shared by every instance where it can be. A slot is
 * held by a `holder` (the message's clientMsgId, or a token of its own) until it expires; take()
 * never throws and answers quickly (an instance keeps slots alone while the shared ones are out
 * of reach).
 */
export abstract class SlowModeSlots {
  /** `taken`: the slot is now `holder`'s for `intervalMs`; `held`: it already was; else ms until it is free. */
  abstract take(roomId: string, userId: string, intervalMs: number, holder: string): Promise<'taken' | 'held' | number>;
  /** Frees the slot if `holder` still holds it (its message was not stored). */
  abstract giveBack(roomId: string, userId: string, holder: string): Promise<void>;
}

/** A user appearing in a room (first connection joined) or leaving it (last connection gone). */
export interface PresenceChange {
  kind: 'joined' | 'left';
  roomId: string;
  userId: string;
}

/**
 * Which users have a connection joined to each room, across every instance. enter/exit never
 * throw and never wait: presence degrades on its own (e.g. while Redis is down) instead of
 * failing joins. Each change is reported to the listeners of exactly one instance (the one that
 * decided it), so publishing it from there pushes it once everywhere.
 */
export abstract class PresenceStore {
  abstract enter(roomId: string, userId: string, connectionId: string): void;
  abstract exit(roomId: string, connectionId: string): void;
  /** The users present in the room, sorted; throws ChatError UNAVAILABLE when it cannot tell. */
  abstract list(roomId: string): Promise<string[]>;
  abstract onChange(listener: (change: PresenceChange) => void): void;
}

/** What the pre-send hook is asked: a message (or an edit) from a socket, before it is stored. */
export interface PresendRequest {
  type: 'message.send' | 'message.edit';
  roomId: string;
  senderId: string;
  body: string;
  mentions: string[];
  parentSeq: number | null;
  /** The edited message's seq (edits only). */
  seq?: number;
}

/** The hook's valid answers. */
export type PresendAnswer = { action: 'allow' } | { action: 'modify'; body: string } | { action: 'reject'; reason: string | null };

/**
 * The pre-send hook (PRESEND_HOOK_URL), when one is configured. ask() never throws: null is "no
 * valid answer" (none in time, no slot free, a bad answer, a modified body `acceptBody` refuses),
 * and `failOpen` says whether the message is then stored as sent.
 */
export abstract class PresendHook {
  abstract readonly failOpen: boolean;
  abstract ask(request: PresendRequest, acceptBody: (body: string) => boolean): Promise<PresendAnswer | null>;
}
