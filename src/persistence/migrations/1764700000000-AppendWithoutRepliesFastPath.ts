import type { MigrationInterface, QueryRunner } from 'typeorm';
import { APPEND_STATEMENT, appendFunction } from './1764600000000-AddMessageChanges.js';

/**
 * chat_append of AddMessageChanges, same signature and answers, with a statement of its own for
 * the common batch: one without thread replies.
 *
 * Why: the function's cost per call is mostly executor start-up, which grows with the size of the
 * plan, not with the rows. AddMessageChanges put the replies' parts (the parent lookup, three
 * window functions, the parent's UPDATE, a second outbox and result branch) and every Message
 * column into the one statement all sends run: a one-message send took 1.72 M instructions in the
 * backend against 1.08 M before it (callgrind, 200 single-message calls on PostgreSQL 15). A batch
 * without replies now runs SENDS_STATEMENT: what a new message's columns are is known (version 1,
 * no edit, no reactions, not a reply), so only a repeated clientMsgId's stored message is read
 * whole. A batch with a reply runs AddMessageChanges' statement unchanged.
 *
 * Safe in a rolling update: CREATE OR REPLACE of the same function with the same answers; the
 * previous release's 7-argument wrapper calls it as before. down() restores the single statement.
 */
export class AppendWithoutRepliesFastPath1764700000000 implements MigrationInterface {
  name = 'AppendWithoutRepliesFastPath1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(withFastPath(SENDS_STATEMENT, APPEND_STATEMENT));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(appendFunction(`RETURN QUERY ${APPEND_STATEMENT};`));
  }
}

/** chat_append running `sends` for a batch without thread replies and `append` for one with a reply. */
export function withFastPath(sends: string, append: string): string {
  return appendFunction(`
    IF cardinality(array_remove(p_parents, NULL)) = 0 THEN
      RETURN QUERY ${sends};
    ELSE
      RETURN QUERY ${append};
    END IF;`);
}

/**
 * AppendReportsMissingRooms' statement with the message-changes columns: a message takes the
 * room's next mod_seq (one per message, so mod_seq - seq stays the room's lead within the batch)
 * and its mentions; the answer and the outbox carry the whole Message.
 */
export const SENDS_STATEMENT = `
    WITH input AS (
      SELECT t.i::integer AS i, t.room, t.sender, t.body, t.client, t.chk, coalesce(t.ment::jsonb, '[]') AS ment
      FROM unnest(p_rooms, p_senders, p_bodies, p_clients, p_check, p_mentions)
           WITH ORDINALITY AS t(room, sender, body, client, chk, ment, i)
    ),
    judged AS (
      SELECT n.*, r.last_seq, r.last_mod_seq, r.last_seq IS NULL AS missing,
             n.chk AND r.visibility = 'private' AND m.user_id IS NULL AS forbidden,
             e.id AS e_id, e.seq AS e_seq, e.mod_seq AS e_mod_seq, e.body AS e_body, e.created_at AS e_created,
             e.version AS e_version, e.edited_at AS e_edited, e.deleted_at AS e_deleted, e.parent_seq AS e_parent,
             e.reply_count AS e_replies, e.last_reply_seq AS e_last_reply, e.mentions AS e_mentions, e.reactions AS e_reactions,
             CASE WHEN n.client IS NULL THEN n.i ELSE min(n.i) OVER (PARTITION BY n.room, n.sender, n.client) END AS first_i
      FROM input n
      LEFT JOIN LATERAL (SELECT x.last_seq, x.last_mod_seq, x.visibility FROM rooms x WHERE x.id = n.room) AS r ON true
      LEFT JOIN LATERAL (
        SELECT x.user_id FROM room_members x WHERE x.room_id = n.room AND x.user_id = n.sender
      ) AS m ON true
      LEFT JOIN LATERAL (
        SELECT x.* FROM messages x
        WHERE n.client IS NOT NULL AND x.room_id = n.room AND x.sender_id = n.sender AND x.client_msg_id = n.client
      ) AS e ON true
    ),
    fresh AS (
      SELECT j.i, j.room, j.sender, j.body, j.client, j.ment,
             j.last_seq + row_number() OVER (PARTITION BY j.room ORDER BY j.i) AS seq, j.last_mod_seq - j.last_seq AS mod_lead
      FROM judged j WHERE NOT j.missing AND NOT j.forbidden AND j.e_id IS NULL AND j.first_i = j.i
    ),
    inserted AS (
      INSERT INTO messages (id, room_id, seq, mod_seq, sender_id, body, client_msg_id, mentions)
      SELECT gen_random_uuid(), f.room, f.seq, f.seq + f.mod_lead, f.sender, f.body, f.client, f.ment FROM fresh f
      RETURNING messages.id, messages.room_id, messages.seq, messages.mod_seq, messages.sender_id, messages.body,
                messages.client_msg_id, messages.created_at, messages.mentions
    ),
    outboxed AS (
      INSERT INTO outbox (type, room_id, data)
      SELECT 'message.created', ins.room_id,
             jsonb_build_object('id', ins.id, 'roomId', ins.room_id, 'seq', ins.seq, 'senderId', ins.sender_id, 'body', ins.body,
               'clientMsgId', ins.client_msg_id,
               'createdAt', to_char(ins.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'version', 1, 'modSeq', ins.mod_seq, 'editedAt', NULL, 'deletedAt', NULL, 'parentSeq', NULL,
               'replyCount', 0, 'lastReplySeq', NULL, 'mentions', ins.mentions, 'reactions', '[]'::jsonb)
      FROM inserted ins ORDER BY ins.room_id, ins.seq
    )
    SELECT j.i,
           CASE WHEN j.missing THEN 'missing' WHEN j.forbidden THEN 'forbidden' WHEN j.e_id IS NOT NULL OR j.first_i <> j.i THEN 'existing' ELSE 'created' END,
           coalesce(j.e_id, ins.id), coalesce(j.e_seq, ins.seq), coalesce(j.e_mod_seq, ins.mod_seq), j.sender,
           coalesce(j.e_body, ins.body), j.client, coalesce(j.e_created, ins.created_at), coalesce(j.e_version, 1),
           j.e_edited, j.e_deleted, j.e_parent, coalesce(j.e_replies, 0), j.e_last_reply,
           coalesce(j.e_mentions, ins.mentions), coalesce(j.e_reactions, '[]'::jsonb)
    FROM judged j
    LEFT JOIN fresh f ON f.i = j.first_i
    LEFT JOIN inserted ins ON ins.room_id = f.room AND ins.seq = f.seq
    ORDER BY j.i`;
