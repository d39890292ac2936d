import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, Unique } from 'typeorm';
import { bigintAsNumber } from './bigint.transformer.js';

@Entity({ name: 'messages' })
@Unique('uq_messages_room_seq', ['roomId', 'seq'])
// NULLs are distinct in a unique constraint, so sends without clientMsgId never collide.
@Unique('uq_messages_room_sender_client_msg', ['roomId', 'senderId', 'clientMsgId'])
// No two messages of a room share a modSeq; message.changes pages on it.
@Unique('uq_messages_room_mod_seq', ['roomId', 'modSeq'])
// Thread pages; only replies are indexed.
@Index('ix_messages_thread', ['roomId', 'parentSeq', 'seq'], { where: 'parent_seq IS NOT NULL' })
// One user's messages, for erasure and export (the IndexUserData migration).
@Index('IDX_messages_sender', ['senderId', 'roomId', 'seq'])
export class MessageEntity {
  @PrimaryColumn({ type: 'uuid', primaryKeyConstraintName: 'PK_messages' })
  id!: string;

  @Column({ name: 'room_id', type: 'text' })
  roomId!: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  seq!: number;

  @Column({ name: 'sender_id', type: 'text' })
  senderId!: string;

  @Column({ type: 'text' })
  body!: string;

  @Column({ name: 'client_msg_id', type: 'text', nullable: true })
  clientMsgId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  /** The room's modSeq of this message's latest change. */
  @Column({ name: 'mod_seq', type: 'bigint', transformer: bigintAsNumber })
  modSeq!: number;

  @Column({ type: 'integer', default: 1 })
  version!: number;

  @Column({ name: 'edited_at', type: 'timestamptz', nullable: true })
  editedAt!: Date | null;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt!: Date | null;

  @Column({ name: 'parent_seq', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  parentSeq!: number | null;

  @Column({ name: 'reply_count', type: 'integer', default: 0 })
  replyCount!: number;

  @Column({ name: 'last_reply_seq', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  lastReplySeq!: number | null;

  @Column({ type: 'jsonb', default: () => "'[]'" })
  mentions!: string[];

  /** The summary of message_reactions: [{ key, count, userIds }] by key. */
  @Column({ type: 'jsonb', default: () => "'[]'" })
  reactions!: { key: string; count: number; userIds: string[] }[];
}
