import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * chat_append with a p_create flag per row: a user's send no longer creates a missing room by
 * itself, its rows answer 'missing', so the service can charge the sender's room-creation budget
 * (ROOM_CREATE_LIMIT) and send again allowed to create it. The existence check is the room lookup
 * the batch makes anyway, so a send to an existing room costs what it did. Otherwise as in
 * BoundAppendLockWait.
 *
 * A new overload (one more argument) beside the 6-argument function, which the previous release
 * calls during a rolling update; that one stays as it is until a later release drops it.
 */
export class AppendReportsMissingRooms1764500000000 implements MigrationInterface {
  name = 'AppendReportsMissingRooms1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION chat_append(
        p_rooms text[], p_senders text[], p_bodies text[], p_clients text[], p_check boolean[], p_create boolean[],
        p_budget_ms integer
      ) RETURNS TABLE (idx integer, outcome text, id uuid, seq bigint, body text, created_at timestamptz)
      LANGUAGE plpgsql
      -- Planning the batch statement costs more than running it (about 1 ms against 0.3 ms), and a
      -- custom plan per call is what the plan cache would pick: plan once per connection instead.
      -- Every access is a key probe, so the generic plan is the right one; stale statistics on a
      -- young table must not turn a probe into a scan either.
      SET plan_cache_mode = force_generic_plan
      SET enable_seqscan = off
      AS $fn$
      #variable_conflict use_column
      DECLARE
        began timestamptz := clock_timestamp();
        -- The rooms this batch's upsert created.
        fresh text[];
      BEGIN
        -- Waits for its rooms' locks only as long as the batch may run, and a batch of several
        -- rooms only briefly: it then fails with lock_not_available (55P03) and the caller splits
        -- it by room, so one slow room (a long-held lock on its row) fails only its own sends.
        PERFORM set_config('lock_timeout',
          CASE WHEN (SELECT count(DISTINCT u.id) FROM unnest(p_rooms) AS u(id)) > 1
               THEN least(greatest(p_budget_ms / 4, 1), 200) ELSE greatest(p_budget_ms, 1) END || 'ms', true);

        -- Locks every room of the batch in id order (no deadlocks between batches), creating the
        -- missing ones, as before; xmax = 0 tells the rows this statement inserted.
        WITH upserted AS (
          INSERT INTO rooms (id)
            SELECT DISTINCT u.id FROM unnest(p_rooms) AS u(id) ORDER BY u.id
            ON CONFLICT ON CONSTRAINT "PK_rooms" DO UPDATE SET id = EXCLUDED.id
            RETURNING rooms.id, rooms.xmax = 0 AS inserted
        )
        SELECT array_agg(upserted.id) FILTER (WHERE upserted.inserted) INTO fresh FROM upserted;
        -- A room just created that no row may create is taken back (its rows then answer 'missing',
        -- and the caller charges the sender and asks again). Only the first send to a new room gets
        -- here: the batches of rooms that exist pay nothing for the check.
        IF fresh IS NOT NULL THEN
          DELETE FROM rooms x WHERE x.id = ANY (fresh)
            AND NOT EXISTS (SELECT 1 FROM unnest(p_rooms, p_create) AS u(id, c) WHERE u.id = x.id AND u.c);
        END IF;

        RETURN QUERY
        WITH input AS (
          SELECT t.i::integer AS i, t.room, t.sender, t.body, t.client, t.chk
          FROM unnest(p_rooms, p_senders, p_bodies, p_clients, p_check) WITH ORDINALITY AS t(room, sender, body, client, chk, i)
        ),
        judged AS (
          SELECT n.*, r.last_seq, r.last_seq IS NULL AS missing,
                 n.chk AND r.visibility = 'private' AND m.user_id IS NULL AS forbidden,
                 e.id AS e_id, e.seq AS e_seq, e.body AS e_body, e.created_at AS e_created,
                 CASE WHEN n.client IS NULL THEN n.i
                      ELSE min(n.i) OVER (PARTITION BY n.room, n.sender, n.client) END AS first_i
          FROM input n
          -- LATERAL lookups: key probes whatever the table statistics say (a batch is a few rows,
          -- the tables are large; a generic plan must never scan them).
          -- No row: a room taken back above.
          LEFT JOIN LATERAL (SELECT x.last_seq, x.visibility FROM rooms x WHERE x.id = n.room) AS r ON true
          LEFT JOIN LATERAL (
            SELECT x.user_id FROM room_members x WHERE x.room_id = n.room AND x.user_id = n.sender
          ) AS m ON true
          LEFT JOIN LATERAL (
            SELECT x.id, x.seq, x.body, x.created_at FROM messages x
            WHERE n.client IS NOT NULL AND x.room_id = n.room AND x.sender_id = n.sender AND x.client_msg_id = n.client
          ) AS e ON true
        ),
        fresh AS (
          SELECT j.i, j.room, j.sender, j.body, j.client,
                 j.last_seq + row_number() OVER (PARTITION BY j.room ORDER BY j.i) AS seq
          FROM judged j WHERE NOT j.missing AND NOT j.forbidden AND j.e_id IS NULL AND j.first_i = j.i
        ),
        inserted AS (
          INSERT INTO messages (id, room_id, seq, sender_id, body, client_msg_id)
          SELECT gen_random_uuid(), f.room, f.seq, f.sender, f.body, f.client FROM fresh f
          RETURNING messages.id, messages.room_id, messages.seq, messages.sender_id, messages.body, messages.client_msg_id,
                    messages.created_at
        ),
        -- Runs although nothing reads it (data-modifying CTEs always run to completion). Rows are
        -- inserted in (room, seq) order, so a room's outbox positions follow its seqs; the rooms are
        -- locked, so they also follow commit order across batches. data is the protocol's Message,
        -- createdAt as Date.toISOString() writes it (UTC, milliseconds truncated), like the reply.
        outboxed AS (
          INSERT INTO outbox (type, room_id, data)
          SELECT 'message.created', ins.room_id,
                 jsonb_build_object('id', ins.id, 'roomId', ins.room_id, 'seq', ins.seq, 'senderId', ins.sender_id, 'body', ins.body,
                                    'clientMsgId', ins.client_msg_id,
                                    'createdAt', to_char(ins.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
          FROM inserted ins ORDER BY ins.room_id, ins.seq
        )
        SELECT j.i,
               CASE WHEN j.missing THEN 'missing' WHEN j.forbidden THEN 'forbidden' WHEN j.e_id IS NOT NULL OR j.first_i <> j.i THEN 'existing' ELSE 'created' END,
               coalesce(j.e_id, ins.id), coalesce(j.e_seq, ins.seq), coalesce(j.e_body, ins.body), coalesce(j.e_created, ins.created_at)
        FROM judged j
        LEFT JOIN fresh f ON f.i = j.first_i
        LEFT JOIN inserted ins ON ins.room_id = f.room AND ins.seq = f.seq
        ORDER BY j.i;

        -- seqs are gap-free, so a room's last_seq is its highest stored seq (one index probe each).
        UPDATE rooms SET last_seq = coalesce((SELECT max(x.seq) FROM messages x WHERE x.room_id = rooms.id), 0)
        WHERE rooms.id = ANY (p_rooms);

        IF clock_timestamp() > began + make_interval(secs => p_budget_ms / 1000.0) THEN
          RAISE EXCEPTION 'chat_append: storage deadline passed before COMMIT' USING ERRCODE = '57014';
        END IF;
      END
      $fn$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION chat_append(text[], text[], text[], text[], boolean[], boolean[], integer)');
  }
}
