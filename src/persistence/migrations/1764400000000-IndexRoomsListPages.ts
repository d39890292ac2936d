import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes that serve one page of rooms.list in roomId order (code point order, COLLATE "C"), so a
 * page costs its own rows however many rooms the user has: a user's joined rows in room_reads,
 * and their memberships in room_members. The keys' default collation cannot serve a keyset
 * condition or an ORDER BY under COLLATE "C", which would read and sort every row of the user.
 *
 * The room_members index replaces IDX_room_members_user, whose lookups by user_id it serves as
 * well (so the previous release, during a rolling update, keeps an index for its rooms.list).
 */
export class IndexRoomsListPages1764400000000 implements MigrationInterface {
  name = 'IndexRoomsListPages1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX "IDX_room_reads_joined" ON "room_reads" ("user_id", "room_id" COLLATE "C") WHERE "joined_at" IS NOT NULL`);
    await q.query('CREATE INDEX "IDX_room_members_user_room" ON "room_members" ("user_id", "room_id" COLLATE "C")');
    await q.query('DROP INDEX "IDX_room_members_user"');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX "IDX_room_members_user" ON "room_members" ("user_id")');
    await q.query('DROP INDEX "IDX_room_members_user_room"');
    await q.query('DROP INDEX "IDX_room_reads_joined"');
  }
}
