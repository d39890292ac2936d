import { Check, Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';
import type { Role } from '../../chat/chat.events.js';

/** Membership of private rooms and roles in any room (managed over HTTP). Read positions live in room_reads (see the CreateRoomReads migration). */
@Entity({ name: 'room_members' })
// (user_id, room_id COLLATE "C"), for rooms.list pages: an expression TypeORM cannot describe, so it
// only keeps its hands off it (see the IndexRoomsListPages migration).
@Index('IDX_room_members_user_room', { synchronize: false })
@Check('CHK_room_members_role', `"role" IN ('owner', 'moderator', 'member')`)
export class RoomMemberEntity {
  @PrimaryColumn({ name: 'room_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  roomId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'text', primaryKeyConstraintName: 'PK_room_members' })
  userId!: string;

  /** owner, moderator or member (see the AddMemberRoles migration). */
  @Column({ type: 'text', default: 'member' })
  role!: Role;

  /**
   * Superseded by room_reads and never read or written by this version; kept for one release so the
   * previous version keeps working during a rolling update, then dropped by a later migration.
   */
  @Column({ name: 'last_read_seq', type: 'bigint', default: 0, select: false })
  legacyLastReadSeq!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
