import { Injectable } from '@nestjs/common';
import { SERVER_EVENTS, type PresenceList } from './chat.events.js';
import { ChatStore, PresenceStore, RoomBroadcaster } from './chat.ports.js';
import { parseInput, presenceQuery } from './chat.schemas.js';
import { checkAccess, notFound } from './room-access.js';
import { RoomSanctions } from './room-sanctions.js';

/**
 * The most users one presence.list answer carries: a room with a crowd in it must not produce a
 * reply that trips the slow-consumer bound (1000 ids of at most 128 characters ≈ 140 KB of JSON,
 * well under half of the default MAX_BUFFERED_BYTES).
 */
export const MAX_PRESENCE_LIST = 1000;

/**
 * Presence: who has a connection joined to a room. The transports report connections entering
 * and leaving rooms; each change the store decides is published to the room's joined
 * connections on every instance (`presence.joined` / `presence.left`).
 */
@Injectable()
export class PresenceService {
  constructor(
    private readonly store: ChatStore,
    private readonly presence: PresenceStore,
    broadcaster: RoomBroadcaster,
    private readonly sanctions: RoomSanctions,
  ) {
    presence.onChange(({ kind, roomId, userId }) =>
      broadcaster.publish(roomId, kind === 'joined' ? SERVER_EVENTS.presenceJoined : SERVER_EVENTS.presenceLeft, { roomId, userId }),
    );
  }

  /** A connection is in the room (after a successful join); repeated calls are harmless. */
  enter(roomId: string, userId: string, connectionId: string): void {
    this.presence.enter(roomId, userId, connectionId);
  }

  /** A connection is out of the room (left, evicted or closed); harmless when it never entered. */
  exit(roomId: string, connectionId: string): void {
    this.presence.exit(roomId, connectionId);
  }

  /**
   * `presence.list` for a user (private rooms need membership; a room that does not exist has
   * nobody in it), or for a trusted service (userId null: NOT_FOUND for a missing room). At most
   * MAX_PRESENCE_LIST users, the first by userId; `hasMore` says whether others are present.
   */
  async list(userId: string | null, data: unknown): Promise<PresenceList> {
    const { roomId } = parseInput(presenceQuery, data);
    if (userId !== null) {
      await this.sanctions.assertNotBanned(roomId, userId);
      await checkAccess(this.store, roomId, userId);
    } else if (!(await this.store.getRoom(roomId))) notFound(roomId);
    const users = await this.presence.list(roomId);
    return {
      roomId,
      users: users.slice(0, MAX_PRESENCE_LIST).map((u) => ({ userId: u })),
      hasMore: users.length > MAX_PRESENCE_LIST,
    };
  }
}
