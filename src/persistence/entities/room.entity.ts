import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from './bigint.transformer.js';

@Entity({ name: 'rooms' })
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

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
