import { Injectable } from '@nestjs/common';
import { ChatStore } from '../chat/chat.ports.js';
import type { ChatConnection } from './chat-connection.js';
import { LocalConnections } from './local-connections.js';

/** A connection joined to a room whose user is no longer allowed in it. */
export interface StaleJoin {
  conn: ChatConnection;
  roomId: string;
}

/** How many rooms are read at once: a reconcile of many rooms must not take the whole pool. */
const ROOMS_IN_PARALLEL = 4;

/**
 * Finds this instance's connections joined to private rooms their users are no longer members of.
 *
 * Evictions travel between instances through Redis pub/sub, which forgets what it could not
 * deliver: a removal made on another instance while this instance's subscriber was cut off is lost,
 * and the removed member would keep receiving the room's live pushes. Postgres is the truth about
 * membership, so the fan-out re-reads it here after every Redis reconnect and now and then.
 * It costs two indexed reads per distinct private room joined here (one for public rooms), not one
 * per connection, and nothing on the message path.
 *
 * Only joins that existed before the reads are judged: a member added and joined during the
 * reads must not be evicted by a member list read before the addition.
 */
@Injectable()
export class PrivateRoomReconciler {
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
      const members = await Promise.all(batch.map((roomId) => this.privateMembers(roomId)));
      batch.forEach((roomId, j) => {
        const allowed = members[j];
        if (!allowed) return;
        for (const conn of joinsByRoom.get(roomId) ?? []) {
          if (!allowed.has(conn.user.userId) && conn.rooms.has(roomId)) stale.push({ conn, roomId });
        }
      });
    }
    return stale;
  }

  /** The members of a private room; null for a public room (everybody may be in it) or a missing one. */
  private async privateMembers(roomId: string): Promise<Set<string> | null> {
    const room = await this.store.getRoom(roomId);
    if (room?.visibility !== 'private') return null;
    return new Set(((await this.store.listMembers(roomId)) ?? []).map((m) => m.userId));
  }
}
