import { Injectable } from '@nestjs/common';
import type { RemovalReason } from '../chat/chat.events.js';
import { ChatStore } from '../chat/chat.ports.js';
import type { ChatConnection } from './chat-connection.js';
import { LocalConnections } from './local-connections.js';

/** A connection joined to a room whose user is no longer allowed in it: banned, or no longer a member of a private room. */
export interface StaleJoin {
  conn: ChatConnection;
  roomId: string;
  reason?: RemovalReason;
}

/** Who may stay joined to a room, as Postgres says now. */
interface RoomAccess {
  /** The members of a private room; null for a public room (everybody may be in it). */
  members: Set<string> | null;
  banned: Set<string>;
}

/** How many rooms are read at once: a reconcile of many rooms must not take the whole pool. */
const ROOMS_IN_PARALLEL = 4;

/**
 * Finds this instance's connections joined to rooms their users may no longer be in: banned from
 * the room, or no longer members of a private room.
 *
 * Evictions and bans travel between instances through Redis pub/sub, which forgets what it could
 * not deliver: a removal or ban made on another instance while this instance's subscriber was cut
 * off is lost, and the user would keep receiving the room's live pushes. Postgres is the truth
 * about membership and bans, so the fan-out re-reads them here after every Redis reconnect and now
 * and then. It costs three indexed reads per distinct private room joined here (two for public
 * rooms), not one per connection, and nothing on the message path.
 *
 * Only joins that existed before the reads are judged: a member added and joined during the
 * reads must not be evicted by a member list read before the addition.
 */
@Injectable()
export class RoomAccessReconciler {
  constructor(
    private readonly local: LocalConnections,
    private readonly store: ChatStore,
  ) {}

  async staleJoins(): Promise<StaleJoin[]> {
    const joinsByRoom = new Map<string, ChatConnection[]>();
    for (const conn of this.local.all()) {
      for (const roomId of conn.rooms) {
        const conns = joinsByRoom.get(roomId);
        if (conns) conns.push(conn);
        else joinsByRoom.set(roomId, [conn]);
      }
    }
    const rooms = [...joinsByRoom.keys()];
    const stale: StaleJoin[] = [];
    for (let i = 0; i < rooms.length; i += ROOMS_IN_PARALLEL) {
      const batch = rooms.slice(i, i + ROOMS_IN_PARALLEL);
      const access = await Promise.all(batch.map((roomId) => this.access(roomId)));
      batch.forEach((roomId, j) => {
        const allowed = access[j];
        if (!allowed) return;
        for (const conn of joinsByRoom.get(roomId) ?? []) {
          if (!conn.rooms.has(roomId)) continue;
          const { userId } = conn.user;
          if (allowed.banned.has(userId)) stale.push({ conn, roomId, reason: 'banned' });
          else if (allowed.members && !allowed.members.has(userId)) stale.push({ conn, roomId });
        }
      });
    }
    return stale;
  }

  /** Null for a missing room. */
  private async access(roomId: string): Promise<RoomAccess | null> {
    const [room, sanctions] = await Promise.all([this.store.getRoom(roomId), this.store.sanctions([roomId])]);
    if (!room) return null;
    const banned = new Set((sanctions.get(roomId)?.bans ?? []).map((b) => b.userId));
    if (room.visibility !== 'private') return { members: null, banned };
    return { members: new Set(((await this.store.listMembers(roomId)) ?? []).map((m) => m.userId)), banned };
  }
}
