import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateRoomsAndMessages1764180000000 implements MigrationInterface {
  name = 'CreateRoomsAndMessages1764180000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "rooms" (
        "id" text NOT NULL,
        "visibility" text NOT NULL DEFAULT 'public',
        "title" text,
        "metadata" jsonb,
        "last_seq" bigint NOT NULL DEFAULT 0,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_rooms" PRIMARY KEY ("id")
      )`);
    await q.query(`
      CREATE TABLE "messages" (
        "id" uuid NOT NULL,
        "room_id" text NOT NULL,
        "seq" bigint NOT NULL,
        "sender_id" text NOT NULL,
        "body" text NOT NULL,
        "client_msg_id" text,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_messages" PRIMARY KEY ("id"),
        CONSTRAINT "uq_messages_room_seq" UNIQUE ("room_id", "seq"),
        CONSTRAINT "uq_messages_room_sender_client_msg" UNIQUE ("room_id", "sender_id", "client_msg_id")
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE "messages"');
    await q.query('DROP TABLE "rooms"');
  }
}
