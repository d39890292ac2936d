import { Inject, Injectable, Optional } from '@nestjs/common';
import {
  SERVER_EVENTS,
  SYSTEM_SENDER_ID,
  type ChangesPage,
  type HistoryPage,
  type JoinResult,
  type Member,
  type Message,
  type MessageVersion,
  type ReceiptEvent,
  type Room,
  type RoomsPage,
  type TypingEvent,
} from './chat.events.js';
import {
  ChatLimits,
  ChatStore,
  PresendHook,
  RoomBroadcaster,
  RoomCreationCounter,
  type ChangeResult,
  type ErasureCounts,
  type MessageChange,
  type NewMessage,
  type PresendRequest,
  type RoomSubscriber,
  type TypingSubscriber,
  type UserExportLine,
} from './chat.ports.js';
import { ChatError } from './chat.errors.js';
import { allow, checkAccess, forbidden, notFound } from './room-access.js';
import {
  createSchemas,
  userRef,
  isSystemPost,
  MAX_CHANGES_PAGE,
  MAX_PAGE,
  MAX_REACTION_KEYS,
  MAX_REACTION_KEYS_PER_USER,
  parseInput,
  type ChatSchemas,
} from './chat.schemas.js';
import { fitPage, fitRooms, PAGE_SHARE_OF_BUFFER } from './page-budget.js';
import { RoomSanctions } from './room-sanctions.js';
import { TypingTracker } from './typing-tracker.js';

/**
 * The chat domain. Every entry point (socket.io, raw WebSocket, HTTP) calls these methods with
 * untrusted data and gets validated, authorised, stored and broadcast results back. A `userId`
 * of null marks a trusted caller (a backend service over HTTP), which skips membership checks.
 */
@Injectable()
export class ChatService {
  private readonly schemas: ChatSchemas;
  /** Typing is never stored: each instance tracks its own connections' typing (see TypingTracker). */
  private readonly typing: TypingTracker<object>;
  /** Connections whose close and leaves already end their typing. */
  private readonly typingClosers = new WeakSet<TypingSubscriber>();
  /** Bytes of JSON one page (history, join's `missed`, rooms.list) may take. */
  private readonly pageBudgetBytes: number;
  private readonly roomCreations: ChatLimits['roomCreations'];
  /** Rooms this instance is creating for a user right now (see send and createRoomFor). */
  private readonly creating = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: ChatStore,
    private readonly broadcaster: RoomBroadcaster,
    limits: ChatLimits,
    private readonly creations: RoomCreationCounter,
    /** Mutes and bans, checked on every room request of a user (not of trusted callers). */
    private readonly sanctions: RoomSanctions,
    /** The pre-send hook (PRESEND_HOOK_URL), asked about every message and edit from a socket; null without one. */
    @Optional() @Inject(PresendHook) private readonly presend: PresendHook | null = null,
  ) {
    this.schemas = createSchemas(limits);
    this.roomCreations = limits.roomCreations;
    this.pageBudgetBytes = Math.floor(limits.maxBufferedBytes * PAGE_SHARE_OF_BUFFER);
    this.typing = new TypingTracker((roomId, userId, typing) =>
      this.broadcaster.publishToOthers(roomId, SERVER_EVENTS.typing, { roomId, userId, typing } satisfies TypingEvent, userId),
    );
  }

  /**
   * Access is checked before subscribing (a non-member never receives a push) and again after,
   * with the read that follows the subscription: a message committed meanwhile arrives live or in
   * `missed` (clients de-duplicate by seq), and a membership removed meanwhile is caught.
   */
  async join(userId: string, data: unknown, subscriber: RoomSubscriber): Promise<JoinResult> {
    const { roomId, sinceSeq, sinceModSeq } = parseInput(this.schemas.join, data);
    subscriber.assertCanJoin(roomId);
    await this.sanctions.assertNotBanned(roomId, userId);
    let opened = await this.store.openRoom(roomId, userId);
    if (!opened) {
      await this.createRoomFor(userId, roomId);
      opened = await this.store.openRoom(roomId, userId);
    }
    allow(opened);
    // Awaited before the read, so that a message committed after the read reaches it live.
    await subscriber.join(roomId);
    try {
      // A ban that came while subscribing evicted nothing here yet: it is caught by this second look.
      await this.sanctions.assertNotBanned(roomId, userId);
      const access = allow(await this.store.roomAccess(roomId, userId));
      const result: JoinResult = {
        roomId,
        lastSeq: access.lastSeq,
        ...readPosition(access.lastSeq, access.lastReadSeq),
        lastModSeq: access.lastModSeq,
        role: access.role,
      };
      if (sinceSeq !== undefined) {
        const stored = await this.store.page({ roomId, afterSeq: sinceSeq, limit: MAX_PAGE });
        const { messages, hasMore } = fitPage(stored, true, this.pageBudgetBytes);
        result.lastSeq = Math.max(access.lastSeq, messages.at(-1)?.seq ?? 0);
        // Messages sinceSeq + 1 … floorSeq − 1 are gone (retention): `missed` starts at the floor.
        const truncated = sinceSeq < stored.floorSeq - 1;
        Object.assign(result, readPosition(result.lastSeq, access.lastReadSeq), { missed: messages, hasMore, truncated });
      }
      if (sinceModSeq !== undefined) {
        const page = await this.changesPage({ roomId, afterModSeq: sinceModSeq, limit: MAX_CHANGES_PAGE });
        result.lastModSeq = Math.max(result.lastModSeq, page.lastModSeq);
        result.changes = page.messages;
        result.hasMoreChanges = page.hasMore;
        result.changesTruncated = page.truncated;
      }
      return result;
    } catch (err) {
      subscriber.leave(roomId);
      throw err;
    }
  }

  /** A banned user's leave is refused like every room event of theirs (the ban already took them out). */
  async leave(userId: string, data: unknown, subscriber: RoomSubscriber): Promise<{ roomId: string }> {
    const { roomId } = parseInput(this.schemas.leave, data);
    await this.sanctions.assertNotBanned(roomId, userId);
    subscriber.leave(roomId);
    this.typing.stop(subscriber, roomId);
    return { roomId };
  }

  /**
   * Starts or renews the connection's typing in a room; others' joined connections get `typing`
   * only when the user starts. Access is checked on every start, renewals included: a member
   * removed while typing must not keep renewing (one indexed read every few seconds per typer is
   * cheap). A refused renewal ends the typing it would have renewed. Joining is not required.
   */
  async typingStart(userId: string, data: unknown, conn: TypingSubscriber): Promise<{ roomId: string }> {
    const { roomId } = parseInput(this.schemas.roomRef, data);
    try {
      await this.checkRoomAccess(roomId, userId);
    } catch (err) {
      if (err instanceof ChatError && err.code === 'FORBIDDEN') this.typing.stop(conn, roomId);
      throw err;
    }
    this.typing.start(conn, userId, roomId);
    if (!this.typingClosers.has(conn)) {
      this.typingClosers.add(conn);
      conn.onClose(() => this.typing.drop(conn));
      // An eviction (room.removed) takes the connection out without a room.leave request.
      conn.onLeave((left) => this.typing.stop(conn, left));
    }
    return { roomId };
  }

  async typingStop(userId: string, data: unknown, conn: TypingSubscriber): Promise<{ roomId: string }> {
    const { roomId } = parseInput(this.schemas.roomRef, data);
    if (!this.typing.isTyping(conn, roomId)) await this.checkRoomAccess(roomId, userId);
    this.typing.stop(conn, roomId);
    return { roomId };
  }

  /** Marks messages read up to `seq`; the room's joined connections get `receipt` when the position grows. */
  async read(userId: string, data: unknown): Promise<{ roomId: string; lastReadSeq: number }> {
    const { roomId, seq } = parseInput(this.schemas.read, data);
    await this.sanctions.assertNotBanned(roomId, userId);
    const result = await this.store.markRead(roomId, userId, seq);
    if (result.outcome === 'forbidden') throw forbidden(roomId);
    if (result.grew)
      this.broadcaster.publish(roomId, SERVER_EVENTS.receipt, { roomId, userId, seq: result.lastReadSeq } satisfies ReceiptEvent);
    return { roomId, lastReadSeq: result.lastReadSeq };
  }

  /** One page of the user's rooms by roomId, cut to the page budget (then `hasMore: true`). */
  async listRooms(userId: string, data: unknown): Promise<RoomsPage> {
    const { limit, afterRoomId } = parseInput(this.schemas.roomsList, data);
    return fitRooms(await this.store.listRooms({ userId, afterRoomId, limit }), this.pageBudgetBytes);
  }

  /**
   * A user's message. Resolves only after COMMIT; a repeated clientMsgId returns the stored message
   * without a new broadcast. A room that does not exist is created first, within the sender's
   * room-creation budget. In slow mode the message takes the sender's slot first, given back when
   * nothing new is stored.
   */
  async send(senderId: string, data: unknown): Promise<Message> {
    const input = parseInput(this.schemas.send, data);
    const message = newMessage(input, senderId);
    await this.sanctions.assertMaySpeak(message.roomId, senderId);
    const giveBack = await this.sanctions.takeSlowModeSlot(message.roomId, senderId, message.clientMsgId);
    if (!giveBack) return (await this.storeSent(message, senderId)).message;
    let stored: { message: Message; created: boolean } | undefined;
    try {
      stored = await this.storeSent(message, senderId);
      return stored.message;
    } finally {
      if (!stored?.created) void giveBack().catch(() => undefined);
    }
  }

  /** send() past the sanctions: the pre-send hook, then the append (creating the room when it is missing). */
  private async storeSent(message: NewMessage, senderId: string): Promise<{ message: Message; created: boolean }> {
    // Without a hook a send builds no request and waits on nothing: every message passes here.
    if (this.presend)
      message.body = await this.screened(this.presend, {
        type: 'message.send',
        roomId: message.roomId,
        senderId,
        body: message.body,
        mentions: message.mentions,
        parentSeq: message.parentSeq,
      });
    // The store tells a missing room in the append itself (the lookup its batch makes anyway), so
    // a send to an existing room, nearly all of them, costs nothing for the budget.
    for (;;) {
      await this.creating.get(message.roomId)?.catch(() => undefined);
      const stored = await this.append(message, { trusted: false, createRoom: false });
      if (stored) return stored;
      // Another request here is creating the room: send again once it is done (or has failed).
      if (this.creating.has(message.roomId)) continue;
      const created = await this.whileCreating(
        message.roomId,
        this.chargeRoomCreation(senderId).then(() => this.append(message, { trusted: false, createRoom: true })),
      );
      return created!;
    }
  }

  /**
   * A message posted by a trusted service on behalf of a user, or a system message (`system: true`,
   * no senderId, stored with SYSTEM_SENDER_ID); `created` is false for a repeated clientMsgId.
   */
  async post(data: unknown): Promise<{ message: Message; created: boolean }> {
    const input = isSystemPost(data)
      ? { ...parseInput(this.schemas.systemPost, data), senderId: SYSTEM_SENDER_ID }
      : parseInput(this.schemas.post, data);
    const stored = await this.append(newMessage(input, input.senderId), { trusted: true, createRoom: true });
    return stored!;
  }

  /** Edits a message: over a socket only its sender's; `userId` null (a trusted service) any. */
  async edit(userId: string | null, data: unknown): Promise<Message> {
    const { roomId, seq, body: asked, mentions, expectedVersion } = parseInput(this.schemas.edit, data);
    if (userId !== null) await this.sanctions.assertMaySpeak(roomId, userId);
    const body = userId === null || !this.presend ? asked : await this.screenedEdit(this.presend, userId, roomId, seq, asked, mentions);
    return this.change(roomId, seq, userId, { kind: 'edit', body, mentions, expectedVersion });
  }

  /** Deletes a message (a tombstone stays); deleting a tombstone answers it, unchanged. */
  async deleteMessage(userId: string | null, data: unknown): Promise<Message> {
    const { roomId, seq } = parseInput(this.schemas.messageRef, data);
    if (userId !== null) await this.sanctions.assertNotBanned(roomId, userId);
    return this.change(roomId, seq, userId, { kind: 'delete' });
  }

  /** Adds (or removes) the user's reaction `key`; one the user already has (or has not) changes nothing. */
  async react(userId: string, data: unknown, add: boolean): Promise<Message> {
    const { roomId, seq, key } = parseInput(this.schemas.reaction, data);
    // A muted user may still take a reaction back.
    if (add) await this.sanctions.assertMaySpeak(roomId, userId);
    else await this.sanctions.assertNotBanned(roomId, userId);
    return this.change(roomId, seq, userId, { kind: 'reaction', key, add });
  }

  /**
   * The body to store for a socket's edit after the pre-send hook. An edit the store will refuse
   * anyway (no such message, someone else's, deleted) is not worth asking about: it goes on to
   * that refusal. The stored message gives the hook its parentSeq (and mentions when the edit keeps them).
   */
  private async screenedEdit(
    hook: PresendHook,
    userId: string,
    roomId: string,
    seq: number,
    body: string,
    mentions?: string[],
  ): Promise<string> {
    const [stored] = (await this.store.page({ roomId, afterSeq: seq - 1, limit: 1 })).messages;
    if (!stored || stored.seq !== seq || stored.senderId !== userId || stored.deletedAt !== null) return body;
    return this.screened(hook, {
      type: 'message.edit',
      roomId,
      senderId: userId,
      body,
      mentions: mentions ?? stored.mentions,
      parentSeq: stored.parentSeq,
      seq,
    });
  }

  /**
   * The one place the pre-send hook is asked: the body to store (the sent one, or the hook's
   * modified one, validated like any body), or the refusal. No valid answer stores the message as
   * sent with PRESEND_HOOK_FAIL_OPEN=true, else answers UNAVAILABLE (nothing stored).
   */
  private async screened(hook: PresendHook, request: PresendRequest): Promise<string> {
    const answer = await hook.ask(request, (body) => this.schemas.send.shape.body.safeParse(body).success);
    if (!answer) {
      if (hook.failOpen) return request.body;
      throw new ChatError('UNAVAILABLE', 'the pre-send hook gave no valid answer, try again');
    }
    if (answer.action === 'reject')
      throw new ChatError('FORBIDDEN', answer.reason ?? 'rejected by the pre-send hook', { reason: 'rejected', message: answer.reason });
    return answer.action === 'modify' ? answer.body : request.body;
  }

  /** The room's messages whose latest change is after `afterModSeq`, by modSeq: catch-up on every change. */
  async changes(userId: string | null, data: unknown): Promise<ChangesPage> {
    const query = parseInput(this.schemas.changes, data);
    if (userId !== null) await this.checkRoomAccess(query.roomId, userId);
    return this.changesPage(query);
  }

  /** Every version of a message, oldest first; none after a delete. Trusted callers only. */
  async versions(data: unknown): Promise<{ versions: MessageVersion[] }> {
    const { roomId, seq } = parseInput(this.schemas.messageRef, data);
    const versions = await this.store.versions(roomId, seq);
    if (!versions) throw messageNotFound(roomId, seq);
    return { versions };
  }

  async history(userId: string | null, data: unknown): Promise<HistoryPage> {
    const query = parseInput(this.schemas.history, data);
    if (userId !== null) await this.checkRoomAccess(query.roomId, userId);
    const { messages, hasMore } = await this.store.page(query);
    return fitPage({ messages, hasMore }, query.afterSeq !== undefined, this.pageBudgetBytes);
  }

  /** For reads that need no join: a ban, then membership of a private room. */
  private async checkRoomAccess(roomId: string, userId: string): Promise<void> {
    await this.sanctions.assertNotBanned(roomId, userId);
    await checkAccess(this.store, roomId, userId);
  }

  /** A changes page cut to the page budget (then `hasMore: true`; the client pages on from the last modSeq it got). */
  private async changesPage(query: Parameters<ChatStore['changes']>[0]): Promise<ChangesPage> {
    const page = await this.store.changes(query);
    const { messages, hasMore } = fitPage({ messages: page.messages, hasMore: page.hasMore }, true, this.pageBudgetBytes);
    return { messages, hasMore, lastModSeq: page.lastModSeq, truncated: page.truncated };
  }

  /** Stores a change; every message it changed is pushed as message.updated once it commits. */
  private async change(roomId: string, seq: number, actor: string | null, change: MessageChange): Promise<Message> {
    const result = await this.store.change(roomId, seq, actor, change, (changed) => {
      for (const message of changed) this.broadcaster.publish(roomId, SERVER_EVENTS.messageUpdated, message);
    });
    return changeOutcome(roomId, seq, result);
  }

  /**
   * Erases a user's data (trusted callers only); every message it changed is pushed as
   * message.updated after its batch commits. Closing the user's connections is the transport's part.
   */
  async eraseUser(data: unknown): Promise<ErasureCounts> {
    const { userId } = parseInput(userRef, data);
    const { sanctionedRooms, ...counts } = await this.store.eraseUser(userId, (roomId, changed) => {
      for (const message of changed) this.broadcaster.publish(roomId, SERVER_EVENTS.messageUpdated, message);
    });
    await Promise.all(sanctionedRooms.map((roomId) => this.broadcaster.moderated(roomId, null)));
    return counts;
  }

  /** Validates the user id at once (before anything is sent), then reads the export as the consumer pulls it. */
  exportUser(data: unknown): AsyncIterable<UserExportLine> {
    const { userId } = parseInput(userRef, data);
    return this.store.exportUser(userId);
  }

  /**
   * Creates or replaces a room. A room that becomes private loses its non-members' live
   * connections; the member list travels with the eviction, so every instance applies it the
   * moment it arrives (this one before the reply) instead of after a lookup of its own.
   */
  async upsertRoom(data: unknown): Promise<{ room: Room; created: boolean }> {
    const input = parseInput(this.schemas.room, data);
    const { room, previous } = await this.store.upsertRoom(input);
    // Every instance forgets the room's cached rules (slow mode) before the answer.
    await this.broadcaster.moderated(room.roomId, null);
    if (room.visibility === 'private' && previous !== 'private') {
      const members = (await this.store.listMembers(room.roomId)) ?? [];
      this.broadcaster.removeNonMembers(
        room.roomId,
        members.map((m) => m.userId),
      );
    }
    return { room, created: previous === null };
  }

  async getRoom(data: unknown): Promise<Room> {
    const { roomId } = parseInput(this.schemas.roomRef, data);
    return (await this.store.getRoom(roomId)) ?? notFound(roomId);
  }

  async addMember(data: unknown): Promise<void> {
    const { roomId, userId, role } = parseInput(this.schemas.member, data);
    if (!(await this.store.setMember(roomId, userId, true, role))) notFound(roomId);
    // A new role may make them a moderator, who slow mode does not slow: every instance reads it again.
    if (role) await this.broadcaster.moderated(roomId, null);
  }

  /**
   * Removing a member takes that user's live connections out of the room on every instance. Done
   * on every successful call, changed or not, so a retry after UNAVAILABLE still evicts.
   */
  async removeMember(data: unknown): Promise<void> {
    const { roomId, userId } = parseInput(this.schemas.member, data);
    if (!(await this.store.setMember(roomId, userId, false))) notFound(roomId);
    this.broadcaster.removeUsers(roomId, [userId]);
    // They may have been a moderator, whom slow mode does not slow.
    await this.broadcaster.moderated(roomId, null);
  }

  async listMembers(data: unknown): Promise<Member[]> {
    const { roomId } = parseInput(this.schemas.roomRef, data);
    return (await this.store.listMembers(roomId)) ?? notFound(roomId);
  }

  /**
   * Creates a room a user's join found missing, charged to the user's budget (ROOM_CREATE_LIMIT
   * per ROOM_CREATE_WINDOW_MS, shared by every instance): over it, RATE_LIMITED. A send creates
   * its room in its own append instead (see send), under the same budget and the same `creating`.
   *
   * Charged after finding the room missing and before creating it, not after: a refused creation
   * then stores nothing (no room to undo, no message), and joins of existing rooms cost nothing
   * extra (join's access read already tells). A burst of requests into a new room is charged
   * once: each waits for a creation this instance has under way, then looks again, since the
   * answer that sent it here may predate a creation that finished meanwhile (the store remembers
   * rooms created here, so that costs a query only for a room that is really new). Still charged
   * twice: the same room created at the same moment on two instances, or a creation whose storage
   * then fails. Trusted callers (HTTP API, commands) create rooms without a budget.
   */
  private async createRoomFor(userId: string, roomId: string): Promise<void> {
    for (;;) {
      await this.creating.get(roomId)?.catch(() => undefined);
      if (await this.store.roomExists(roomId)) return;
      // Nobody started creating it while we looked: it is ours to create (nothing awaits until set below).
      if (!this.creating.has(roomId)) break;
    }
    await this.whileCreating(
      roomId,
      this.chargeRoomCreation(userId).then(() => this.store.createRoom(roomId)),
    );
  }

  /** Marks `roomId` as being created by this instance until `creation` settles. */
  private async whileCreating<T>(roomId: string, creation: Promise<T>): Promise<T> {
    this.creating.set(roomId, creation);
    try {
      return await creation;
    } finally {
      this.creating.delete(roomId);
    }
  }

  private async chargeRoomCreation(userId: string): Promise<void> {
    const { perUser, windowMs } = this.roomCreations;
    const { count, resetAt } = await this.creations.hit(userId, windowMs);
    if (count > perUser)
      throw new ChatError('RATE_LIMITED', `at most ${perUser} new rooms per ${windowMs} ms`, {
        retryAfterMs: Math.max(1, resetAt - Date.now()),
      });
  }

  /** The stored message, or null when its room is missing and `createRoom` was not allowed. */
  private async append(
    input: Parameters<ChatStore['append']>[0],
    options: Parameters<ChatStore['append']>[1],
  ): Promise<{ message: Message; created: boolean } | null> {
    // Published at COMMIT by the store, so a message that commits after its sender was answered
    // UNAVAILABLE is still delivered (a retry then finds it stored and publishes nothing).
    const result = await this.store.append(input, options, (message, parent) => {
      this.broadcaster.publish(input.roomId, SERVER_EVENTS.messageNew, message);
      if (parent) this.broadcaster.publish(input.roomId, SERVER_EVENTS.messageUpdated, parent);
    });
    if (result.outcome === 'forbidden') throw forbidden(input.roomId);
    // A room that does not exist has no thread to reply in: refused before anything creates it.
    if (result.outcome === 'bad_parent' || (result.outcome === 'missing' && input.parentSeq !== null)) throw badParent();
    if (result.outcome === 'missing') return null;
    return { message: result.message, created: result.outcome === 'created' };
  }
}

function newMessage(
  input: { roomId: string; body: string; clientMsgId?: string; parentSeq?: number; mentions?: string[] },
  senderId: string,
): NewMessage {
  return {
    roomId: input.roomId,
    senderId,
    body: input.body,
    clientMsgId: input.clientMsgId ?? null,
    parentSeq: input.parentSeq ?? null,
    mentions: input.mentions ?? [],
  };
}

function badParent(): ChatError {
  return new ChatError('VALIDATION_FAILED', 'parentSeq: must be a top-level message of the room that is not deleted', {
    fields: ['parentSeq'],
  });
}

function messageNotFound(roomId: string, seq: number): ChatError {
  return new ChatError('NOT_FOUND', `room ${roomId} has no message ${seq}`);
}

/** The changed (or unchanged) message, or the refusal as the contract names it. */
function changeOutcome(roomId: string, seq: number, result: ChangeResult): Message {
  switch (result.outcome) {
    case 'changed':
    case 'unchanged':
      return result.message;
    case 'no_room':
      return notFound(roomId);
    case 'forbidden':
      throw forbidden(roomId);
    case 'no_message':
      throw messageNotFound(roomId, seq);
    case 'not_sender':
      throw new ChatError('FORBIDDEN', 'only the sender may change this message');
    case 'deleted':
      throw new ChatError('NOT_FOUND', `message ${seq} of room ${roomId} was deleted`);
    case 'conflict':
      throw new ChatError('CONFLICT', 'the message has changed since expectedVersion', { currentVersion: result.currentVersion });
    case 'too_many_keys':
      throw new ChatError('LIMIT_EXCEEDED', `a message holds at most ${MAX_REACTION_KEYS} reaction keys`);
    case 'too_many_user_keys':
      throw new ChatError('LIMIT_EXCEEDED', `a user may put at most ${MAX_REACTION_KEYS_PER_USER} reaction keys on a message`);
  }
}

function readPosition(lastSeq: number, lastReadSeq: number): { lastReadSeq: number; unread: number } {
  return { lastReadSeq, unread: Math.max(0, lastSeq - lastReadSeq) };
}
