import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The transactional outbox of "Events out" and the durable webhook queue behind it.
 *
 * - outbox: one row per event, written in the transaction of the change it describes. The relay
 *   reads it in `position` order, publishes, and only then deletes the rows it published. The
 *   event id is generated here, once, so every re-publication carries the same id.
 * - webhook_deliveries: one row per event and webhook URL, written by the statement that deletes the
 *   event from the outbox; deleted on a 2xx answer, rescheduled with backoff on a failure.
 * - webhook_dead_letters: deliveries that failed WEBHOOK_MAX_ATTEMPTS times, kept for operators.
 */
export class CreateEventTables1764210000000 implements MigrationInterface {
  name = 'CreateEventTables1764210000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "outbox" (
        "position" bigserial NOT NULL,
        "event_id" uuid NOT NULL DEFAULT gen_random_uuid(),
        "type" text NOT NULL,
        "room_id" text NOT NULL,
        "data" jsonb NOT NULL,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_outbox" PRIMARY KEY ("position")
      )`);
    await q.query(`
      CREATE TABLE "webhook_deliveries" (
        "id" bigserial NOT NULL,
        "event_id" uuid NOT NULL,
        "url" text NOT NULL,
        "type" text NOT NULL,
        "room_id" text NOT NULL,
        "data" jsonb NOT NULL,
        "attempts" integer NOT NULL DEFAULT 0,
        "next_attempt_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "last_error" text,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_webhook_deliveries" PRIMARY KEY ("id")
      )`);
    await q.query('CREATE INDEX "ix_webhook_deliveries_due" ON "webhook_deliveries" ("next_attempt_at", "id")');
    await q.query(`
      CREATE TABLE "webhook_dead_letters" (
        "id" bigserial NOT NULL,
        "event_id" uuid NOT NULL,
        "url" text NOT NULL,
        "type" text NOT NULL,
        "room_id" text NOT NULL,
        "data" jsonb NOT NULL,
        "attempts" integer NOT NULL,
        "last_error" text,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL,
        "failed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_webhook_dead_letters" PRIMARY KEY ("id")
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE "webhook_dead_letters"');
    await q.query('DROP TABLE "webhook_deliveries"');
    await q.query('DROP TABLE "outbox"');
  }
}
