import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, LessThan, MoreThan, type FindOptionsWhere } from 'typeorm';
import { StorageUnavailableError } from '../chat/chat.errors.js';
import type { HistoryPage, Message } from '../chat/chat.events.js';
import { MessageStore, type NewMessage, type PageQuery } from '../chat/chat.ports.js';
import { MessageEntity } from './entities/message.entity.js';
import { RoomEntity } from './entities/room.entity.js';
import { STORAGE_TIMEOUT_MS } from './storage-timeout.js';

interface InsertedRow {
  created_at: Date;
}

@Injectable()
export class TypeOrmMessageStore extends MessageStore {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(STORAGE_TIMEOUT_MS) private readonly timeoutMs: number,
  ) {
    super();
  }

  /**
   * One transaction: lock the room row while taking its next seq, then insert. A duplicate
   * clientMsgId (ON CONFLICT DO NOTHING) rolls the seq back, so seqs stay gap-free; concurrent
   * duplicates queue on the room lock, and the later one finds the committed row.
   */
  async append(input: NewMessage): Promise<{ message: Message; created: boolean }> {
    return this.guard(async (deadline) => {
      const qr = this.db.createQueryRunner();
      await qr.connect();
      try {
        await qr.startTransaction();
        const [{ last_seq: seqText }] = (await qr.query(
          `INSERT INTO rooms (id, last_seq) VALUES ($1, 1)
           ON CONFLICT (id) DO UPDATE SET last_seq = rooms.last_seq + 1
           RETURNING last_seq`,
          [input.roomId],
        )) as { last_seq: string }[];
        const id = randomUUID();
        const seq = Number(seqText);
        const inserted = (await qr.query(
          `INSERT INTO messages (id, room_id, seq, sender_id, body, client_msg_id)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (room_id, sender_id, client_msg_id) DO NOTHING
           RETURNING created_at`,
          [id, input.roomId, seq, input.senderId, input.body, input.clientMsgId],
        )) as InsertedRow[];
        if (inserted.length === 0) {
          await qr.rollbackTransaction();
          return { message: await this.findByClientMsgId(input), created: false };
        }
        // The caller has been told UNAVAILABLE already: roll back rather than store a message nobody will see pushed.
        if (Date.now() > deadline) throw new Error('storage deadline passed before COMMIT');
        await qr.commitTransaction();
        return { message: { id, ...input, seq, createdAt: inserted[0].created_at.toISOString() }, created: true };
      } catch (err) {
        if (qr.isTransactionActive) await qr.rollbackTransaction().catch(() => undefined);
        throw err;
      } finally {
        await qr.release();
      }
    });
  }

  async openRoom(roomId: string): Promise<number> {
    return this.guard(async () => {
      const rooms = this.db.getRepository(RoomEntity);
      await rooms.createQueryBuilder().insert().values({ id: roomId }).orIgnore().execute();
      const room = await rooms.findOneByOrFail({ id: roomId });
      return room.lastSeq;
    });
  }

  /** Keyset paging on (room_id, seq), served by the unique index; returns ascending seqs. */
  async page({ roomId, beforeSeq, afterSeq, limit }: PageQuery): Promise<HistoryPage> {
    return this.guard(async () => {
      const where: FindOptionsWhere<MessageEntity> = { roomId };
      if (afterSeq !== undefined) where.seq = MoreThan(afterSeq);
      else if (beforeSeq !== undefined) where.seq = LessThan(beforeSeq);
      const ascending = afterSeq !== undefined;
      const rows = await this.db.getRepository(MessageEntity).find({
        where,
        order: { seq: ascending ? 'ASC' : 'DESC' },
        take: limit + 1,
      });
      const hasMore = rows.length > limit;
      const pageRows = rows.slice(0, limit);
      if (!ascending) pageRows.reverse();
      return { messages: pageRows.map(toMessage), hasMore };
    });
  }

  private async findByClientMsgId(input: NewMessage): Promise<Message> {
    const row = await this.db.getRepository(MessageEntity).findOneByOrFail({
      roomId: input.roomId,
      senderId: input.senderId,
      clientMsgId: input.clientMsgId ?? undefined,
    });
    return toMessage(row);
  }

  /**
   * Any database failure, or no answer within the storage timeout, means the outcome is
   * unconfirmed: the caller sees UNAVAILABLE. The work gets the deadline to check before COMMIT.
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
      throw new StorageUnavailableError(err);
    } finally {
      clearTimeout(timer);
    }
  }
}

export function toMessage(row: MessageEntity): Message {
  return {
    id: row.id,
    roomId: row.roomId,
    seq: row.seq,
    senderId: row.senderId,
    body: row.body,
    clientMsgId: row.clientMsgId,
    createdAt: row.createdAt.toISOString(),
  };
}
