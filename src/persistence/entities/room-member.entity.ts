import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from './bigint.transformer.js';

/** Membership of private rooms (managed over HTTP), and each member's read position. */
@Entity({ name: 'room_members' })
export class RoomMemberEntity {
  @PrimaryColumn({ name: 'room_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  roomId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  userId!: string;

  @Column({ name: 'last_read_seq', type: 'bigint', default: 0, transformer: bigintAsNumber })
  lastReadSeq!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
