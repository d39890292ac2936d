import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import type { Message, Visibility } from '../chat/chat.events.js';
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

const key = (m: NewMessage) => `${m.roomId}\u0000${m.senderId}\u0000${m.clientMsgId}`;

/**
 * Group commit: sends that arrive while a transaction is in flight wait for the next one and are
 * stored together, so a COMMIT (and its fsync) serves many messages. Each batch is one
 * transaction that locks its rooms in id order (no deadlocks between batches), refuses
 * non-members of private rooms, resolves repeated clientMsgIds (stored or earlier in the same
 * batch), takes gap-free seqs and inserts all rows at once; every caller is answered only after
 * COMMIT, and a failed batch stores nothing of any of its messages.
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
    let results: AppendResult[];
    const qr = this.db.createQueryRunner();
    try {
      await qr.connect();
      await qr.startTransaction();
      results = await this.write(qr, batch);
      if (Date.now() > Math.min(...batch.map((p) => p.deadline))) throw new Error('storage deadline passed before COMMIT');
      await qr.commitTransaction();
    } catch (err) {
      if (qr.isTransactionActive) await qr.rollbackTransaction().catch(() => undefined);
      for (const p of batch) p.reject(err);
      return;
    } finally {
      await qr.release();
    }
    batch.forEach((p, i) => p.resolve(results[i]));
  }

  private async write(qr: QueryRunner, batch: PendingAppend[]): Promise<AppendResult[]> {
    const roomIds = [...new Set(batch.map((p) => p.input.roomId))].sort();
    // Creates missing rooms and locks every room of the batch, in id order.
    const rooms = (await qr.query(
      `INSERT INTO rooms (id) SELECT id FROM unnest($1::text[]) AS r(id) ORDER BY id
       ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
       RETURNING id, last_seq, visibility`,
      [roomIds],
    )) as { id: string; last_seq: string; visibility: Visibility }[];
    const lastSeq = new Map(rooms.map((r) => [r.id, Number(r.last_seq)]));
    const privateRooms = new Set(rooms.filter((r) => r.visibility === 'private').map((r) => r.id));

    const members = await this.membersOf(
      qr,
      batch.filter((p) => !p.trusted && privateRooms.has(p.input.roomId)).map((p) => p.input),
    );
    const stored = await this.storedRepeats(
      qr,
      batch.map((p) => p.input).filter((m) => m.clientMsgId !== null),
    );

    const results: (AppendResult | { sameAs: number })[] = [];
    const firstInBatch = new Map<string, number>();
    const rows: Message[] = [];
    batch.forEach(({ input, trusted }, i) => {
      if (!trusted && privateRooms.has(input.roomId) && !members.has(`${input.roomId}\u0000${input.senderId}`)) {
        results.push({ outcome: 'forbidden' });
        return;
      }
      if (input.clientMsgId !== null) {
        const existing = stored.get(key(input));
        if (existing) return void results.push({ outcome: 'existing', message: existing });
        const earlier = firstInBatch.get(key(input));
        if (earlier !== undefined) return void results.push({ sameAs: earlier });
        firstInBatch.set(key(input), i);
      }
      const seq = (lastSeq.get(input.roomId) ?? 0) + 1;
      lastSeq.set(input.roomId, seq);
      const message: Message = { id: randomUUID(), ...input, seq, createdAt: '' };
      rows.push(message);
      results.push({ outcome: 'created', message });
    });

    if (rows.length > 0) {
      const inserted = (await qr.query(
        `INSERT INTO messages (id, room_id, seq, sender_id, body, client_msg_id)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
         RETURNING id, created_at`,
        [
          rows.map((m) => m.id),
          rows.map((m) => m.roomId),
          rows.map((m) => m.seq),
          rows.map((m) => m.senderId),
          rows.map((m) => m.body),
          rows.map((m) => m.clientMsgId),
        ],
      )) as { id: string; created_at: Date }[];
      const createdAt = new Map(inserted.map((r) => [r.id, r.created_at.toISOString()]));
      for (const m of rows) m.createdAt = createdAt.get(m.id) ?? new Date().toISOString();
      const touched = [...new Set(rows.map((m) => m.roomId))];
      await qr.query(`UPDATE rooms SET last_seq = v.last FROM unnest($1::text[], $2::bigint[]) AS v(id, last) WHERE rooms.id = v.id`, [
        touched,
        touched.map((id) => lastSeq.get(id)),
      ]);
    }
    // A repeat within the batch gets the message its first occurrence created, not a second push.
    return results.map((r) => {
      if (!('sameAs' in r)) return r;
      const first = results[r.sameAs] as AppendResult & { message: Message };
      return { outcome: 'existing', message: first.message };
    });
  }

  /** `room\0user` pairs among `inputs` that are members. */
  private async membersOf(qr: QueryRunner, inputs: NewMessage[]): Promise<Set<string>> {
    if (inputs.length === 0) return new Set();
    const rows = (await qr.query(
      `SELECT m.room_id, m.user_id FROM room_members m
       JOIN unnest($1::text[], $2::text[]) AS q(room_id, user_id) USING (room_id, user_id)`,
      [inputs.map((m) => m.roomId), inputs.map((m) => m.senderId)],
    )) as { room_id: string; user_id: string }[];
    return new Set(rows.map((r) => `${r.room_id}\u0000${r.user_id}`));
  }

  /** Messages already stored under the (room, sender, clientMsgId) keys of `inputs`. */
  private async storedRepeats(qr: QueryRunner, inputs: NewMessage[]): Promise<Map<string, Message>> {
    if (inputs.length === 0) return new Map();
    const rows = (await qr.query(
      `SELECT m.id, m.room_id, m.seq, m.sender_id, m.body, m.client_msg_id, m.created_at FROM messages m
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS q(room_id, sender_id, client_msg_id)
         USING (room_id, sender_id, client_msg_id)`,
      [inputs.map((m) => m.roomId), inputs.map((m) => m.senderId), inputs.map((m) => m.clientMsgId)],
    )) as { id: string; room_id: string; seq: string; sender_id: string; body: string; client_msg_id: string; created_at: Date }[];
    return new Map(
      rows.map((r) => {
        const message: Message = {
          id: r.id,
          roomId: r.room_id,
          seq: Number(r.seq),
          senderId: r.sender_id,
          body: r.body,
          clientMsgId: r.client_msg_id,
          createdAt: r.created_at.toISOString(),
        };
        return [key(message), message];
      }),
    );
  }
}
