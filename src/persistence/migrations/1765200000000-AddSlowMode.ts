import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Slow mode: rooms gains `slow_mode_ms` (0: off). A constant default: no table rewrite, and the
 * previous version, which never names it, keeps working during a rolling update.
 */
export class AddSlowMode1765200000000 implements MigrationInterface {
  name = 'AddSlowMode1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE rooms
        ADD COLUMN slow_mode_ms integer NOT NULL DEFAULT 0
          CONSTRAINT "CHK_rooms_slow_mode_ms" CHECK (slow_mode_ms BETWEEN 0 AND 3600000)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE rooms DROP COLUMN slow_mode_ms');
  }
}
