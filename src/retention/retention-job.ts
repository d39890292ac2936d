import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { Leadership, LeaderSession } from '../events/leadership.js';
import { pause } from '../events/retry-delay.js';

/** Messages one statement removes at most: a short lock on the room, a short transaction. */
export const RETENTION_BATCH = 1000;
/** Rooms with retention read per listing query. */
const ROOMS_PAGE = 100;
/** Shutdown waits this long for the current statement, then goes on. */
const STOP_BOUND_MS = 2000;

/**
 * Removes up to $2 messages of room $1 from its floor on, stopping at the first one that has not
 * expired: only the expired prefix goes, so nothing at or above the floor is ever removed.
 * One statement, one transaction: the rows, their versions and reactions, the new floor and the
 * `room.truncated` event commit together, under the room's row lock (the lock every change and
 * append takes), so no change or read ever sees a message below the floor. seq and modSeq
 * counters are not touched. Answers the new floor, or nothing when nothing expired.
 */
const TRUNCATE_SQL = `
  WITH room AS (
    SELECT id, floor_seq, retention_days FROM rooms WHERE id = $1 AND retention_days IS NOT NULL FOR UPDATE),
  candidates AS (
    SELECT m.seq, m.created_at < now() - make_interval(days => r.retention_days) AS expired
    FROM room r CROSS JOIN LATERAL (
      SELECT x.seq, x.created_at FROM messages x WHERE x.room_id = r.id AND x.seq >= r.floor_seq ORDER BY x.seq LIMIT $2) AS m),
  bound AS (
    SELECT COALESCE(min(seq) FILTER (WHERE NOT expired), max(seq) + 1) AS new_floor FROM candidates HAVING count(*) > 0),
  gone AS (
    DELETE FROM messages m USING room r, bound b
    WHERE m.room_id = r.id AND m.seq >= r.floor_seq AND m.seq < b.new_floor RETURNING m.mod_seq),
  versions AS (
    DELETE FROM message_versions v USING room r, bound b WHERE v.room_id = r.id AND v.seq >= r.floor_seq AND v.seq < b.new_floor),
  reactions AS (
    DELETE FROM message_reactions x USING room r, bound b WHERE x.room_id = r.id AND x.seq >= r.floor_seq AND x.seq < b.new_floor),
  moved AS (
    UPDATE rooms SET floor_seq = b.new_floor,
                     floor_mod_seq = GREATEST(rooms.floor_mod_seq, COALESCE((SELECT max(mod_seq) FROM gone), 0))
    FROM bound b WHERE rooms.id = $1 AND b.new_floor > rooms.floor_seq RETURNING rooms.floor_seq),
  event AS (
    INSERT INTO outbox (type, room_id, data)
    SELECT 'room.truncated', $1, jsonb_build_object('roomId', $1::text, 'floorSeq', floor_seq) FROM moved)
  SELECT floor_seq::text AS floor_seq, (SELECT count(*) FROM gone)::int AS removed FROM moved`;

const ROOMS_SQL = 'SELECT id FROM rooms WHERE retention_days IS NOT NULL AND id > $1 ORDER BY id LIMIT $2';

/**
 * Retention: every `intervalMs`, on the one replica that holds the retention lock (the events
 * relay's election, with a key of its own), walks the rooms that have retentionDays and removes
 * their expired prefix in batches of RETENTION_BATCH, one statement each. A failure ends the
 * term; the next leader (or this one, after the interval) goes on from the stored floors.
 */
export class RetentionJob implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Retention');
  private readonly stop = new AbortController();
  private running: Promise<void> | null = null;

  constructor(
    private readonly leadership: Leadership,
    private readonly intervalMs: number,
  ) {}

  onApplicationBootstrap(): void {
    this.running = this.lead().catch((err: unknown) => this.logger.error(`retention stopped: ${String(err)}`));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stop.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((resolve) => (timer = setTimeout(resolve, STOP_BOUND_MS)))]);
    clearTimeout(timer);
  }

  private async lead(): Promise<void> {
    while (!this.stop.signal.aborted) {
      const session = await this.leadership.acquire(this.stop.signal);
      if (!session) return;
      const signal = AbortSignal.any([this.stop.signal, session.lost]);
      try {
        while (!signal.aborted) {
          await this.pass(session, signal);
          await pause(this.intervalMs, signal);
        }
      } catch (err) {
        this.logger.warn(`retention pass failed: ${(err as Error).message}; trying again after ${this.intervalMs} ms`);
        await pause(this.intervalMs, this.stop.signal);
      } finally {
        await session.release();
      }
    }
  }

  /** One pass over every room with retention; each statement is bounded by the batch and the session's statement timeout. */
  async pass(session: LeaderSession, signal: AbortSignal): Promise<number> {
    let removed = 0;
    for (let after = ''; !signal.aborted;) {
      const rooms = await session.query<{ id: string }>(ROOMS_SQL, [after, ROOMS_PAGE]);
      for (const { id } of rooms) {
        for (let more = true; more && !signal.aborted;) {
          const [moved] = await session.query<{ floor_seq: string; removed: number }>(TRUNCATE_SQL, [id, RETENTION_BATCH]);
          removed += moved?.removed ?? 0;
          // A full batch may have more expired messages behind it; anything less reached a live one or the end.
          more = moved !== undefined && moved.removed === RETENTION_BATCH;
        }
      }
      if (rooms.length < ROOMS_PAGE) break;
      after = rooms.at(-1)!.id;
    }
    if (removed > 0) this.logger.log(`removed ${removed} expired message(s)`);
    return removed;
  }
}
