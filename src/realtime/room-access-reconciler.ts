import { Injectable } from '@nestjs/common';
import type { RemovalReason } from '../chat/chat.events.js';
import { ChatStore, type JoinToJudge } from '../chat/chat.ports.js';
import type { ChatConnection } from './chat-connection.js';
import { LocalConnections } from './local-connections.js';

/** A connection joined to a room whose user is no longer allowed in it: banned, or no longer a member of a private room. */
export interface StaleJoin {
  conn: ChatConnection;
  roomId: string;
  reason?: RemovalReason;
}

/** How many (room, user) joins one statement judges: a reconcile of many joins is a few statements, each bounded. */
const JOINS_PER_STATEMENT = 1000;

/**
 * Finds this instance's connections joined to rooms their users may no longer be in: banned from
 * the room, or no longer members of a private room.
 *
 * Evictions and bans travel between instances through Redis pub/sub, which forgets what it could
 * not deliver: a removal or ban made on another instance while this instance's subscriber was cut
 * off is lost, and the user would keep receiving the room's live pushes. Postgres is the truth
 * about membership and bans, so the fan-out re-reads them here after every Redis reconnect and now
 * and then: one statement per thousand distinct (room, user) joins on this instance, one after
 * the other so a reconcile holds one pool connection, and nothing on the message path.
 *
 * Only joins that existed before the reads are judged: a member added and joined during the
 * reads must not be evicted by a standing read before the addition.
 */
@Injectable()
export class RoomAccessReconciler {
  constructor(
    private readonly local: LocalConnections,
    private readonly store: ChatStore,
  ) {}

  async staleJoins(): Promise<StaleJoin[]> {
    // One question per (room, user): a user's connections to one room share the answer.
    const joins = new Map<string, { join: JoinToJudge; conns: ChatConnection[] }>();
    for (const conn of this.local.all()) {
      for (const roomId of conn.rooms) {
        const key = JSON.stringify([roomId, conn.user.userId]);
        const entry = joins.get(key);
        if (entry) entry.conns.push(conn);
        else joins.set(key, { join: { roomId, userId: conn.user.userId }, conns: [conn] });
      }
    }
    const entries = [...joins.values()];
    const stale: StaleJoin[] = [];
    for (let i = 0; i < entries.length; i += JOINS_PER_STATEMENT) {
      const chunk = entries.slice(i, i + JOINS_PER_STATEMENT);
      const standings = await this.store.judgeJoins(chunk.map((e) => e.join));
      chunk.forEach(({ join, conns }, j) => {
        const standing = standings[j];
        // A missing room has no pushes to keep anyone from.
        if (standing !== 'banned' && standing !== 'outsider') return;
        for (const conn of conns) {
          if (!conn.rooms.has(join.roomId)) continue;
          stale.push(standing === 'banned' ? { conn, roomId: join.roomId, reason: 'banned' } : { conn, roomId: join.roomId });
        }
      });
    }
    return stale;
  }
}
