import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each member's role in the room (owner, moderator or member). A column with a constant default
 * is added without rewriting the table, and the previous version, which inserts members without a
 * role, keeps working during a rolling update: its rows are plain members.
 */
export class AddMemberRoles1764800000000 implements MigrationInterface {
  name = 'AddMemberRoles1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE "room_members" ADD COLUMN "role" text NOT NULL DEFAULT 'member'
        CONSTRAINT "CHK_room_members_role" CHECK ("role" IN ('owner', 'moderator', 'member'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "room_members" DROP COLUMN "role"');
  }
}
