import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Message changes: a second per-room counter (mod_seq, rooms.last_mod_seq) numbering every change
 * of a message, the columns of a message that can change, the versions kept for audit, the
 * reactions, and a chat_append that takes thread replies and mentions.
 *
 * Safe in a rolling update: everything is added. The previous release keeps calling the 7-argument
 * chat_append, which becomes a wrapper over the new one, so its sends take mod_seqs as well (a
 * send that took none would leave the counter behind the rows). The 6-argument function, unused
 * since the previous release, is dropped.
 */
export class AddMessageChanges1764600000000 implements MigrationInterface {
  name = 'AddMessageChanges1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE messages
        ADD COLUMN mod_seq bigint,
        ADD COLUMN version integer NOT NULL DEFAULT 1,
        ADD COLUMN edited_at timestamptz,
        ADD COLUMN deleted_at timestamptz,
        ADD COLUMN parent_seq bigint,
        ADD COLUMN reply_count integer NOT NULL DEFAULT 0,
        ADD COLUMN last_reply_seq bigint,
        ADD COLUMN mentions jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN reactions jsonb NOT NULL DEFAULT '[]'`);
    // The contract: messages stored before changes existed take modSeq = seq, their rooms lastModSeq = lastSeq.
    await q.query('UPDATE messages SET mod_seq = seq');
    await q.query('ALTER TABLE messages ALTER COLUMN mod_seq SET NOT NULL');
    await q.query('ALTER TABLE rooms ADD COLUMN last_mod_seq bigint NOT NULL DEFAULT 0');
    await q.query('UPDATE rooms SET last_mod_seq = last_seq');
    // message.changes pages on it, and it makes "no two messages share a modSeq" a constraint.
    await q.query('ALTER TABLE messages ADD CONSTRAINT uq_messages_room_mod_seq UNIQUE (room_id, mod_seq)');
    // Thread pages; only replies are indexed, so a send that is not a reply pays nothing for it.
    await q.query('CREATE INDEX ix_messages_thread ON messages (room_id, parent_seq, seq) WHERE parent_seq IS NOT NULL');
    // The versions an edit replaced (the current one lives in messages); a delete empties them.
    await q.query(`
      CREATE TABLE message_versions (
        room_id text NOT NULL,
        seq bigint NOT NULL,
        version integer NOT NULL,
        body text NOT NULL,
        edited_at timestamptz,
        CONSTRAINT "PK_message_versions" PRIMARY KEY (room_id, seq, version)
      )`);
    // One row per (message, user, key); messages.reactions holds their summary for reads.
    await q.query(`
      CREATE TABLE message_reactions (
        room_id text NOT NULL,
        seq bigint NOT NULL,
        user_id text NOT NULL,
        key text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "PK_message_reactions" PRIMARY KEY (room_id, seq, user_id, key)
      )`);

    await q.query(APPEND_FUNCTION);
    // The previous release's call, now a wrapper: no replies, no mentions.
    await q.query(`
      CREATE OR REPLACE FUNCTION chat_append(
        p_rooms text[], p_senders text[], p_bodies text[], p_clients text[], p_check boolean[], p_create boolean[],
        p_budget_ms integer
      ) RETURNS TABLE (idx integer, outcome text, id uuid, seq bigint, body text, created_at timestamptz)
      LANGUAGE sql
      AS $fn$
        SELECT a.idx, a.outcome, a.id, a.seq, a.body, a.created_at
        FROM chat_append(p_rooms, p_senders, p_bodies, p_clients, p_check, p_create,
                         array_fill(NULL::bigint, ARRAY[cardinality(p_rooms)]), array_fill(NULL::text, ARRAY[cardinality(p_rooms)]),
                         p_budget_ms) AS a
        WHERE a.outcome <> 'parent'
        ORDER BY a.idx
      $fn$`);
    await q.query('DROP FUNCTION chat_append(text[], text[], text[], text[], boolean[], integer)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION chat_append(text[], text[], text[], text[], boolean[], boolean[], bigint[], text[], integer)');
    await q.query('DROP TABLE message_reactions');
    await q.query('DROP TABLE message_versions');
    await q.query('DROP INDEX ix_messages_thread');
    await q.query('ALTER TABLE messages DROP CONSTRAINT uq_messages_room_mod_seq');
    await q.query('ALTER TABLE rooms DROP COLUMN last_mod_seq');
    await q.query(`
      ALTER TABLE messages DROP COLUMN mod_seq, DROP COLUMN version, DROP COLUMN edited_at, DROP COLUMN deleted_at,
        DROP COLUMN parent_seq, DROP COLUMN reply_count, DROP COLUMN last_reply_seq, DROP COLUMN mentions, DROP COLUMN reactions`);
  }
}

/**
 * chat_append of AppendReportsMissingRooms with two more arguments per row: p_parents (the thread
 * root's seq, or null) and p_mentions (a JSON array of user ids, or null for none).
 *
 * Every created message takes the room's next mod_seq; a reply takes two, its own and then its
 * parent's (the parent's reply count changed), so a batch's mod_seqs are the running sum of those
 * costs. A reply whose parent is not a top-level, live message of the room answers 'bad_parent'
 * and takes nothing. For each reply the parent's state after it comes back as an extra row
 * (outcome 'parent', idx of the reply) and goes to the outbox as message.updated, so every
 * reply-count change is delivered, in mod_seq order with the creations. The Message JSON is built
 * inline: a helper function is not inlined into the statement and cost about 140 µs a row.
 */
export const APPEND_STATEMENT = `
    WITH input AS (
      SELECT t.i::integer AS i, t.room, t.sender, t.body, t.client, t.chk, t.parent, coalesce(t.ment::jsonb, '[]') AS ment
      FROM unnest(p_rooms, p_senders, p_bodies, p_clients, p_check, p_parents, p_mentions)
           WITH ORDINALITY AS t(room, sender, body, client, chk, parent, ment, i)
    ),
    probed AS (
      SELECT n.*, r.last_seq, r.last_mod_seq, r.last_seq IS NULL AS missing,
             n.chk AND r.visibility = 'private' AND m.user_id IS NULL AS forbidden,
             n.parent IS NOT NULL AND (p.parent_seq IS NOT NULL OR p.deleted_at IS NOT NULL OR p.seq IS NULL) AS bad_parent,
             e.id AS e_id, e.seq AS e_seq, e.mod_seq AS e_mod_seq, e.body AS e_body, e.created_at AS e_created,
             e.version AS e_version, e.edited_at AS e_edited, e.deleted_at AS e_deleted, e.parent_seq AS e_parent,
             e.reply_count AS e_replies, e.last_reply_seq AS e_last_reply, e.mentions AS e_mentions, e.reactions AS e_reactions
      FROM input n
      LEFT JOIN LATERAL (SELECT x.last_seq, x.last_mod_seq, x.visibility FROM rooms x WHERE x.id = n.room) AS r ON true
      LEFT JOIN LATERAL (
        SELECT x.user_id FROM room_members x WHERE x.room_id = n.room AND x.user_id = n.sender
      ) AS m ON true
      LEFT JOIN LATERAL (
        SELECT x.seq, x.parent_seq, x.deleted_at FROM messages x WHERE n.parent IS NOT NULL AND x.room_id = n.room AND x.seq = n.parent
      ) AS p ON true
      LEFT JOIN LATERAL (
        SELECT x.* FROM messages x
        WHERE n.client IS NOT NULL AND x.room_id = n.room AND x.sender_id = n.sender AND x.client_msg_id = n.client
      ) AS e ON true
    ),
    -- A repeated clientMsgId within the batch is the first accepted row's message; a refused reply
    -- does not count as a first.
    judged AS (
      SELECT pr.*,
             CASE WHEN pr.client IS NULL THEN pr.i
                  ELSE min(pr.i) FILTER (WHERE NOT pr.bad_parent) OVER (PARTITION BY pr.room, pr.sender, pr.client) END AS first_i
      FROM probed pr
    ),
    accepted AS (
      SELECT j.i, j.room, j.sender, j.body, j.client, j.parent, j.ment, j.last_seq, j.last_mod_seq,
             CASE WHEN j.parent IS NULL THEN 1 ELSE 2 END AS cost
      FROM judged j
      WHERE NOT j.missing AND NOT j.forbidden AND j.e_id IS NULL AND NOT j.bad_parent AND j.first_i = j.i
    ),
    numbered AS (
      SELECT a.*,
             a.last_seq + row_number() OVER w AS seq,
             a.last_mod_seq + sum(a.cost) OVER w - a.cost + 1 AS mod_seq
      FROM accepted a
      WINDOW w AS (PARTITION BY a.room ORDER BY a.i)
    ),
    inserted AS (
      INSERT INTO messages (id, room_id, seq, mod_seq, sender_id, body, client_msg_id, parent_seq, mentions)
      SELECT gen_random_uuid(), f.room, f.seq, f.mod_seq, f.sender, f.body, f.client, f.parent, f.ment FROM numbered f
      RETURNING messages.*
    ),
    -- The parent after each of its replies: the reply's mod_seq + 1, one more reply.
    parents AS (
      SELECT f.i, f.room, f.mod_seq + 1 AS p_mod_seq, f.seq AS reply_seq,
             pm.reply_count + row_number() OVER (PARTITION BY f.room, f.parent ORDER BY f.i) AS p_replies,
             count(*) OVER (PARTITION BY f.room, f.parent) - row_number() OVER (PARTITION BY f.room, f.parent ORDER BY f.i) AS later,
             pm.id, pm.seq, pm.sender_id, pm.body, pm.client_msg_id, pm.created_at, pm.version, pm.edited_at, pm.deleted_at,
             pm.mentions, pm.reactions
      FROM numbered f JOIN messages pm ON pm.room_id = f.room AND pm.seq = f.parent
      WHERE f.parent IS NOT NULL
    ),
    parent_updated AS (
      UPDATE messages x SET reply_count = ps.p_replies, last_reply_seq = ps.reply_seq, mod_seq = ps.p_mod_seq
      FROM parents ps WHERE ps.later = 0 AND x.room_id = ps.room AND x.seq = ps.seq
      RETURNING x.id
    ),
    -- In (room, mod_seq) order: the rooms are locked, so a room's outbox positions follow its
    -- mod_seqs across batches too. createdAt as Date.toISOString() writes it, like the reply.
    outboxed AS (
      INSERT INTO outbox (type, room_id, data)
      SELECT o.type, o.room, o.data FROM (
        SELECT 'message.created' AS type, ins.room_id AS room, ins.mod_seq AS ms,
               jsonb_build_object('id', ins.id, 'roomId', ins.room_id, 'seq', ins.seq, 'senderId', ins.sender_id, 'body', ins.body,
                 'clientMsgId', ins.client_msg_id,
                 'createdAt', to_char(ins.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                 'version', 1, 'modSeq', ins.mod_seq, 'editedAt', NULL, 'deletedAt', NULL, 'parentSeq', ins.parent_seq,
                 'replyCount', 0, 'lastReplySeq', NULL, 'mentions', ins.mentions, 'reactions', ins.reactions) AS data
        FROM inserted ins
        UNION ALL
        SELECT 'message.updated', ps.room, ps.p_mod_seq,
               jsonb_build_object('id', ps.id, 'roomId', ps.room, 'seq', ps.seq, 'senderId', ps.sender_id, 'body', ps.body,
                 'clientMsgId', ps.client_msg_id,
                 'createdAt', to_char(ps.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                 'version', ps.version, 'modSeq', ps.p_mod_seq,
                 'editedAt', to_char(ps.edited_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                 'deletedAt', to_char(ps.deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                 'parentSeq', NULL, 'replyCount', ps.p_replies, 'lastReplySeq', ps.reply_seq, 'mentions', ps.mentions,
                 'reactions', ps.reactions)
        FROM parents ps
      ) AS o
      ORDER BY o.room, o.ms
    )
    SELECT j.i,
           CASE WHEN j.missing THEN 'missing' WHEN j.forbidden THEN 'forbidden' WHEN j.e_id IS NOT NULL THEN 'existing'
                WHEN j.bad_parent THEN 'bad_parent' WHEN j.first_i <> j.i THEN 'existing' ELSE 'created' END,
           coalesce(j.e_id, ins.id), coalesce(j.e_seq, ins.seq), coalesce(j.e_mod_seq, ins.mod_seq), j.sender,
           coalesce(j.e_body, ins.body), j.client, coalesce(j.e_created, ins.created_at), coalesce(j.e_version, ins.version),
           CASE WHEN j.e_id IS NOT NULL THEN j.e_edited ELSE ins.edited_at END,
           CASE WHEN j.e_id IS NOT NULL THEN j.e_deleted ELSE ins.deleted_at END,
           CASE WHEN j.e_id IS NOT NULL THEN j.e_parent ELSE ins.parent_seq END,
           coalesce(j.e_replies, ins.reply_count),
           CASE WHEN j.e_id IS NOT NULL THEN j.e_last_reply ELSE ins.last_reply_seq END,
           coalesce(j.e_mentions, ins.mentions), coalesce(j.e_reactions, ins.reactions)
    FROM judged j
    LEFT JOIN numbered f ON f.i = j.first_i AND NOT j.bad_parent
    LEFT JOIN inserted ins ON ins.room_id = f.room AND ins.seq = f.seq
    UNION ALL
    SELECT ps.i, 'parent', ps.id, ps.seq, ps.p_mod_seq, ps.sender_id, ps.body, ps.client_msg_id, ps.created_at, ps.version,
           ps.edited_at, ps.deleted_at, NULL::bigint, ps.p_replies::integer, ps.reply_seq, ps.mentions, ps.reactions
    FROM parents ps
    ORDER BY 1, 2`;

/** The 9-argument chat_append around its batch statement: `batch` returns the rows. */
export function appendFunction(batch: string): string {
  return `
  CREATE OR REPLACE FUNCTION chat_append(
    p_rooms text[], p_senders text[], p_bodies text[], p_clients text[], p_check boolean[], p_create boolean[],
    p_parents bigint[], p_mentions text[], p_budget_ms integer
  ) RETURNS TABLE (
    idx integer, outcome text, id uuid, seq bigint, mod_seq bigint, sender_id text, body text, client_msg_id text,
    created_at timestamptz, version integer, edited_at timestamptz, deleted_at timestamptz, parent_seq bigint,
    reply_count integer, last_reply_seq bigint, mentions jsonb, reactions jsonb
  )
  LANGUAGE plpgsql
  -- As before: plan once per connection (planning costs more than running), key probes only.
  SET plan_cache_mode = force_generic_plan
  SET enable_seqscan = off
  AS $fn$
  #variable_conflict use_column
  DECLARE
    began timestamptz := clock_timestamp();
    fresh text[];
  BEGIN
    PERFORM set_config('lock_timeout',
      CASE WHEN (SELECT count(DISTINCT u.id) FROM unnest(p_rooms) AS u(id)) > 1
           THEN least(greatest(p_budget_ms / 4, 1), 200) ELSE greatest(p_budget_ms, 1) END || 'ms', true);

    WITH upserted AS (
      INSERT INTO rooms (id)
        SELECT DISTINCT u.id FROM unnest(p_rooms) AS u(id) ORDER BY u.id
        ON CONFLICT ON CONSTRAINT "PK_rooms" DO UPDATE SET id = EXCLUDED.id
        RETURNING rooms.id, rooms.xmax = 0 AS inserted
    )
    SELECT array_agg(upserted.id) FILTER (WHERE upserted.inserted) INTO fresh FROM upserted;
    IF fresh IS NOT NULL THEN
      DELETE FROM rooms x WHERE x.id = ANY (fresh)
        AND NOT EXISTS (SELECT 1 FROM unnest(p_rooms, p_create) AS u(id, c) WHERE u.id = x.id AND u.c);
    END IF;

${batch}

    -- Both counters are gap-free and the latest change of a room is held by some message, so each is
    -- the room's highest stored value (one index probe each).
    UPDATE rooms SET last_seq = coalesce((SELECT max(x.seq) FROM messages x WHERE x.room_id = rooms.id), 0),
                     last_mod_seq = coalesce((SELECT max(x.mod_seq) FROM messages x WHERE x.room_id = rooms.id), 0)
    WHERE rooms.id = ANY (p_rooms);

    IF clock_timestamp() > began + make_interval(secs => p_budget_ms / 1000.0) THEN
      RAISE EXCEPTION 'chat_append: storage deadline passed before COMMIT' USING ERRCODE = '57014';
    END IF;
  END
  $fn$`;
}

const APPEND_FUNCTION = appendFunction(`RETURN QUERY ${APPEND_STATEMENT};`);
