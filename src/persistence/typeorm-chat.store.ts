import { Inject, Injectable, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { ChatError, StorageUnavailableError } from '../chat/chat.errors.js';
import type { ChangesPage, Member, Message, MessageVersion, Role, Room, RoomsPage, Sanction, Visibility } from '../chat/chat.events.js';
import {
  ChatStore,
  type AppendResult,
  type ChangeResult,
  type ChangesQuery,
  type ErasureResult,
  type JoinStanding,
  type JoinToJudge,
  type MessageChange,
  type ModerationAction,
  type NewMessage,
  type PageQuery,
  type ReadResult,
  type RoomAccess,
  type RoomInput,
  type RoomSanctionList,
  type RoomsQuery,
  type StoredPage,
  type UserExportLine,
} from '../chat/chat.ports.js';
import { EVENT_TYPES, type EventType } from '../events/chat-events-out.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import { RoomEntity } from './entities/room.entity.js';
import { AppendBatcher } from './append-batcher.js';
import { Tracing } from '../tracing/tracing.js';
import { JoinReads } from './join-reads.js';
import { applyChange, removeUserReactions } from './message-changes.js';
import { MESSAGE_COLUMNS, rowToMessage, type MessageRow } from './message-row.js';
import { RoomChangeQueue } from './room-change-queue.js';
import { isDataError } from './sql-state.js';
import { APPEND_LINGER_MS, STORAGE_TIMEOUT_MS } from './storage-timeout.js';

/**
 * Moves the read position to min($3, lastSeq) when that is ahead; the conflict clause re-checks
 * against the newest row, so concurrent reads never move it back. `moved_to` is null when nothing grew.
 */
const READ_SQL = `
  WITH access AS (
    SELECT r.last_seq, r.visibility, m.user_id IS NOT NULL AS is_member, COALESCE(rr.last_read_seq, 0) AS last_read_seq
    FROM rooms r
    LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2
    LEFT JOIN room_reads rr ON rr.user_id = $2 AND rr.room_id = r.id
    WHERE r.id = $1),
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
 * Rows one erasure transaction changes at most (messages tombstoned, reactions removed, reads
 * deleted). A tombstone is a few statements under the room's row lock (the delete path's), so a
 * batch holds a room for a fraction of a second, and sends to it wait no longer than that.
 */
export const ERASE_BATCH = 100;
/** Rows one export query reads: the memory an export holds, whatever the user's total. */
const EXPORT_PAGE = 500;

/**
 * How many room ids an instance remembers as existing (roomExists): enough for the rooms its
 * users send to, a few MB at most.
 */
const KNOWN_ROOMS = 10_000;

@Injectable()
export class TypeOrmChatStore extends ChatStore {
  private readonly batcher: AppendBatcher;
  private readonly changeQueue: RoomChangeQueue;
  private readonly joins: JoinReads;
  /** Rooms seen to exist, least recently used first; rooms are never deleted, so a yes stays true. */
  private readonly knownRooms = new Set<string>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(STORAGE_TIMEOUT_MS) private readonly timeoutMs: number,
    @Inject(APPEND_LINGER_MS) appendLingerMs: number,
    @Optional() metrics?: ChatMetrics,
    @Optional() tracing?: Tracing,
  ) {
    super();
    // Two transactions in flight let one batch fill while the other commits; one on a one-connection pool.
    this.changeQueue = new RoomChangeQueue(db, timeoutMs);
    this.joins = new JoinReads(db);
    this.batcher = new AppendBatcher(
      db,
      Math.min(2, (db.options as { poolSize?: number }).poolSize ?? 1),
      appendLingerMs,
      metrics ? { batch: (n) => metrics.appendBatchSize.observe(n), stored: (n) => metrics.messagesStored.inc(n) } : {},
      tracing,
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

  /** One statement per wave of joins, which also records a first join (JoinReads). */
  async openRoom(roomId: string, userId: string): Promise<RoomAccess | null> {
    return this.guard(async () => {
      const access = await this.joins.open({ roomId, userId });
      if (access) this.remember(roomId);
      return access;
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
    return this.guard(() => this.joins.access({ roomId, userId }));
  }

  /**
   * Keyset paging on (room_id, seq), served by the unique index (a thread's by its partial index);
   * returns ascending seqs. Plain SQL rather than a repository find: every rejoin after a
   * reconnect runs this, and the find's query building and entity hydration cost more than the query.
   */
  async page({ roomId, beforeSeq, afterSeq, parentSeq, limit }: PageQuery): Promise<StoredPage> {
    // What a rejoin reads, gathered with the other rejoins of the wave (JoinReads). Thread pages keep this
    // statement: `parent_seq = $4` is what lets the planner use the replies' partial index.
    if (afterSeq !== undefined && parentSeq === undefined) return this.guard(() => this.joins.after({ roomId, afterSeq, limit }));
    return this.guard(async () => {
      const ascending = afterSeq !== undefined;
      const order = ascending ? 'ASC' : 'DESC';
      const bound = ascending ? 'AND seq > $2' : beforeSeq !== undefined ? 'AND seq < $2' : 'AND $2::bigint IS NULL';
      const thread = parentSeq === undefined ? '' : 'AND parent_seq = $4';
      // The floor comes from the statement's own snapshot: retention removes rows and moves the floor in one commit.
      const rows = (await this.db.query(
        `SELECT COALESCE(r.floor_seq, 1) AS room_floor_seq, m.* FROM (VALUES (1)) AS one (x)
         LEFT JOIN rooms r ON r.id = $1
         LEFT JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM messages
                            WHERE room_id = $1 ${bound} ${thread} ORDER BY seq ${order} LIMIT $3) AS m ON true
         ORDER BY m.seq ${order}`,
        [roomId, afterSeq ?? beforeSeq ?? null, limit + 1, ...(parentSeq === undefined ? [] : [parentSeq])],
      )) as (Partial<MessageRow> & { room_floor_seq: string })[];
      const found = rows.filter((r) => r.id != null) as MessageRow[];
      const hasMore = found.length > limit;
      const pageRows = found.slice(0, limit);
      if (!ascending) pageRows.reverse();
      return { messages: pageRows.map((r) => rowToMessage(roomId, r)), hasMore, floorSeq: Number(rows[0]!.room_floor_seq) };
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
        `SELECT r.last_mod_seq AS room_last_mod_seq, r.floor_mod_seq AS room_floor_mod_seq, m.* FROM rooms r
         LEFT JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM messages x WHERE x.room_id = r.id AND x.mod_seq > $2
                            ORDER BY x.mod_seq LIMIT $3) AS m ON true
         WHERE r.id = $1 ORDER BY m.mod_seq`,
        [roomId, afterModSeq, limit + 1],
      )) as (Partial<MessageRow> & { room_last_mod_seq: string; room_floor_mod_seq: string })[];
      if (rows.length === 0) return { messages: [], hasMore: false, lastModSeq: 0, truncated: false };
      const found = rows.filter((r) => r.id != null) as MessageRow[];
      return {
        messages: found.slice(0, limit).map((r) => rowToMessage(roomId, r)),
        hasMore: found.length > limit,
        lastModSeq: Number(rows[0]!.room_last_mod_seq),
        // A removed message whose latest change is after the cursor: the client missed a change that is gone.
        truncated: afterModSeq < Number(rows[0]!.room_floor_mod_seq),
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
          `INSERT INTO rooms (id, visibility, title, metadata, retention_days, slow_mode_ms) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (id) DO UPDATE SET visibility = EXCLUDED.visibility, title = EXCLUDED.title, metadata = EXCLUDED.metadata,
             retention_days = EXCLUDED.retention_days, slow_mode_ms = EXCLUDED.slow_mode_ms`,
          [
            input.roomId,
            input.visibility,
            input.title,
            input.metadata === null ? null : JSON.stringify(input.metadata),
            input.retentionDays,
            input.slowModeMs,
          ],
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
  async setMember(roomId: string, userId: string, member: boolean, role?: Role): Promise<{ changed: boolean } | null> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        const [exists] = await tx.query('SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE', [roomId]);
        if (!exists) return null;
        let changed: boolean;
        if (!member) {
          // DELETE ... RETURNING comes back from TypeORM as [rows, count].
          const [rows] = await tx.query('DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 RETURNING user_id', [roomId, userId]);
          changed = (rows as unknown[]).length > 0;
        } else {
          // Without a role an existing member is left alone (no row comes back). xmax is 0 on a row this
          // statement inserted, not on one it updated: that tells a new member from a new role.
          const rows = (await tx.query(
            `INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, COALESCE($3::text, 'member'))
             ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role WHERE $3::text IS NOT NULL
             RETURNING (xmax = 0) AS inserted`,
            [roomId, userId, role ?? null],
          )) as { inserted: boolean }[];
          changed = rows[0]?.inserted ?? false;
        }
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
        `SELECT m.user_id, m.role, COALESCE(rr.last_read_seq, 0) AS last_read_seq
         FROM room_members m LEFT JOIN room_reads rr ON rr.user_id = m.user_id AND rr.room_id = m.room_id
         WHERE m.room_id = $1 ORDER BY m.user_id`,
        [roomId],
      )) as { user_id: string; role: Role; last_read_seq: string }[];
      return rows.map((r) => ({ userId: r.user_id, role: r.role, lastReadSeq: Number(r.last_read_seq) }));
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
   * Reactions first (all of them count, those on the user's own messages too, which the
   * tombstones would take anyway), then the messages, then memberships (each a member.removed
   * event, as DELETE …/members does), read state, and the mutes and bans (each in force a
   * moderation.unmuted or moderation.unbanned event by "api"). Each batch finds what is left, so
   * a call that failed half way is finished by the next, and a second call answers zeros.
   */
  async eraseUser(userId: string, onChanged: (roomId: string, changed: Message[]) => void): Promise<ErasureResult> {
    const counts: ErasureResult = { messagesDeleted: 0, reactionsRemoved: 0, roomsLeft: 0, sanctionedRooms: [] };
    for (;;) {
      const [next] = (await this.guard(() =>
        this.db.query('SELECT room_id FROM message_reactions WHERE user_id = $1 LIMIT 1', [userId]),
      )) as { room_id: string }[];
      if (!next) break;
      const batch = await this.erasing((tx) => removeUserReactions(tx, next.room_id, userId, ERASE_BATCH));
      if (!batch) continue;
      counts.reactionsRemoved += batch.removed;
      onChanged(next.room_id, batch.changed);
    }
    for (;;) {
      const rows = (await this.guard(() =>
        this.db.query(
          'SELECT room_id, seq FROM messages WHERE sender_id = $1 AND deleted_at IS NULL ORDER BY sender_id, room_id, seq LIMIT $2',
          [userId, ERASE_BATCH],
        ),
      )) as { room_id: string; seq: string }[];
      if (rows.length === 0) break;
      const byRoom = new Map<string, { seq: string }[]>();
      for (const r of rows) byRoom.set(r.room_id, [...(byRoom.get(r.room_id) ?? []), r]);
      for (const [roomId, seqs] of byRoom) {
        const changed = await this.erasing(async (tx) => {
          const all: Message[] = [];
          for (const { seq } of seqs) {
            // The delete path itself (a trusted caller's message.delete): tombstone, versions purged, thread root updated.
            const result = await applyChange(tx, { roomId, seq: Number(seq), actor: null, change: { kind: 'delete' } });
            if (result.outcome === 'changed') {
              counts.messagesDeleted++;
              all.push(...result.changed);
            }
          }
          return all;
        });
        if (changed.length) onChanged(roomId, changed);
      }
    }
    const left = new Set<string>();
    for (;;) {
      const rows = (await this.guard(() =>
        this.db.query('SELECT room_id FROM room_members WHERE user_id = $1 LIMIT $2', [userId, ERASE_BATCH]),
      )) as { room_id: string }[];
      if (rows.length === 0) break;
      for (const { room_id } of rows) {
        await this.setMember(room_id, userId, false);
        left.add(room_id);
      }
    }
    for (;;) {
      const [rows] = (await this.guard(() =>
        this.db.query(
          `DELETE FROM room_reads x USING (SELECT room_id FROM room_reads WHERE user_id = $1 LIMIT $2) AS t
           WHERE x.user_id = $1 AND x.room_id = t.room_id RETURNING x.room_id`,
          [userId, ERASE_BATCH],
        ),
      )) as [{ room_id: string }[], number];
      if (rows.length === 0) break;
      for (const { room_id } of rows) left.add(room_id);
    }
    const sanctioned = new Set<string>();
    for (;;) {
      // Each one in force is announced as an unmute or unban by the API would be, in the same
      // statement, so a consumer that mirrors sanctions learns of it; one that had expired ended
      // unannounced already and is not announced again.
      const rows = (await this.guard(() =>
        this.db.query(
          `WITH lifted AS (
             DELETE FROM room_sanctions x USING (SELECT room_id, kind FROM room_sanctions WHERE user_id = $1 LIMIT $2) AS t
             WHERE x.user_id = $1 AND x.room_id = t.room_id AND x.kind = t.kind RETURNING x.room_id, x.kind, x.until
           ), announced AS (
             INSERT INTO outbox (type, room_id, data)
             SELECT CASE kind WHEN 'mute' THEN $3 ELSE $4 END, room_id, jsonb_build_object('roomId', room_id, 'userId', $1::text, 'by', 'api')
             FROM lifted WHERE until IS NULL OR until > now()
           )
           SELECT room_id FROM lifted`,
          [userId, ERASE_BATCH, MODERATION_EVENTS.unmute, MODERATION_EVENTS.unban],
        ),
      )) as { room_id: string }[];
      if (rows.length === 0) break;
      for (const { room_id } of rows) sanctioned.add(room_id);
    }
    counts.roomsLeft = left.size;
    counts.sanctionedRooms = [...sanctioned];
    return counts;
  }

  async moderate(roomId: string, action: ModerationAction): Promise<boolean> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        const found = (await tx.query('SELECT 1 FROM rooms WHERE id = $1', [roomId])) as unknown[];
        if (found.length === 0) return false;
        const event: Record<string, unknown> = { roomId, userId: action.userId, by: action.by };
        if (action.kind === 'mute' || action.kind === 'ban') {
          const reason = action.kind === 'ban' ? action.reason : null;
          await tx.query(
            `INSERT INTO room_sanctions (room_id, user_id, kind, until, reason, by) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (room_id, kind, user_id) DO UPDATE
             SET until = EXCLUDED.until, reason = EXCLUDED.reason, by = EXCLUDED.by, created_at = now()`,
            [roomId, action.userId, action.kind, action.until, reason, action.by],
          );
          event.until = action.until?.toISOString() ?? null;
          if (action.kind === 'ban') event.reason = reason;
        } else if (action.kind !== 'kick') {
          await tx.query('DELETE FROM room_sanctions WHERE room_id = $1 AND kind = $2 AND user_id = $3', [
            roomId,
            action.kind === 'unmute' ? 'mute' : 'ban',
            action.userId,
          ]);
        }
        await tx.query(OUTBOX_SQL, outboxParams(MODERATION_EVENTS[action.kind], roomId, event));
        return true;
      }),
    );
  }

  async judgeJoins(joins: readonly JoinToJudge[]): Promise<JoinStanding[]> {
    if (joins.length === 0) return [];
    return this.guard(async () => {
      // Index lookups per pair (rooms, room_sanctions and room_members by primary key): a private
      // room's member list is never read whole.
      const rows = (await this.db.query(
        `SELECT CASE
           WHEN r.id IS NULL THEN 'missing'
           WHEN EXISTS (SELECT 1 FROM room_sanctions s WHERE s.room_id = t.room AND s.kind = 'ban' AND s.user_id = t.usr
                          AND (s.until IS NULL OR s.until > now())) THEN 'banned'
           WHEN r.visibility = 'private'
                AND NOT EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = t.room AND m.user_id = t.usr) THEN 'outsider'
           ELSE 'allowed' END AS standing
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(room, usr, i)
         LEFT JOIN rooms r ON r.id = t.room
         ORDER BY t.i`,
        [joins.map((j) => j.roomId), joins.map((j) => j.userId)],
      )) as { standing: JoinStanding }[];
      return rows.map((r) => r.standing);
    });
  }

  /**
   * One statement for many rooms (RoomSanctions reads a burst of first requests to many rooms
   * together): each existing room's sanctions in force (expired ones skipped) and, with slow mode
   * on, its moderators (who are not slowed).
   */
  async sanctions(roomIds: string[]): Promise<Map<string, RoomSanctionList>> {
    return this.guard(async () => {
      const rows = (await this.db.query(
        `SELECT r.id, r.slow_mode_ms,
           CASE WHEN r.slow_mode_ms > 0 THEN ARRAY(
             SELECT m.user_id FROM room_members m WHERE m.room_id = r.id AND m.role IN ('owner', 'moderator')) END AS moderators,
           (SELECT coalesce(json_agg(json_build_object('userId', s.user_id, 'kind', s.kind, 'until', s.until, 'reason', s.reason)
                     ORDER BY s.user_id COLLATE "C"), '[]')
              FROM room_sanctions s WHERE s.room_id = r.id AND (s.until IS NULL OR s.until > now())) AS sanctions
         FROM rooms r WHERE r.id = ANY($1::text[])`,
        [roomIds],
      )) as {
        id: string;
        slow_mode_ms: number;
        moderators: string[] | null;
        sanctions: { userId: string; kind: 'mute' | 'ban'; until: string | null; reason: string | null }[];
      }[];
      const lists = new Map<string, RoomSanctionList>();
      for (const row of rows) {
        const list: RoomSanctionList = { mutes: [], bans: [], slowModeMs: row.slow_mode_ms, moderators: row.moderators ?? [] };
        for (const s of row.sanctions) {
          // json_build_object writes timestamps in Postgres's own format: the API's is ISO 8601 in UTC.
          const sanction: Sanction = {
            userId: s.userId,
            until: s.until === null ? null : new Date(s.until).toISOString(),
            reason: s.reason,
          };
          (s.kind === 'mute' ? list.mutes : list.bans).push(sanction);
        }
        lists.set(row.id, list);
      }
      return lists;
    });
  }

  /** One erasure transaction, waiting for the room's lock no longer than a change would (RoomChangeQueue). */
  private erasing<T>(work: (tx: EntityManager) => Promise<T>): Promise<T> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [`${this.timeoutMs}ms`]);
        return work(tx);
      }),
    );
  }

  /**
   * Keyset pages on the user's indexes: messages by (room_id, seq), tombstones included (retention
   * removes rows and moves a room's floor in one commit, so nothing below a floor is read), then
   * reactions, memberships and read state. A page is read only when the consumer asks for more.
   */
  async *exportUser(userId: string): AsyncGenerator<UserExportLine> {
    for (let after: [string, string] | null = null; ;) {
      const rows = (await this.guard(() =>
        this.db.query(
          `SELECT room_id, ${MESSAGE_COLUMNS} FROM messages WHERE sender_id = $1 ${after ? 'AND (room_id, seq) > ($3, $4)' : ''}
           ORDER BY sender_id, room_id, seq LIMIT $2`,
          [userId, EXPORT_PAGE, ...(after ?? [])],
        ),
      )) as (MessageRow & { room_id: string })[];
      for (const r of rows) yield { type: 'message', ...rowToMessage(r.room_id, r) };
      if (rows.length < EXPORT_PAGE) break;
      after = [rows.at(-1)!.room_id, rows.at(-1)!.seq];
    }
    for (let after: [string, string, string] | null = null; ;) {
      const rows = (await this.guard(() =>
        this.db.query(
          `SELECT room_id, seq, key FROM message_reactions WHERE user_id = $1 ${after ? 'AND (room_id, seq, key) > ($3, $4, $5)' : ''}
           ORDER BY user_id, room_id, seq, key LIMIT $2`,
          [userId, EXPORT_PAGE, ...(after ?? [])],
        ),
      )) as { room_id: string; seq: string; key: string }[];
      for (const r of rows) yield { type: 'reaction', roomId: r.room_id, seq: Number(r.seq), key: r.key };
      if (rows.length < EXPORT_PAGE) break;
      const last = rows.at(-1)!;
      after = [last.room_id, last.seq, last.key];
    }
    for (let after = ''; ;) {
      const rows = (await this.guard(() =>
        this.db.query(
          `SELECT room_id, role FROM room_members WHERE user_id = $1 AND room_id COLLATE "C" > $2
           ORDER BY room_id COLLATE "C" LIMIT $3`,
          [userId, after, EXPORT_PAGE],
        ),
      )) as { room_id: string; role: Role }[];
      for (const r of rows) yield { type: 'membership', roomId: r.room_id, role: r.role };
      if (rows.length < EXPORT_PAGE) break;
      after = rows.at(-1)!.room_id;
    }
    for (let after = ''; ;) {
      const rows = (await this.guard(() =>
        this.db.query('SELECT room_id, last_read_seq FROM room_reads WHERE user_id = $1 AND room_id > $2 ORDER BY room_id LIMIT $3', [
          userId,
          after,
          EXPORT_PAGE,
        ]),
      )) as { room_id: string; last_read_seq: string }[];
      for (const r of rows) yield { type: 'read', roomId: r.room_id, lastReadSeq: Number(r.last_read_seq) };
      if (rows.length < EXPORT_PAGE) break;
      after = rows.at(-1)!.room_id;
    }
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

const MODERATION_EVENTS: Record<ModerationAction['kind'], EventType> = {
  mute: EVENT_TYPES.moderationMuted,
  unmute: EVENT_TYPES.moderationUnmuted,
  ban: EVENT_TYPES.moderationBanned,
  unban: EVENT_TYPES.moderationUnbanned,
  kick: EVENT_TYPES.moderationKicked,
};

/** An event for the relay (see the CreateEventTables migration); the outbox generates its id. */
const OUTBOX_SQL = 'INSERT INTO outbox (type, room_id, data) VALUES ($1, $2, $3::jsonb)';

function outboxParams(type: EventType, roomId: string, data: unknown): [string, string, string] {
  return [type, roomId, JSON.stringify(data)];
}

function toRoom(row: RoomEntity): Room {
  return {
    roomId: row.id,
    visibility: row.visibility,
    title: row.title,
    metadata: row.metadata,
    lastSeq: row.lastSeq,
    lastModSeq: row.lastModSeq,
    retentionDays: row.retentionDays,
    slowModeMs: row.slowModeMs,
    floorSeq: row.floorSeq,
    createdAt: row.createdAt.toISOString(),
  };
}
