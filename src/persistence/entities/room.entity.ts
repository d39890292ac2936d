import { Check, Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from './bigint.transformer.js';

@Entity({ name: 'rooms' })
@Check('CHK_rooms_retention_days', `"retention_days" BETWEEN 1 AND 36500`)
@Check('CHK_rooms_slow_mode_ms', `"slow_mode_ms" BETWEEN 0 AND 3600000`)
export class RoomEntity {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_rooms' })
  id!: string;

  @Column({ type: 'text', default: 'public' })
  visibility!: 'public' | 'private';

  @Column({ type: 'text', nullable: true })
  title!: string | null;

  @Column({ type: 'jsonb', nullable: true })
  metadata!: Record<string, unknown> | null;

  /** The seq of the room's newest message; the next message takes lastSeq + 1 under this row's lock. */
  @Column({ name: 'last_seq', type: 'bigint', default: 0, transformer: bigintAsNumber })
  lastSeq!: number;

  /** The modSeq of the room's latest change; each change takes lastModSeq + 1 under this row's lock. */
  @Column({ name: 'last_mod_seq', type: 'bigint', default: 0, transformer: bigintAsNumber })
  lastModSeq!: number;

  /** Messages are kept this many days (null: forever); see RetentionJob. */
  @Column({ name: 'retention_days', type: 'integer', nullable: true })
  retentionDays!: number | null;

  /** A member who is not a moderator may store one message per this many ms (0: off); see RoomSanctions. */
  @Column({ name: 'slow_mode_ms', type: 'integer', default: 0 })
  slowModeMs!: number;

  /** Every message with a lower seq is gone (retention); 1 until something is removed. */
  @Column({ name: 'floor_seq', type: 'bigint', default: 1, transformer: bigintAsNumber })
  floorSeq!: number;

  /** The highest modSeq a removed message had: a changes cursor below it may have missed changes that are gone. */
  @Column({ name: 'floor_mod_seq', type: 'bigint', default: 0, transformer: bigintAsNumber })
  floorModSeq!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
