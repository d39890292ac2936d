import { CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** Membership of private rooms (managed over HTTP). Read positions live in room_reads (see the CreateRoomReads migration). */
@Entity({ name: 'room_members' })
@Index('IDX_room_members_user', ['userId'])
export class RoomMemberEntity {
  @PrimaryColumn({ name: 'room_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  roomId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  userId!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
