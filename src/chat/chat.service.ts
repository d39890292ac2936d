import { Injectable } from '@nestjs/common';
import {
  SERVER_EVENTS,
  SYSTEM_SENDER_ID,
  type HistoryPage,
  type JoinResult,
  type Member,
  type Message,
  type ReceiptEvent,
  type Room,
  type RoomReadState,
  type TypingEvent,
} from './chat.events.js';
import { ChatLimits, ChatStore, RoomBroadcaster, type RoomSubscriber, type TypingSubscriber } from './chat.ports.js';
import { ChatError } from './chat.errors.js';
import { allow, checkAccess, forbidden, notFound } from './room-access.js';
import { createSchemas, isSystemPost, MAX_PAGE, parseInput, type ChatSchemas } from './chat.schemas.js';
import { fitPage, PAGE_SHARE_OF_BUFFER } from './page-budget.js';
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
  /** Bytes of JSON one page of messages (history, join's `missed`) may take. */
  private readonly pageBudgetBytes: number;

  constructor(
    private readonly store: ChatStore,
    private readonly broadcaster: RoomBroadcaster,
    limits: ChatLimits,
  ) {
    this.schemas = createSchemas(limits);
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
    const { roomId, sinceSeq } = parseInput(this.schemas.join, data);
    subscriber.assertCanJoin(roomId);
    allow(await this.store.openRoom(roomId, userId));
    subscriber.join(roomId);
    try {
      const access = allow(await this.store.roomAccess(roomId, userId));
      const { lastReadSeq } = access;
      if (sinceSeq === undefined) return { roomId, lastSeq: access.lastSeq, ...readPosition(access.lastSeq, lastReadSeq) };
      const { messages, hasMore } = fitPage(
        await this.store.page({ roomId, afterSeq: sinceSeq, limit: MAX_PAGE }),
        true,
        this.pageBudgetBytes,
      );
      const lastSeq = Math.max(access.lastSeq, messages.at(-1)?.seq ?? 0);
      return { roomId, lastSeq, ...readPosition(lastSeq, lastReadSeq), missed: messages, hasMore };
    } catch (err) {
      subscriber.leave(roomId);
      throw err;
    }
  }

  async leave(data: unknown, subscriber: RoomSubscriber): Promise<{ roomId: string }> {
    const { roomId } = parseInput(this.schemas.leave, data);
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
      await checkAccess(this.store, roomId, userId);
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
    if (!this.typing.isTyping(conn, roomId)) await checkAccess(this.store, roomId, userId);
    this.typing.stop(conn, roomId);
    return { roomId };
  }

  /** Marks messages read up to `seq`; the room's joined connections get `receipt` when the position grows. */
  async read(userId: string, data: unknown): Promise<{ roomId: string; lastReadSeq: number }> {
    const { roomId, seq } = parseInput(this.schemas.read, data);
    const result = await this.store.markRead(roomId, userId, seq);
    if (result.outcome === 'forbidden') throw forbidden(roomId);
    if (result.grew)
      this.broadcaster.publish(roomId, SERVER_EVENTS.receipt, { roomId, userId, seq: result.lastReadSeq } satisfies ReceiptEvent);
    return { roomId, lastReadSeq: result.lastReadSeq };
  }

  async listRooms(userId: string, data: unknown): Promise<{ rooms: RoomReadState[] }> {
    parseInput(this.schemas.roomsList, data);
    return { rooms: await this.store.listRooms(userId) };
  }

  /** A user's message. Resolves only after COMMIT; a repeated clientMsgId returns the stored message without a new broadcast. */
  async send(senderId: string, data: unknown): Promise<Message> {
    const input = parseInput(this.schemas.send, data);
    return this.append({ roomId: input.roomId, senderId, body: input.body, clientMsgId: input.clientMsgId ?? null }, false).then(
      (r) => r.message,
    );
  }

  /**
   * A message posted by a trusted service on behalf of a user, or a system message (`system: true`,
   * no senderId, stored with SYSTEM_SENDER_ID); `created` is false for a repeated clientMsgId.
   */
  async post(data: unknown): Promise<{ message: Message; created: boolean }> {
    const input = isSystemPost(data)
      ? { ...parseInput(this.schemas.systemPost, data), senderId: SYSTEM_SENDER_ID }
      : parseInput(this.schemas.post, data);
    return this.append({ roomId: input.roomId, senderId: input.senderId, body: input.body, clientMsgId: input.clientMsgId ?? null }, true);
  }

  async history(userId: string | null, data: unknown): Promise<HistoryPage> {
    const query = parseInput(this.schemas.history, data);
    if (userId !== null) await checkAccess(this.store, query.roomId, userId);
    return fitPage(await this.store.page(query), query.afterSeq !== undefined, this.pageBudgetBytes);
  }

  /**
   * Creates or replaces a room. A room that becomes private loses its non-members' live
   * connections; the member list travels with the eviction, so every instance applies it the
   * moment it arrives (this one before the reply) instead of after a lookup of its own.
   */
  async upsertRoom(data: unknown): Promise<{ room: Room; created: boolean }> {
    const input = parseInput(this.schemas.room, data);
    const { room, previous } = await this.store.upsertRoom(input);
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
    const { roomId, userId } = parseInput(this.schemas.member, data);
    if (!(await this.store.setMember(roomId, userId, true))) notFound(roomId);
  }

  /**
   * Removing a member takes that user's live connections out of the room on every instance. Done
   * on every successful call, changed or not, so a retry after UNAVAILABLE still evicts.
   */
  async removeMember(data: unknown): Promise<void> {
    const { roomId, userId } = parseInput(this.schemas.member, data);
    if (!(await this.store.setMember(roomId, userId, false))) notFound(roomId);
    this.broadcaster.removeUsers(roomId, [userId]);
  }

  async listMembers(data: unknown): Promise<Member[]> {
    const { roomId } = parseInput(this.schemas.roomRef, data);
    return (await this.store.listMembers(roomId)) ?? notFound(roomId);
  }

  private async append(input: Parameters<ChatStore['append']>[0], trusted: boolean): Promise<{ message: Message; created: boolean }> {
    // Published at COMMIT by the store, so a message that commits after its sender was answered
    // UNAVAILABLE is still delivered (a retry then finds it stored and publishes nothing).
    const result = await this.store.append(input, trusted, (message) =>
      this.broadcaster.publish(input.roomId, SERVER_EVENTS.messageNew, message),
    );
    if (result.outcome === 'forbidden') throw forbidden(input.roomId);
    return { message: result.message, created: result.outcome === 'created' };
  }
}

function readPosition(lastSeq: number, lastReadSeq: number): { lastReadSeq: number; unread: number } {
  return { lastReadSeq, unread: Math.max(0, lastSeq - lastReadSeq) };
}
