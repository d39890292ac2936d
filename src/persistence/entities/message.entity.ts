import { Column, CreateDateColumn, Entity, PrimaryColumn, Unique } from 'typeorm';
import { bigintAsNumber } from './bigint.transformer.js';

@Entity({ name: 'messages' })
@Unique('uq_messages_room_seq', ['roomId', 'seq'])
// NULLs are distinct in a unique constraint, so sends without clientMsgId never collide.
@Unique('uq_messages_room_sender_client_msg', ['roomId', 'senderId', 'clientMsgId'])
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
}
