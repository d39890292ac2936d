import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention: rooms gains `retention_days` (null: keep forever), `floor_seq` (every message below
 * it is gone) and `floor_mod_seq` (the highest modSeq a removed message had: a changes cursor
 * below it may have missed changes that are gone). Nullable or constant defaults: no table
 * rewrite, and the previous version, which never names them, keeps working during a rolling update.
 */
export class AddRetention1764910000000 implements MigrationInterface {
  name = 'AddRetention1764910000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE rooms
        ADD COLUMN retention_days integer CONSTRAINT "CHK_rooms_retention_days" CHECK (retention_days BETWEEN 1 AND 36500),
        ADD COLUMN floor_seq bigint NOT NULL DEFAULT 1,
        ADD COLUMN floor_mod_seq bigint NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE rooms DROP COLUMN floor_mod_seq, DROP COLUMN floor_seq, DROP COLUMN retention_days');
  }
}
