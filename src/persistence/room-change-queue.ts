import type { DataSource, EntityManager } from 'typeorm';
import type { ChangeResult } from '../chat/chat.ports.js';

interface QueuedChange {
  apply(tx: EntityManager): Promise<ChangeResult>;
  /** After this instant the caller has been answered UNAVAILABLE: the change is not started. */
  deadline: number;
  resolve(result: ChangeResult): void;
  reject(err: unknown): void;
}

/** Enough to amortise a COMMIT over a burst of reactions, few enough to keep the room's lock short. */
const MAX_BATCH = 50;

/**
 * Changes of one room, one transaction at a time on this instance, each transaction taking every
 * change queued for the room meanwhile.
 *
 * Why: a change holds its room's row lock for several round trips. Without the queue, a burst of
 * reactions to one message had every pooled connection waiting on that one lock, so sends to other
 * rooms waited for a connection, and the burst's own last changes ran out of time (UNAVAILABLE).
 * Now a room ties up at most one connection per instance, and a burst commits a few times, not
 * once per change. Changes are applied in arrival order, each with its own checks, so their
 * answers are those they would get one by one.
 *
 * A batch that fails (a refused value, a lost connection) stores none of its changes; each is then
 * tried again alone, so only the one at fault fails.
 */
export class RoomChangeQueue {
  private readonly queues = new Map<string, QueuedChange[]>();

  constructor(
    private readonly db: DataSource,
    /** The wait for the room's lock: a room held longer fails its changes, not a pooled connection forever. */
    private readonly lockTimeoutMs: number,
  ) {}

  submit(roomId: string, change: QueuedChange): void {
    const queue = this.queues.get(roomId);
    if (queue) {
      queue.push(change);
      return;
    }
    this.queues.set(roomId, [change]);
    void this.drain(roomId);
  }

  private async drain(roomId: string): Promise<void> {
    const queue = this.queues.get(roomId)!;
    while (queue.length > 0) {
      const now = Date.now();
      const batch = queue.splice(0, MAX_BATCH).filter((c) => {
        if (c.deadline > now) return true;
        c.reject(new Error('storage deadline passed before the change started'));
        return false;
      });
      if (batch.length === 0) continue;
      if (!(await this.run(batch)) && batch.length > 1) for (const c of batch) await this.run([c]);
    }
    this.queues.delete(roomId);
  }

  /** One transaction for the batch; answers each change after COMMIT. False when it failed (batch of several: nobody answered). */
  private async run(batch: QueuedChange[]): Promise<boolean> {
    try {
      const results = await this.db.transaction(async (tx) => {
        await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [`${this.lockTimeoutMs}ms`]);
        const answers: ChangeResult[] = [];
        for (const c of batch) answers.push(await c.apply(tx));
        return answers;
      });
      batch.forEach((c, i) => c.resolve(results[i]!));
      return true;
    } catch (err) {
      if (batch.length === 1) batch[0]!.reject(err);
      return false;
    }
  }
}
