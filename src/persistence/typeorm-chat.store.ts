import { Inject, Injectable, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ChatError, StorageUnavailableError } from '../chat/chat.errors.js';
import type { ChangesPage, HistoryPage, Member, Message, MessageVersion, Room, RoomsPage, Visibility } from '../chat/chat.events.js';
import {
  ChatStore,
  type AppendResult,
  type ChangeResult,
  type ChangesQuery,
  type MessageChange,
  type NewMessage,
  type PageQuery,
  type ReadResult,
  type RoomAccess,
  type RoomInput,
  type RoomsQuery,
} from '../chat/chat.ports.js';
import { EVENT_TYPES, type EventType } from '../events/chat-events-out.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import { RoomEntity } from './entities/room.entity.js';
import { AppendBatcher } from './append-batcher.js';
import { applyChange } from './message-changes.js';
import { MESSAGE_COLUMNS, rowToMessage, type MessageRow } from './message-row.js';
import { RoomChangeQueue } from './room-change-queue.js';
import { isDataError } from './sql-state.js';
import { APPEND_LINGER_MS, STORAGE_TIMEOUT_MS } from './storage-timeout.js';

interface AccessRow {
  last_seq: string;
  last_mod_seq: string;
  visibility: Visibility;
  is_member: boolean;
  last_read_seq: string;
}

/** A room's access for a user, with the user's read state; $1 room, $2 user. */
const ACCESS_CTE = `
  access AS (
    SELECT r.last_seq, r.last_mod_seq, r.visibility,
           EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2) AS is_member,
           COALESCE(rr.last_read_seq, 0) AS last_read_seq, rr.joined_at IS NOT NULL AS joined
    FROM rooms r LEFT JOIN room_reads rr ON rr.user_id = $2 AND rr.room_id = r.id
    WHERE r.id = $1)`;

const ACCESS_SQL = `WITH ${ACCESS_CTE} SELECT last_seq, last_mod_seq, visibility, is_member, last_read_seq FROM access`;

/**
 * ACCESS_SQL that also records a first join the user is allowed (for rooms.list). A rejoin, the
 * common case after reconnects, inserts no row and so writes nothing.
 */
const OPEN_SQL = `
  WITH ${ACCESS_CTE},
  joined AS (
    INSERT INTO room_reads (user_id, room_id, joined_at)
    SELECT $2, $1, now() FROM access WHERE (visibility = 'public' OR is_member) AND NOT joined
    ON CONFLICT (user_id, room_id) DO UPDATE SET joined_at = EXCLUDED.joined_at WHERE room_reads.joined_at IS NULL)
  SELECT last_seq, last_mod_seq, visibility, is_member, last_read_seq FROM access`;

/**
 * Moves the read position to min($3, lastSeq) when that is ahead; the conflict clause re-checks
 * against the newest row, so concurrent reads never move it back. `moved_to` is null when nothing grew.
 */
const READ_SQL = `
  WITH ${ACCESS_CTE},
  target AS (
    SELECT visibility, is_member, last_read_seq, LEAST($3::bigint, last_seq) AS seq,
           visibility = 'public' OR is_member AS allowed
    FROM access),
  moved AS (
    INSERT INTO room_reads (user_id, room_id, last_read_seq)
    SELECT $2, $1, seq FROM target WHERE allowed AND seq > last_read_seq
    ON CONFLICT (user_id, room_id) DO UPDATE SET last_read_seq = EXCLUDED.last_read_seq
    WHERE room_reads.last_read_seq < EXCLUDED.last_read_seq
    RETURNING last_read_seq)
  SELECT allowed, last_read_seq, seq, (SELECT last_read_seq FROM moved) AS moved_to FROM target`;

/**
 * One rooms.list page ($1 user, $2 the roomId to start after, '' for the first page, $3 rows):
 * the public rooms the user joined, and the private rooms they are a member of. A room is either,
 * so the two never overlap. Each half walks its index in code point order (see the
 * IndexRoomsListPages migration) from the cursor and stops after $3 rows, and the two are merged:
 * a page reads about its own rows, however many rooms the user has. OFFSET 0 keeps each room
 * lookup a key probe per row read (a join the planner could turn into a scan of rooms).
 */
const ROOMS_SQL = `
  (SELECT j.room_id COLLATE "C" AS room_id, r.last_seq, j.last_read_seq
   FROM room_reads j
   CROSS JOIN LATERAL (SELECT x.last_seq FROM rooms x WHERE x.id = j.room_id AND x.visibility = 'public' OFFSET 0) r
   WHERE j.user_id = $1 AND j.joined_at IS NOT NULL AND j.room_id COLLATE "C" > $2
   ORDER BY j.room_id COLLATE "C" LIMIT $3)
  UNION ALL
  (SELECT m.room_id COLLATE "C", r.last_seq,
          COALESCE((SELECT x.last_read_seq FROM room_reads x WHERE x.user_id = $1 AND x.room_id = m.room_id), 0)
   FROM room_members m
   CROSS JOIN LATERAL (SELECT x.last_seq FROM rooms x WHERE x.id = m.room_id AND x.visibility = 'private' OFFSET 0) r
   WHERE m.user_id = $1 AND m.room_id COLLATE "C" > $2
   ORDER BY m.room_id COLLATE "C" LIMIT $3)
  ORDER BY room_id LIMIT $3`;

/**
 * How many room ids an instance remembers as existing (roomExists): enough for the rooms its
 * users send to, a few MB at most.
 */
const KNOWN_ROOMS = 10_000;

@Injectable()
export class TypeOrmChatStore extends ChatStore {
  private readonly batcher: AppendBatcher;
  private readonly changeQueue: RoomChangeQueue;
  /** Rooms seen to exist, least recently used first; rooms are never deleted, so a yes stays true. */
  private readonly knownRooms = new Set<string>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(STORAGE_TIMEOUT_MS) private readonly timeoutMs: number,
    @Inject(APPEND_LINGER_MS) appendLingerMs: number,
    @Optional() metrics?: ChatMetrics,
  ) {
    super();
    // Two transactions in flight let one batch fill while the other commits; one on a one-connection pool.
    this.changeQueue = new RoomChangeQueue(db, timeoutMs);
    this.batcher = new AppendBatcher(db, Math.min(2, (db.options as { poolSize?: number }).poolSize ?? 1), appendLingerMs, (n) =>
      metrics?.appendBatchSize.observe(n),
    );
  }

  /** Stored by group commit (AppendBatcher): concurrent sends share one transaction; each resolves after its COMMIT. */
  async append(
    input: NewMessage,
    { trusted, createRoom }: { trusted: boolean; createRoom: boolean },
    onCreated: (message: Message, parent: Message | null) => void,
  ): Promise<AppendResult> {
    return this.guard(
      (deadline) =>
        new Promise<AppendResult>((resolve, reject) =>
          this.batcher.submit({ input, trusted, createRoom, deadline, onCreated, resolve, reject }),
        ),
    );
  }

  /** One statement, which also records the join (OPEN_SQL). */
  async openRoom(roomId: string, userId: string): Promise<RoomAccess | null> {
    return this.guard(async () => {
      const [row] = (await this.db.query(OPEN_SQL, [roomId, userId])) as AccessRow[];
      if (!row) return null;
      this.remember(roomId);
      return toAccess(row);
    });
  }

  async createRoom(roomId: string): Promise<void> {
    await this.guard(() => this.db.query('INSERT INTO rooms (id) VALUES ($1) ON CONFLICT (id) DO NOTHING', [roomId]));
    this.remember(roomId);
  }

  /** Answered from memory for the rooms this instance has seen, else one key probe. */
  async roomExists(roomId: string): Promise<boolean> {
    if (this.knownRooms.has(roomId)) {
      this.remember(roomId);
      return true;
    }
    const [row] = await this.guard(() => this.db.query('SELECT 1 FROM rooms WHERE id = $1', [roomId]));
    if (row) this.remember(roomId);
    // A room created here while the probe was out is missing from the probe's snapshot, not from memory.
    return row !== undefined || this.knownRooms.has(roomId);
  }

  async roomAccess(roomId: string, userId: string): Promise<RoomAccess | null> {
    return this.guard(async () => {
      const [row] = (await this.db.query(ACCESS_SQL, [roomId, userId])) as AccessRow[];
      return row ? toAccess(row) : null;
    });
  }

  /**
   * Keyset paging on (room_id, seq), served by the unique index (a thread's by its partial index);
   * returns ascending seqs. Plain SQL rather than a repository find: every rejoin after a
   * reconnect runs this, and the find's query building and entity hydration cost more than the query.
   */
  async page({ roomId, beforeSeq, afterSeq, parentSeq, limit }: PageQuery): Promise<HistoryPage> {
    return this.guard(async () => {
      const ascending = afterSeq !== undefined;
      const bound = ascending ? 'AND seq > $2' : beforeSeq !== undefined ? 'AND seq < $2' : 'AND $2::bigint IS NULL';
      const thread = parentSeq === undefined ? '' : 'AND parent_seq = $4';
      const rows = (await this.db.query(
        `SELECT ${MESSAGE_COLUMNS} FROM messages
         WHERE room_id = $1 ${bound} ${thread} ORDER BY seq ${ascending ? 'ASC' : 'DESC'} LIMIT $3`,
        [roomId, afterSeq ?? beforeSeq ?? null, limit + 1, ...(parentSeq === undefined ? [] : [parentSeq])],
      )) as MessageRow[];
      const hasMore = rows.length > limit;
      const pageRows = rows.slice(0, limit);
      if (!ascending) pageRows.reverse();
      return { messages: pageRows.map((r) => rowToMessage(roomId, r)), hasMore };
    });
  }

  /**
   * Under the room's row lock (see message-changes.ts), in a transaction shared with the room's other
   * changes queued on this instance (RoomChangeQueue); `onChanged` after COMMIT.
   */
  async change(
    roomId: string,
    seq: number,
    actor: string | null,
    change: MessageChange,
    onChanged: (changed: Message[]) => void,
  ): Promise<ChangeResult> {
    return this.guard(
      (deadline) =>
        new Promise<ChangeResult>((resolve, reject) =>
          this.changeQueue.submit(roomId, {
            apply: (tx) => applyChange(tx, { roomId, seq, actor, change }),
            deadline,
            resolve: (result) => {
              if (result.outcome === 'changed') onChanged(result.changed);
              resolve(result);
            },
            reject,
          }),
        ),
    );
  }

  /**
   * One statement, so the page and lastModSeq come from one snapshot: a change committed after it
   * has a higher modSeq than lastModSeq and is on the next page.
   */
  async changes({ roomId, afterModSeq, limit }: ChangesQuery): Promise<ChangesPage> {
    return this.guard(async () => {
      const rows = (await this.db.query(
        `SELECT r.last_mod_seq AS room_last_mod_seq, m.* FROM rooms r
         LEFT JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM messages x WHERE x.room_id = r.id AND x.mod_seq > $2
                            ORDER BY x.mod_seq LIMIT $3) AS m ON true
         WHERE r.id = $1`,
        [roomId, afterModSeq, limit + 1],
      )) as (Partial<MessageRow> & { room_last_mod_seq: string })[];
      if (rows.length === 0) return { messages: [], hasMore: false, lastModSeq: 0 };
      const found = rows.filter((r) => r.id != null) as MessageRow[];
      return {
        messages: found.slice(0, limit).map((r) => rowToMessage(roomId, r)),
        hasMore: found.length > limit,
        lastModSeq: Number(rows[0]!.room_last_mod_seq),
      };
    });
  }

  /** The replaced versions kept by edits, then the current one; none after a delete. */
  async versions(roomId: string, seq: number): Promise<MessageVersion[] | null> {
    return this.guard(async () => {
      const rows = (await this.db.query(
        `SELECT m.deleted_at IS NOT NULL AS deleted, v.version, v.body, v.edited_at FROM messages m
         CROSS JOIN LATERAL (
           SELECT x.version, x.body, x.edited_at FROM message_versions x WHERE x.room_id = m.room_id AND x.seq = m.seq
           UNION ALL SELECT m.version, m.body, m.edited_at) AS v
         WHERE m.room_id = $1 AND m.seq = $2 ORDER BY v.version`,
        [roomId, seq],
      )) as { deleted: boolean; version: number; body: string; edited_at: Date | null }[];
      if (rows.length === 0) return null;
      if (rows[0]!.deleted) return [];
      return rows.map((r) => ({ version: r.version, body: r.body, editedAt: r.edited_at?.toISOString() ?? null }));
    });
  }

  /**
   * Locks the room row (when it exists) to read the visibility it had, so concurrent upserts see
   * each other's result; the `room.upserted` event is written in the same transaction.
   */
  async upsertRoom(input: RoomInput): Promise<{ room: Room; previous: Visibility | null }> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        const [before] = (await tx.query('SELECT visibility FROM rooms WHERE id = $1 FOR UPDATE', [input.roomId])) as {
          visibility: Visibility;
        }[];
        await tx.query(
          `INSERT INTO rooms (id, visibility, title, metadata) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE SET visibility = EXCLUDED.visibility, title = EXCLUDED.title, metadata = EXCLUDED.metadata`,
          [input.roomId, input.visibility, input.title, input.metadata === null ? null : JSON.stringify(input.metadata)],
        );
        const room = toRoom(await tx.getRepository(RoomEntity).findOneByOrFail({ id: input.roomId }));
        await tx.query(OUTBOX_SQL, outboxParams(EVENT_TYPES.roomUpserted, room.roomId, room));
        return { room, previous: before?.visibility ?? null };
      }),
    );
  }

  async getRoom(roomId: string): Promise<Room | null> {
    return this.guard(async () => {
      const room = await this.db.getRepository(RoomEntity).findOneBy({ id: roomId });
      return room ? toRoom(room) : null;
    });
  }

  /**
   * One transaction, which writes the member event when membership changed. It locks the room row
   * first, as chat_append and upsertRoom do: a room's events then take outbox positions in commit
   * order, which is the order the relay publishes them in.
   */
  async setMember(roomId: string, userId: string, member: boolean): Promise<{ changed: boolean } | null> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        const [exists] = await tx.query('SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE', [roomId]);
        if (!exists) return null;
        const rows = member
          ? await tx.query('INSERT INTO room_members (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING user_id', [
              roomId,
              userId,
            ])
          : await tx.query('DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 RETURNING user_id', [roomId, userId]);
        // DELETE ... RETURNING comes back from TypeORM as [rows, count].
        const changed = member ? rows.length > 0 : (rows[0] as unknown[]).length > 0;
        if (changed)
          await tx.query(
            OUTBOX_SQL,
            outboxParams(member ? EVENT_TYPES.memberAdded : EVENT_TYPES.memberRemoved, roomId, { roomId, userId }),
          );
        return { changed };
      }),
    );
  }

  async listMembers(roomId: string): Promise<Member[] | null> {
    return this.guard(async () => {
      const [exists] = await this.db.query('SELECT 1 FROM rooms WHERE id = $1', [roomId]);
      if (!exists) return null;
      const rows = (await this.db.query(
        `SELECT m.user_id, COALESCE(rr.last_read_seq, 0) AS last_read_seq
         FROM room_members m LEFT JOIN room_reads rr ON rr.user_id = m.user_id AND rr.room_id = m.room_id
         WHERE m.room_id = $1 ORDER BY m.user_id`,
        [roomId],
      )) as { user_id: string; last_read_seq: string }[];
      return rows.map((r) => ({ userId: r.user_id, lastReadSeq: Number(r.last_read_seq) }));
    });
  }

  async markRead(roomId: string, userId: string, seq: number): Promise<ReadResult> {
    return this.guard(async () => {
      const [row] = (await this.db.query(READ_SQL, [roomId, userId, seq])) as {
        allowed: boolean;
        last_read_seq: string;
        seq: string;
        moved_to: string | null;
      }[];
      if (!row) return { outcome: 'read', lastReadSeq: 0, grew: false };
      if (!row.allowed) return { outcome: 'forbidden' };
      if (row.moved_to !== null) return { outcome: 'read', lastReadSeq: Number(row.moved_to), grew: true };
      const target = Number(row.seq);
      const seen = Number(row.last_read_seq);
      if (target <= seen) return { outcome: 'read', lastReadSeq: seen, grew: false };
      // The statement's snapshot was behind: a concurrent read committed a position at or past the
      // target after it was taken (the conflict clause saw it, the snapshot did not). Answer what
      // is stored now, never the target. Only this race pays the second round trip.
      const [stored] = (await this.db.query('SELECT last_read_seq FROM room_reads WHERE user_id = $1 AND room_id = $2', [
        userId,
        roomId,
      ])) as { last_read_seq: string }[];
      return { outcome: 'read', lastReadSeq: Math.max(target, Number(stored?.last_read_seq ?? 0)), grew: false };
    });
  }

  /** Keyset paging on roomId: one row past the page says whether more follow. */
  async listRooms({ userId, afterRoomId, limit }: RoomsQuery): Promise<RoomsPage> {
    return this.guard(async () => {
      const rows = (await this.db.query(ROOMS_SQL, [userId, afterRoomId ?? '', limit + 1])) as {
        room_id: string;
        last_seq: string;
        last_read_seq: string;
      }[];
      const rooms = rows.slice(0, limit).map((r) => {
        const lastSeq = Number(r.last_seq);
        const lastReadSeq = Number(r.last_read_seq);
        return { roomId: r.room_id, lastSeq, lastReadSeq, unread: Math.max(0, lastSeq - lastReadSeq) };
      });
      return { rooms, hasMore: rows.length > limit };
    });
  }

  /**
   * Bounded: the least recently used id is forgotten first (and asked for again if it comes back),
   * so the rooms in use stay known however many others pass through.
   */
  private remember(roomId: string): void {
    if (!this.knownRooms.delete(roomId) && this.knownRooms.size >= KNOWN_ROOMS)
      this.knownRooms.delete(this.knownRooms.values().next().value as string);
    this.knownRooms.add(roomId);
  }

  /**
   * Any database failure, or no answer within the storage timeout, means the outcome is
   * unconfirmed: the caller sees UNAVAILABLE. The exception is data Postgres refused (SQLSTATE
   * class 22 or 23): nothing was stored and a retry would fail the same way, so VALIDATION_FAILED.
   * The work gets the deadline to check before COMMIT.
   */
  private async guard<T>(work: (deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the database within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([work(deadline), expired]);
    } catch (err) {
      if (isDataError(err)) throw new ChatError('VALIDATION_FAILED', 'the database refused the data', { fields: [] });
      throw new StorageUnavailableError(err);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** An event for the relay (see the CreateEventTables migration); the outbox generates its id. */
const OUTBOX_SQL = 'INSERT INTO outbox (type, room_id, data) VALUES ($1, $2, $3::jsonb)';

function outboxParams(type: EventType, roomId: string, data: unknown): [string, string, string] {
  return [type, roomId, JSON.stringify(data)];
}

function toAccess(row: AccessRow): RoomAccess {
  return {
    visibility: row.visibility,
    isMember: row.is_member,
    lastSeq: Number(row.last_seq),
    lastModSeq: Number(row.last_mod_seq),
    lastReadSeq: Number(row.last_read_seq),
  };
}

function toRoom(row: RoomEntity): Room {
  return {
    roomId: row.id,
    visibility: row.visibility,
    title: row.title,
    metadata: row.metadata,
    lastSeq: row.lastSeq,
    lastModSeq: row.lastModSeq,
    createdAt: row.createdAt.toISOString(),
  };
}
