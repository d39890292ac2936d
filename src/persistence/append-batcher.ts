import type { Span } from '@opentelemetry/api';
import type { PoolClient } from 'pg';
import type { DataSource } from 'typeorm';
import type { Message } from '../chat/chat.events.js';
import type { AppendResult, NewMessage } from '../chat/chat.ports.js';
import { rowToMessage, type MessageRow } from './message-row.js';
import { isDataError, isLockTimeout } from './sql-state.js';
import { Tracing, type TracedAppend } from '../tracing/tracing.js';

export interface PendingAppend {
  input: NewMessage;
  trusted: boolean;
  /** A missing room is created for this message; otherwise its outcome is 'missing'. */
  createRoom: boolean;
  /** After this instant the caller has been answered UNAVAILABLE: its batch must not commit. */
  deadline: number;
  /**
   * Runs at COMMIT for a created message, even when the caller was answered UNAVAILABLE meanwhile;
   * `parent` is the thread root's new state when the message is a reply.
   */
  onCreated(message: Message, parent: Message | null): void;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/** Enough to amortise a COMMIT over many messages, small enough to keep one transaction short. */
const MAX_BATCH = 500;
/** Left of a batch's budget for the COMMIT (and its fsync), which follows the budget check. */
const COMMIT_RESERVE_MS = 20;
/**
 * A caller with less time left than this is answered now instead of joining a batch: its
 * deadline would otherwise become the budget of every younger caller in the batch.
 */
const MIN_BUDGET_MS = 50;
/**
 * A lingering batch is sent as soon as it holds this many messages: from here on a transaction's
 * fixed cost is a small share of its messages' (about 60 µs of Postgres CPU a message at 50).
 */
const LINGER_FILL = 64;
/** Weight of the latest gap in the moving average of the time between two sends. */
const GAP_WEIGHT = 0.2;

interface Queued extends PendingAppend {
  /** performance.now() when it was submitted. */
  at: number;
  /** With tracing on: the send's append span and context. */
  traced?: TracedAppend;
}

/** What the store's metrics learn of each transaction: its size when attempted, the messages it created once committed. */
export interface AppendObserver {
  batch?(messages: number): void;
  stored?(messages: number): void;
}

/**
 * Group commit: sends that arrive while a transaction is in flight wait for the next one and are
 * stored together, so a COMMIT (and its fsync) serves many messages. Each batch is one call of the
 * chat_append function (one statement, one transaction), which locks its rooms in id order (no
 * deadlocks between batches), refuses non-members of private rooms, resolves repeated clientMsgIds
 * (stored or earlier in the same batch), takes gap-free seqs and inserts all rows at once; every
 * caller is answered only after COMMIT, and a failed batch stores nothing of any of its messages.
 *
 * Linger (adaptive group commit): a COMMIT costs Postgres about the same CPU for one message as for
 * ten, and at a few hundred sends a second most batches would hold one. So while sends arrive
 * closer together than `lingerMs` on average, a batch waits until it holds LINGER_FILL messages or
 * its oldest send has waited `lingerMs`; when they arrive further apart, waiting would gather
 * nobody and only add latency, so a send goes at once, as it does with `lingerMs` 0.
 *
 * A batch refused for its data (one bad row fails the whole statement) or for a room lock it
 * could not get in time (one slow room) is split in two and each half retried, down to the one
 * bad message or the slow room, so only those callers fail.
 */
export class AppendBatcher {
  /**
   * Waiting sends, a queue per room in arrival order; a room is here while it has any. Kept per
   * room so that taking a batch costs its size, not the backlog's: with one saturated room, a
   * single queue of thousands was walked again by every batch to skip the room in flight.
   */
  private readonly waiting = new Map<string, Queued[]>();
  private waitingCount = 0;
  private inFlight = 0;
  /** Moving average of the milliseconds between two submits; starts as "far apart". */
  private gapMs = Number.POSITIVE_INFINITY;
  private lastSubmit = Number.NEGATIVE_INFINITY;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Set by the linger timer: the next batch goes whatever the count. */
  private lingerDue = false;
  /** Rooms of the batches in flight: a room is in one batch at a time. */
  private readonly busyRooms = new Set<string>();

  constructor(
    private readonly db: DataSource,
    private readonly maxInFlight: number,
    private readonly lingerMs: number,
    private readonly observe: AppendObserver = {},
    private readonly tracing: Tracing = Tracing.off,
  ) {}

  submit(pending: PendingAppend): void {
    const at = performance.now();
    const gap = at - this.lastSubmit;
    this.lastSubmit = at;
    this.gapMs = Number.isFinite(this.gapMs) ? this.gapMs + GAP_WEIGHT * (gap - this.gapMs) : gap;
    const traced = this.tracing.on ? this.tracing.startAppend(pending.input.roomId) : null;
    const queued = traced ? this.traced(pending, at, traced) : { ...pending, at };
    const room = this.waiting.get(pending.input.roomId);
    if (room) room.push(queued);
    else this.waiting.set(pending.input.roomId, [queued]);
    this.waitingCount++;
    this.pump();
  }

  /**
   * The send with its append span, ended when the caller is answered; its onCreated (the fan-out)
   * runs in the sender's context, not in that of the send whose submit happened to start the batch.
   */
  private traced(pending: PendingAppend, at: number, traced: TracedAppend): Queued {
    return {
      ...pending,
      at,
      traced,
      onCreated: (message, parent) => Tracing.inContext(traced.context, () => pending.onCreated(message, parent)),
      resolve: (result) => {
        this.tracing.endAppend(traced);
        pending.resolve(result);
      },
      reject: (err) => {
        this.tracing.endAppend(traced, err);
        pending.reject(err);
      },
    };
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight) {
      if (this.lingering()) return;
      const batch = this.take();
      if (batch.length === 0) return;
      const rooms = new Set(batch.map((p) => p.input.roomId));
      for (const room of rooms) this.busyRooms.add(room);
      this.inFlight++;
      void this.commit(batch).finally(() => {
        for (const room of rooms) this.busyRooms.delete(room);
        this.inFlight--;
        this.pump();
      });
    }
  }

  /**
   * Whether the next batch should wait for company; if so, a timer pumps again when its oldest
   * send has waited lingerMs. Runs on every submit that finds a transaction slot free, so the
   * cheap answers come first and fewer than LINGER_FILL rooms are read: more sends than that have
   * company enough.
   */
  private lingering(): boolean {
    const due = this.lingerDue;
    this.lingerDue = false;
    if (due || this.lingerMs === 0 || this.gapMs >= this.lingerMs || this.waitingCount >= LINGER_FILL) return this.stopLinger();
    const oldest = this.oldestReady();
    if (oldest === undefined) return this.stopLinger();
    const waited = performance.now() - oldest;
    if (waited >= this.lingerMs) return this.stopLinger();
    // The timer's clock is coarser than performance.now(): when it fires, the batch goes.
    this.lingerTimer ??= setTimeout(() => {
      this.lingerTimer = undefined;
      this.lingerDue = true;
      this.pump();
    }, this.lingerMs - waited);
    return true;
  }

  private stopLinger(): false {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    return false;
  }

  /** When the oldest send of a room not in flight was submitted (each room's first send is its oldest). */
  private oldestReady(): number | undefined {
    let oldest: number | undefined;
    for (const [roomId, sends] of this.waiting) {
      if (!this.busyRooms.has(roomId) && (oldest === undefined || sends[0]!.at < oldest)) oldest = sends[0]!.at;
    }
    return oldest;
  }

  /**
   * The next batch: whole rooms in the order they started waiting, each room's sends in arrival
   * order, up to MAX_BATCH. Rooms already in flight stay queued: a second batch of a room would
   * only wait for the first one's lock, and a slow room (its row locked elsewhere) then holds one
   * transaction slot, not all of them.
   */
  private take(): Queued[] {
    const batch: Queued[] = [];
    for (const [roomId, sends] of this.waiting) {
      if (batch.length === MAX_BATCH) break;
      if (this.busyRooms.has(roomId)) continue;
      const taken = sends.length <= MAX_BATCH - batch.length ? sends : sends.splice(0, MAX_BATCH - batch.length);
      if (taken === sends) this.waiting.delete(roomId);
      for (const p of taken) batch.push(p);
    }
    this.waitingCount -= batch.length;
    return batch;
  }

  private async commit(queued: Queued[]): Promise<void> {
    const attempt = await this.append(queued);
    if ('rows' in attempt) {
      // One row per caller (idx = its position, 1-based), then one 'parent' row per reply created.
      const parents = new Map<number, AppendRow>();
      for (const row of attempt.rows) if (row.outcome === 'parent') parents.set(row.idx, row);
      let created = 0;
      attempt.batch.forEach((p, i) => {
        const result = toResult(p.input, attempt.rows[i]!);
        if (result.outcome === 'created') {
          created++;
          const parent = parents.get(i + 1);
          p.onCreated(result.message, parent ? rowToMessage(p.input.roomId, parent) : null);
        }
        p.resolve(result);
      });
      if (created) this.observe.stored?.(created);
      return;
    }
    // Retried only after the failed attempt gave its connection back: halves waiting for
    // connections while this one holds its own could exhaust the pool.
    const { batch, err } = attempt;
    const rooms = roomsOf(batch);
    if ((isDataError(err) || isLockTimeout(err)) && rooms.length > 1) {
      // Rooms apart, side by side: the half without the bad message or the locked room commits now.
      const first = new Set(rooms.slice(0, Math.ceil(rooms.length / 2)));
      await Promise.all([
        this.commit(batch.filter((p) => first.has(p.input.roomId))),
        this.commit(batch.filter((p) => !first.has(p.input.roomId))),
      ]);
    } else if (isDataError(err) && batch.length > 1) {
      // One room: one half after the other, so its messages keep their order of arrival in seqs.
      const middle = Math.ceil(batch.length / 2);
      await this.commit(batch.slice(0, middle));
      await this.commit(batch.slice(middle));
    } else {
      for (const p of batch) p.reject(err);
    }
  }

  /** The span of one attempt; untraced sends (HTTP, commands) count in its size but have no link. */
  private batchSpan(batch: Queued[]): Span {
    const traced = batch.flatMap((p) => (p.traced ? [p.traced] : []));
    return this.tracing.startBatch(traced, batch.length, roomsOf(batch).length);
  }

  /**
   * One chat_append call on a connection of its own, so the budget is taken after the wait for a
   * pooled connection. Callers too close to their deadline are answered and left out first; the
   * attempt names the callers it was made for.
   */
  private async append(queued: Queued[]): Promise<{ batch: Queued[]; rows: AppendRow[] } | { batch: Queued[]; err: unknown }> {
    const runner = this.db.createQueryRunner();
    let batch = queued;
    let span: Span | null = null;
    try {
      // The pool's pg client, to run the statement prepared (see APPEND_SQL).
      const client = (await runner.connect()) as PoolClient;
      const now = Date.now();
      batch = queued.filter((p) => p.deadline - now >= MIN_BUDGET_MS);
      for (const p of queued) if (p.deadline - now < MIN_BUDGET_MS) p.reject(new Error('storage deadline too close to start a batch'));
      if (batch.length === 0) return { batch, rows: [] };
      // One statement, so one implicit transaction: chat_append raises (and nothing commits) once
      // the earliest caller's deadline, less the COMMIT's share, has passed.
      const budget = Math.max(1, Math.min(...batch.map((p) => p.deadline)) - now - COMMIT_RESERVE_MS);
      this.observe.batch?.(batch.length);
      span = this.tracing.on ? this.batchSpan(batch) : null;
      const { rows } = await client.query<AppendRow>({
        name: statementName(client),
        text: APPEND_SQL,
        values: [
          batch.map((p) => p.input.roomId),
          batch.map((p) => p.input.senderId),
          batch.map((p) => p.input.body),
          batch.map((p) => p.input.clientMsgId),
          batch.map((p) => !p.trusted),
          batch.map((p) => p.createRoom),
          batch.map((p) => p.input.parentSeq),
          batch.map((p) => (p.input.mentions.length ? JSON.stringify(p.input.mentions) : null)),
          budget,
        ],
      });
      if (span) this.tracing.endBatch(span);
      return { batch, rows };
    } catch (err) {
      if (span) this.tracing.endBatch(span, err);
      return { batch, err };
    } finally {
      await runner.release();
    }
  }
}

function roomsOf(batch: PendingAppend[]): string[] {
  return [...new Set(batch.map((p) => p.input.roomId))].sort();
}

/**
 * See the AddMessageChanges migration: the callers' rows in input order, then the parents' rows.
 * Prepared once per connection: parsing, analysing and planning this call each time cost the
 * backend about 125,000 instructions of the 1.3 million a one-message call takes (callgrind). The
 * columns are named, not `*`, so a later migration that adds some cannot change the prepared
 * statement's result type under a running instance.
 */
const APPEND_SQL =
  'SELECT idx, outcome, id, seq, mod_seq, sender_id, body, client_msg_id, created_at, version, edited_at, deleted_at, ' +
  'parent_seq, reply_count, last_reply_seq, mentions, reactions FROM chat_append($1, $2, $3, $4, $5, $6, $7, $8, $9)';

/**
 * A prepared statement's name for each pg client. Unique per client object, not one fixed name:
 * the embedded database serves every connection from one session, where a reconnected client
 * preparing a name its predecessor left behind would fail.
 */
const statementNames = new WeakMap<PoolClient, string>();
let statementSerial = 0;
function statementName(client: PoolClient): string {
  let name = statementNames.get(client);
  if (!name) statementNames.set(client, (name = `chat_append_${++statementSerial}`));
  return name;
}

interface AppendRow extends MessageRow {
  idx: number;
  outcome: 'created' | 'existing' | 'forbidden' | 'missing' | 'bad_parent' | 'parent';
}

function toResult(input: NewMessage, row: AppendRow): AppendResult {
  if (row.outcome === 'created' || row.outcome === 'existing') return { outcome: row.outcome, message: rowToMessage(input.roomId, row) };
  if (row.outcome === 'parent') throw new Error('chat_append answered a parent row in place of a caller row');
  return { outcome: row.outcome };
}
