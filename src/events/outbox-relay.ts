import { Logger } from '@nestjs/common';
import type { ChatMetrics } from '../metrics/chat-metrics.js';
import type { ChatEventOut } from './chat-events-out.js';
import type { LeaderSession } from './leadership.js';
import { pause, retryDelayMs } from './retry-delay.js';
import type { StreamPublisher } from './stream-publisher.js';

/** Enough to amortise a round trip over many events, small enough for one quick statement. */
export const RELAY_BATCH = 500;
/** The poll while events flow: the most an event waits for the relay to notice it then. */
export const RELAY_POLL_MS = 50;
/**
 * The slowest poll, reached by doubling after each empty read: polling an empty outbox 20 times a
 * second cost an idle instance about 1.5% of a core (2.45-2.65% against 0.8-0.9% with 1 s polls).
 * The price is latency for the first event after a quiet spell (at most this), not for the ones
 * that follow it.
 */
export const RELAY_IDLE_POLL_MS = 500;

interface OutboxRow {
  position: string;
  event_id: string;
  type: string;
  room_id: string;
  data: unknown;
}

/**
 * Committed events, oldest position first. A row committed later with a lower position (another
 * room's transaction was slower) simply comes in a later batch; within a room, positions follow
 * commit order (every writer locks the room row), so a room's events are published in order.
 */
const BATCH_SQL = 'SELECT position, event_id, type, room_id, data FROM outbox ORDER BY position LIMIT $1';
/** By exact positions: a range could also take rows that committed after the batch was read. */
const DELETE_SQL = 'DELETE FROM outbox WHERE position = ANY ($1::bigint[])';
/** Hands the events to webhook delivery in the statement (so the transaction) that removes them from the outbox. */
const MOVE_SQL = `
  WITH moved AS (DELETE FROM outbox WHERE position = ANY ($1::bigint[]) RETURNING position, event_id, type, room_id, data)
  INSERT INTO webhook_deliveries (event_id, url, type, room_id, data)
  SELECT m.event_id, u.url, m.type, m.room_id, m.data
  FROM moved m CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS u(url, n)
  ORDER BY m.position, u.n`;

/**
 * Drains the outbox while this instance leads: reads a batch, appends it to the stream (when
 * Redis is configured), and only then removes it from the outbox — moving it to the webhook queue
 * when webhooks are configured. A crash between the two publishes the batch again after the
 * takeover, with the same event ids: at least once, never lost.
 */
export class OutboxRelay {
  private readonly logger = new Logger('Events');
  /** Never quicker than the poll while events flow. */
  private readonly idlePollMs: number;

  constructor(
    private readonly stream: StreamPublisher | null,
    private readonly webhookUrls: string[] | null,
    private readonly metrics: ChatMetrics,
    private readonly pollMs = RELAY_POLL_MS,
    idlePollMs = RELAY_IDLE_POLL_MS,
  ) {
    this.idlePollMs = Math.max(idlePollMs, pollMs);
  }

  /** Relays until `signal` aborts. A database failure rejects (the leadership term ends); Redis failures are retried here. */
  async run(session: LeaderSession, signal: AbortSignal): Promise<void> {
    let redisFailures = 0;
    let idleMs = this.pollMs;
    while (!signal.aborted) {
      const rows = await session.query<OutboxRow>(BATCH_SQL, [RELAY_BATCH]);
      if (rows.length === 0) {
        await pause(idleMs, signal);
        idleMs = Math.min(idleMs * 2, this.idlePollMs);
        continue;
      }
      idleMs = this.pollMs;
      if (this.stream) {
        try {
          await this.stream.publish(rows.map(toEvent));
        } catch (err) {
          const delay = retryDelayMs(++redisFailures, 100, 5000);
          // One failure alone (the first batch while the connection is still being made) is retried quietly.
          if (redisFailures > 1)
            this.logger.warn(
              `cannot append ${rows.length} events to ${this.stream.stream}: ${(err as Error).message}; retrying in ${delay} ms`,
            );
          await pause(delay, signal);
          continue;
        }
        if (redisFailures > 1) this.logger.log(`appending events to ${this.stream.stream} again`);
        redisFailures = 0;
      }
      const positions = rows.map((r) => r.position);
      await session.query(this.webhookUrls ? MOVE_SQL : DELETE_SQL, this.webhookUrls ? [positions, this.webhookUrls] : [positions]);
      this.metrics.eventsPublished.inc(rows.length);
      // A partial batch means the outbox is drained: reading again at once would relay the next
      // events one or two at a time (a read, a stream append and a delete each). Waiting the poll
      // interval lets them gather, at the cost of the same latency an idle outbox already has.
      if (rows.length < RELAY_BATCH) await pause(this.pollMs, signal);
    }
  }
}

function toEvent(row: OutboxRow): ChatEventOut {
  return { id: row.event_id, type: row.type, roomId: row.room_id, data: row.data };
}

/** Pending events, counted up to 100,000 so that a scrape stays cheap however large the backlog grows. */
export async function countBacklog(db: { query(sql: string): Promise<unknown> }): Promise<number> {
  const [row] = (await db.query('SELECT count(*)::int AS n FROM (SELECT 1 FROM outbox LIMIT 100000) pending')) as { n: number }[];
  return row.n;
}
