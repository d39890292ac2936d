import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Read state for every room, public or private: `room_reads` is its one source of truth.
 *
 * - last_read_seq: the user's read position (message.read); it only grows.
 * - joined_at: the first room.join the user was allowed in, which puts a public room in rooms.list.
 *   Null for a row written by message.read alone.
 *
 * The key starts with user_id: rooms.list reads one user's rows. The positions private-room members
 * had in room_members.last_read_seq are copied here. That column stays, unused, for one release:
 * during a rolling update the previous version still reads it (docs/deploy.md: remove columns a
 * release after the code stops using them). room_members gets an index on user_id for rooms.list.
 */
export class CreateRoomReads1764220000000 implements MigrationInterface {
  name = 'CreateRoomReads1764220000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "room_reads" (
        "user_id" text NOT NULL,
        "room_id" text NOT NULL,
        "last_read_seq" bigint NOT NULL DEFAULT 0,
        "joined_at" TIMESTAMP WITH TIME ZONE,
        CONSTRAINT "PK_room_reads" PRIMARY KEY ("user_id", "room_id")
      )`);
    await q.query(`
      INSERT INTO "room_reads" ("user_id", "room_id", "last_read_seq")
      SELECT "user_id", "room_id", "last_read_seq" FROM "room_members" WHERE "last_read_seq" > 0`);
    await q.query('CREATE INDEX "IDX_room_members_user" ON "room_members" ("user_id")');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX "IDX_room_members_user"');
    await q.query(`
      UPDATE "room_members" m SET "last_read_seq" = r."last_read_seq"
      FROM "room_reads" r WHERE r."room_id" = m."room_id" AND r."user_id" = m."user_id"`);
    await q.query('DROP TABLE "room_reads"');
  }
}
