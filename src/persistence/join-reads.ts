import DataLoader from 'dataloader';
import type { DataSource } from 'typeorm';
import type { Role, Visibility } from '../chat/chat.events.js';
import type { RoomAccess, StoredPage } from '../chat/chat.ports.js';
import { MESSAGE_COLUMNS, rowToMessage, type MessageRow } from './message-row.js';
import { isDataError } from './sql-state.js';

/** Keys per statement: a wave of rejoins larger than this takes several. */
const WAVE_MAX = 500;

/**
 * How long a wave waits for more keys while joins come concurrently: a connect or reconnect storm.
 * Each statement is a transaction of its own, and at a few hundred a second Postgres spends far more
 * per transaction than flat out (bench/pg/rate.sh: one-message chat_append 880-922 us of CPU at
 * 200/s, 497-508 us at full speed), so joins a few milliseconds apart are much cheaper together.
 */
export const JOIN_WAVE_LINGER_MS = 25;

interface AccessRow {
  idx: string;
  last_seq: string;
  last_mod_seq: string;
  visibility: Visibility;
  is_member: boolean;
  role: Role | null;
  last_read_seq: string;
}

/** Each (room, user) asked ($1 rooms, $2 users, position idx), with the room's access for the user and the user's read state. */
const ACCESS_CTE = `
  access AS (
    SELECT q.idx, q.room_id, q.user_id, r.last_seq, r.last_mod_seq, r.visibility, m.user_id IS NOT NULL AS is_member, m.role,
           COALESCE(rr.last_read_seq, 0) AS last_read_seq, rr.joined_at IS NOT NULL AS joined
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q (room_id, user_id, idx)
    JOIN rooms r ON r.id = q.room_id
    LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = q.user_id
    LEFT JOIN room_reads rr ON rr.user_id = q.user_id AND rr.room_id = r.id)`;

const ACCESS_COLUMNS = 'idx, last_seq, last_mod_seq, visibility, is_member, role, last_read_seq';

const ACCESS_SQL = `WITH ${ACCESS_CTE} SELECT ${ACCESS_COLUMNS} FROM access`;

/**
 * ACCESS_SQL that also records the first join of a user allowed in (for rooms.list); a rejoin, the
 * common case after reconnects, inserts no row and so writes nothing. DISTINCT: one user's two
 * connections may join one room in the same wave, and a statement may not update a row twice.
 * Inserted in key order, so two instances' waves take the rows' locks in the same order.
 */
const OPEN_SQL = `
  WITH ${ACCESS_CTE},
  joined AS (
    INSERT INTO room_reads (user_id, room_id, joined_at)
    SELECT DISTINCT user_id, room_id, now() FROM access WHERE (visibility = 'public' OR is_member) AND NOT joined
    ORDER BY user_id, room_id
    ON CONFLICT (user_id, room_id) DO UPDATE SET joined_at = EXCLUDED.joined_at WHERE room_reads.joined_at IS NULL)
  SELECT ${ACCESS_COLUMNS} FROM access`;

/**
 * The messages after each asked seq ($1 rooms, $2 seqs, $3 row limits), ascending, with the room's
 * retention floor. The floor comes from the statement's own snapshot: retention removes rows and
 * moves the floor in one commit.
 */
const AFTER_SQL = `
  SELECT q.idx, COALESCE(r.floor_seq, 1) AS room_floor_seq, m.*
  FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY AS q (room_id, after_seq, row_limit, idx)
  LEFT JOIN rooms r ON r.id = q.room_id
  LEFT JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM messages
                     WHERE room_id = q.room_id AND seq > q.after_seq ORDER BY seq LIMIT q.row_limit) AS m ON true
  ORDER BY q.idx, m.seq`;

export interface AccessKey {
  roomId: string;
  userId: string;
}

export interface AfterKey {
  roomId: string;
  afterSeq: number;
  limit: number;
}

/**
 * The reads of room.join (open, the access re-check, the missed messages), each gathered per turn
 * of the event loop into one statement: a reconnect storm brings hundreds of rejoins at once, and
 * one statement for a wave costs Postgres and the pool far less than one per rejoin. While joins
 * keep coming a wave lingers (JOIN_WAVE_LINGER_MS); outside storms a wave holds one key and goes at once.
 */
export class JoinReads {
  private readonly opens: DataLoader<AccessKey, RoomAccess | null>;
  private readonly accesses: DataLoader<AccessKey, RoomAccess | null>;
  private readonly afters: DataLoader<AfterKey, StoredPage>;

  constructor(private readonly db: DataSource) {
    this.opens = wave((keys) => this.readAccess(OPEN_SQL, keys));
    this.accesses = wave((keys) => this.readAccess(ACCESS_SQL, keys));
    this.afters = wave((keys) => this.readAfter(keys));
  }

  /** The room's access for the user (null: no such room), recording a first join the user is allowed. */
  open(key: AccessKey): Promise<RoomAccess | null> {
    return this.opens.load(key);
  }

  /** The room's access for the user (null: no such room). */
  access(key: AccessKey): Promise<RoomAccess | null> {
    return this.accesses.load(key);
  }

  /** Up to `limit` messages after `afterSeq`, ascending; `hasMore` when there are more. */
  after(key: AfterKey): Promise<StoredPage> {
    return this.afters.load(key);
  }

  private async readAccess(sql: string, keys: readonly AccessKey[]): Promise<(RoomAccess | null)[]> {
    const rows = (await this.db.query(sql, [keys.map((k) => k.roomId), keys.map((k) => k.userId)])) as AccessRow[];
    const found = new Map(rows.map((row) => [Number(row.idx), toAccess(row)]));
    return keys.map((_, i) => found.get(i + 1) ?? null);
  }

  private async readAfter(keys: readonly AfterKey[]): Promise<StoredPage[]> {
    const rows = (await this.db.query(AFTER_SQL, [
      keys.map((k) => k.roomId),
      keys.map((k) => k.afterSeq),
      keys.map((k) => k.limit + 1),
    ])) as (Partial<MessageRow> & { idx: string; room_floor_seq: string })[];
    const byKey = keys.map(() => [] as typeof rows);
    for (const row of rows) byKey[Number(row.idx) - 1]!.push(row);
    return keys.map((key, i) => {
      const own = byKey[i]!;
      const found = own.filter((row) => row.id != null) as MessageRow[];
      return {
        messages: found.slice(0, key.limit).map((row) => rowToMessage(key.roomId, row)),
        hasMore: found.length > key.limit,
        floorSeq: Number(own[0]!.room_floor_seq),
      };
    });
  }
}

/**
 * A loader of one statement per wave. When Postgres refuses a wave's data, each key is asked
 * alone, so only the key at fault fails; any other failure fails the wave's callers, as it would
 * each of their statements.
 *
 * A wave runs on the next turn of the event loop (setImmediate runs after the poll phase, so every
 * request whose socket data arrived in that phase is in it) — or, while joins come concurrently (a
 * wave of this kind is in flight, or the last one held several keys and began less than
 * JOIN_WAVE_LINGER_MS ago), after JOIN_WAVE_LINGER_MS. One client joining its rooms one after
 * another never waits: its waves hold one key and none is in flight when the next comes.
 */
function wave<K, V>(load: (keys: readonly K[]) => Promise<V[]>): DataLoader<K, V> {
  let inFlight = 0;
  let lastStart = -Infinity;
  let lastSize = 0;
  const concurrent = () => inFlight > 0 || (lastSize > 1 && performance.now() - lastStart < JOIN_WAVE_LINGER_MS);
  return new DataLoader<K, V>(
    async (keys) => {
      lastStart = performance.now();
      lastSize = keys.length;
      inFlight++;
      try {
        return await load(keys);
      } catch (err) {
        if (keys.length === 1 || !isDataError(err)) throw err;
        return Promise.all(
          keys.map((key) =>
            load([key]).then(
              ([value]) => value as V,
              (e: unknown) => toError(e),
            ),
          ),
        );
      } finally {
        inFlight--;
      }
    },
    {
      cache: false,
      maxBatchSize: WAVE_MAX,
      batchScheduleFn: (run) => (concurrent() ? setTimeout(run, JOIN_WAVE_LINGER_MS) : setImmediate(run)),
    },
  );
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function toAccess(row: AccessRow): RoomAccess {
  return {
    visibility: row.visibility,
    isMember: row.is_member,
    role: row.role ?? 'member',
    lastSeq: Number(row.last_seq),
    lastModSeq: Number(row.last_mod_seq),
    lastReadSeq: Number(row.last_read_seq),
  };
}
