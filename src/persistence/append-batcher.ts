import type { DataSource } from 'typeorm';
import type { Message } from '../chat/chat.events.js';
import type { AppendResult, NewMessage } from '../chat/chat.ports.js';

export interface PendingAppend {
  input: NewMessage;
  trusted: boolean;
  /** After this instant the caller has been answered UNAVAILABLE: its batch must not commit. */
  deadline: number;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/** Enough to amortise a COMMIT over many messages, small enough to keep one transaction short. */
const MAX_BATCH = 500;

/**
 * Group commit: sends that arrive while a transaction is in flight wait for the next one and are
 * stored together, so a COMMIT (and its fsync) serves many messages. Each batch is one call of the
 * chat_append function (one statement, one transaction), which locks its rooms in id order (no
 * deadlocks between batches), refuses non-members of private rooms, resolves repeated clientMsgIds
 * (stored or earlier in the same batch), takes gap-free seqs and inserts all rows at once; every
 * caller is answered only after COMMIT, and a failed batch stores nothing of any of its messages.
 */
export class AppendBatcher {
  private queue: PendingAppend[] = [];
  private inFlight = 0;

  constructor(
    private readonly db: DataSource,
    private readonly maxInFlight: number,
  ) {}

  submit(pending: PendingAppend): void {
    this.queue.push(pending);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.commit(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async commit(queued: PendingAppend[]): Promise<void> {
    // Callers whose deadline passed in the queue were answered UNAVAILABLE already: store nothing for them.
    const now = Date.now();
    const batch = queued.filter((p) => p.deadline > now);
    for (const p of queued) if (p.deadline <= now) p.reject(new Error('storage deadline passed in the queue'));
    if (batch.length === 0) return;
    let rows: AppendRow[];
    try {
      // One statement, so one implicit transaction: chat_append raises (and nothing commits) once
      // the earliest caller's deadline has passed.
      rows = (await this.db.query(APPEND_SQL, [
        batch.map((p) => p.input.roomId),
        batch.map((p) => p.input.senderId),
        batch.map((p) => p.input.body),
        batch.map((p) => p.input.clientMsgId),
        batch.map((p) => !p.trusted),
        Math.max(1, Math.min(...batch.map((p) => p.deadline)) - Date.now()),
      ])) as AppendRow[];
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => p.resolve(toResult(p.input, rows[i])));
  }
}

/** See the CreateAppendFunction migration: rows come back in input order, one per input. */
const APPEND_SQL = 'SELECT idx, outcome, id, seq, body, created_at FROM chat_append($1, $2, $3, $4, $5, $6)';

interface AppendRow {
  idx: number;
  outcome: 'created' | 'existing' | 'forbidden';
  id: string | null;
  seq: string | null;
  body: string | null;
  created_at: Date | null;
}

function toResult(input: NewMessage, row: AppendRow): AppendResult {
  if (row.outcome === 'forbidden') return { outcome: 'forbidden' };
  const message: Message = {
    id: row.id!,
    roomId: input.roomId,
    seq: Number(row.seq),
    senderId: input.senderId,
    body: row.body!,
    clientMsgId: input.clientMsgId,
    createdAt: row.created_at!.toISOString(),
  };
  return { outcome: row.outcome, message };
}
