import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Mutes and bans: one row per room, user and kind, `until` null for one without an end. Expired
 * rows are ignored by every read and replaced by the next mute or ban, so nothing sweeps them.
 * A new table (and its user index, for erasure) that the previous version never names: safe
 * during a rolling update.
 */
export class AddRoomSanctions1765100000000 implements MigrationInterface {
  name = 'AddRoomSanctions1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE room_sanctions (
        room_id text NOT NULL,
        user_id text NOT NULL,
        kind text NOT NULL CONSTRAINT "CHK_room_sanctions_kind" CHECK (kind IN ('mute', 'ban')),
        until timestamptz,
        reason text,
        by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "PK_room_sanctions" PRIMARY KEY (room_id, kind, user_id)
      )`);
    await q.query('CREATE INDEX "IDX_room_sanctions_user" ON room_sanctions (user_id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE room_sanctions');
  }
}
