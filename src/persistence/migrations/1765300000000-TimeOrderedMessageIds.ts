import type { MigrationInterface, QueryRunner } from 'typeorm';
import { APPEND_STATEMENT } from './1764600000000-AddMessageChanges.js';
import { SENDS_STATEMENT, withFastPath } from './1764700000000-AppendWithoutRepliesFastPath.js';

/**
 * New messages get time-ordered ids (UUIDv7, RFC 9562: a millisecond timestamp, then random bits)
 * instead of random ones (v4).
 *
 * Why: a random primary key puts each insert on a random page of the `messages` id index, so after
 * every checkpoint nearly every insert is that page's first change and writes the whole 8 KiB page
 * to the WAL (a full-page image); once the index outgrows the buffer cache it also reads one. A
 * time-ordered id appends at the index's right edge. pgbench of one-message chat_append on 2
 * million stored messages (bench/pg): full-page images per message 0.63-0.67 → 0.20 and WAL
 * 5.4-5.6 → 2.9 kB with one client, 0.22-0.32 → 0.09-0.11 and 2.9-3.6 → 2.2-2.4 kB with four;
 * Postgres CPU per message unchanged within the runs' spread. Ids stay UUIDs; the protocol
 * promises nothing more about them (createdAt already tells the time an id now carries).
 *
 * PostgreSQL 15 has no uuidv7() (18 does): chat_uuid_v7 writes the timestamp over the first 48
 * bits of gen_random_uuid() and sets the version nibble to 7 (the variant bits are v4's already).
 *
 * Safe in a rolling update: CREATE OR REPLACE of chat_append with the same signature and answers;
 * the previous release calls it unchanged. Stored ids are not touched. down() restores random ids.
 */
export class TimeOrderedMessageIds1765300000000 implements MigrationInterface {
  name = 'TimeOrderedMessageIds1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION chat_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
        SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
          PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
          52, 1), 53, 1), 'hex')::uuid
      $$`);
    await q.query(withFastPath(timeOrdered(SENDS_STATEMENT), timeOrdered(APPEND_STATEMENT)));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(withFastPath(SENDS_STATEMENT, APPEND_STATEMENT));
    await q.query('DROP FUNCTION chat_uuid_v7()');
  }
}

/** The statement with its one id expression, for the inserted messages, made time-ordered. */
function timeOrdered(statement: string): string {
  const parts = statement.split('gen_random_uuid()');
  if (parts.length !== 2) throw new Error(`expected one id expression in the append statement, found ${parts.length - 1}`);
  return parts.join('chat_uuid_v7()');
}
