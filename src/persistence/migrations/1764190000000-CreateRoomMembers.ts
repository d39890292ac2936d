import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateRoomMembers1764190000000 implements MigrationInterface {
  name = 'CreateRoomMembers1764190000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "room_members" (
        "room_id" text NOT NULL,
        "user_id" text NOT NULL,
        "last_read_seq" bigint NOT NULL DEFAULT 0,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_room_members" PRIMARY KEY ("room_id", "user_id")
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE "room_members"');
  }
}
