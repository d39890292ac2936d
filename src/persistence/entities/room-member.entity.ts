import { CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/**
 * Membership of private rooms (managed over HTTP). Read positions live in room_reads (see the
 * CreateRoomReads migration); the table's old last_read_seq column is no longer mapped.
 */
@Entity({ name: 'room_members' })
export class RoomMemberEntity {
  @PrimaryColumn({ name: 'room_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  roomId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  userId!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
