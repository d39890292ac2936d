import type { EntityManager } from 'typeorm';
import type { Message, Role } from '../chat/chat.events.js';
import type { ChangeResult, MessageChange } from '../chat/chat.ports.js';
import { MAX_REACTION_KEYS, MAX_REACTION_KEYS_PER_USER, MAX_REACTION_USERS } from '../chat/chat.schemas.js';
import { EVENT_TYPES } from '../events/chat-events-out.js';
import { MESSAGE_COLUMNS, rowToMessage, type MessageRow } from './message-row.js';

interface ChangeTarget {
  roomId: string;
  seq: number;
  /** null: a trusted caller. */
  actor: string | null;
  change: MessageChange;
}

/**
 * One change of a stored message, inside the caller's transaction (which bounds the wait for the
 * room's lock: RoomChangeQueue). The room's row is locked first,
 * as chat_append locks it: modSeqs are then taken one after the other across every writer on every
 * replica (gap-free), and the outbox rows of a room follow modSeq order. Checks follow the
 * contract's precedence: membership, the message, its sender (a moderator may delete any), deleted,
 * the expected version.
 */
export async function applyChange(tx: EntityManager, target: ChangeTarget): Promise<ChangeResult> {
  const { roomId, seq, actor, change } = target;
  const [room] = (await tx.query(
    `SELECT r.visibility, r.last_mod_seq, (SELECT m.role FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2) AS role
     FROM rooms r WHERE r.id = $1 FOR UPDATE OF r`,
    [roomId, actor ?? ''],
  )) as { visibility: string; last_mod_seq: string; role: Role | null }[];
  if (!room) return { outcome: 'no_room' };
  if (actor !== null && room.visibility === 'private' && room.role === null) return { outcome: 'forbidden' };
  const [row] = (await tx.query(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq = $2`, [roomId, seq])) as MessageRow[];
  if (!row) return { outcome: 'no_message' };
  const current = rowToMessage(roomId, row);
  // Moderators (owners included) may delete any message of their room, never edit another's.
  const mayDeleteAny = change.kind === 'delete' && (room.role === 'owner' || room.role === 'moderator');
  if (change.kind !== 'reaction' && actor !== null && current.senderId !== actor && !mayDeleteAny) return { outcome: 'not_sender' };
  if (current.deletedAt !== null) return change.kind === 'delete' ? { outcome: 'unchanged', message: current } : { outcome: 'deleted' };

  const writer = new ChangeWriter(tx, roomId, Number(room.last_mod_seq));
  switch (change.kind) {
    case 'edit': {
      if (change.expectedVersion !== undefined && change.expectedVersion !== current.version)
        return { outcome: 'conflict', currentVersion: current.version };
      // The replaced version is kept for audit (the versions route); the current one lives in messages.
      await writer.update(
        seq,
        `WITH kept AS (
           INSERT INTO message_versions (room_id, seq, version, body, edited_at)
           SELECT room_id, seq, version, body, edited_at FROM messages WHERE room_id = $1 AND seq = $2)
         UPDATE messages SET body = $4, mentions = coalesce($5::jsonb, mentions), version = version + 1, edited_at = now(), mod_seq = $3
         WHERE room_id = $1 AND seq = $2 RETURNING ${MESSAGE_COLUMNS}`,
        [change.body, change.mentions === undefined ? null : JSON.stringify(change.mentions)],
        EVENT_TYPES.messageUpdated,
      );
      break;
    }
    case 'delete': {
      // A tombstone: the body, mentions, reactions and kept versions go; seq, sender and thread stay.
      await writer.update(
        seq,
        `WITH reactions AS (DELETE FROM message_reactions WHERE room_id = $1 AND seq = $2),
              versions AS (DELETE FROM message_versions WHERE room_id = $1 AND seq = $2)
         UPDATE messages SET body = '', mentions = '[]', reactions = '[]', deleted_at = now(), version = version + 1, mod_seq = $3
         WHERE room_id = $1 AND seq = $2 RETURNING ${MESSAGE_COLUMNS}`,
        [],
        EVENT_TYPES.messageDeleted,
      );
      // replyCount counts the replies not deleted: the thread root changes too, after the reply.
      if (current.parentSeq !== null)
        await writer.update(
          current.parentSeq,
          `UPDATE messages p SET mod_seq = $3, reply_count = t.replies, last_reply_seq = t.last_reply
           FROM (SELECT count(*) AS replies, max(x.seq) AS last_reply FROM messages x
                 WHERE x.room_id = $1 AND x.parent_seq = $2 AND x.deleted_at IS NULL) AS t
           WHERE p.room_id = $1 AND p.seq = $2 RETURNING ${MESSAGE_COLUMNS}`,
          [],
          EVENT_TYPES.messageUpdated,
        );
      break;
    }
    case 'reaction': {
      const refused = change.add
        ? await addReaction(tx, current, actor ?? '', change.key)
        : await removeReaction(tx, current, actor ?? '', change.key);
      if (refused) return refused;
      await writer.update(seq, SUMMARISE_REACTIONS, [MAX_REACTION_USERS], EVENT_TYPES.messageUpdated);
      break;
    }
  }
  return writer.finish();
}

/** Stores the user's reaction unless they have it; refuses one past the per-message or per-user cap. */
async function addReaction(tx: EntityManager, message: Message, userId: string, key: string): Promise<ChangeResult | null> {
  const [mine] = (await tx.query(
    `SELECT count(*)::int AS keys, bool_or(key = $4) AS has FROM message_reactions WHERE room_id = $1 AND seq = $2 AND user_id = $3`,
    [message.roomId, message.seq, userId, key],
  )) as { keys: number; has: boolean | null }[];
  if (mine?.has) return { outcome: 'unchanged', message };
  if (!message.reactions.some((r) => r.key === key) && message.reactions.length >= MAX_REACTION_KEYS) return { outcome: 'too_many_keys' };
  if ((mine?.keys ?? 0) >= MAX_REACTION_KEYS_PER_USER) return { outcome: 'too_many_user_keys' };
  await tx.query('INSERT INTO message_reactions (room_id, seq, user_id, key) VALUES ($1, $2, $3, $4)', [
    message.roomId,
    message.seq,
    userId,
    key,
  ]);
  return null;
}

async function removeReaction(tx: EntityManager, message: Message, userId: string, key: string): Promise<ChangeResult | null> {
  const [removed] = (await tx.query(
    'DELETE FROM message_reactions WHERE room_id = $1 AND seq = $2 AND user_id = $3 AND key = $4 RETURNING key',
    [message.roomId, message.seq, userId, key],
  )) as [unknown[], number];
  return removed.length === 0 ? { outcome: 'unchanged', message } : null;
}

/**
 * The message's reactions summary from its rows: keys and user ids in code point order (UTF-8
 * bytes order as code points do, so COLLATE "C"), at most $4 user ids a key.
 */
const SUMMARISE_REACTIONS = `
  UPDATE messages SET mod_seq = $3, reactions = (
    SELECT coalesce(jsonb_agg(jsonb_build_object('key', k.key, 'count', k.n, 'userIds', to_jsonb(k.users)) ORDER BY k.key COLLATE "C"), '[]')
    FROM (SELECT r.key, count(*) AS n, (array_agg(r.user_id ORDER BY r.user_id COLLATE "C"))[1:$4] AS users
          FROM message_reactions r WHERE r.room_id = $1 AND r.seq = $2 GROUP BY r.key) AS k)
  WHERE room_id = $1 AND seq = $2 RETURNING ${MESSAGE_COLUMNS}`;

/**
 * Removes up to `limit` of the user's reactions in the room, under the room's row lock, each
 * message whose reactions changed taking the room's next modSeq and a `message.updated` event, as
 * reaction.remove does. Null when the room has none of the user's reactions (or is gone).
 */
export async function removeUserReactions(
  tx: EntityManager,
  roomId: string,
  userId: string,
  limit: number,
): Promise<{ removed: number; changed: Message[] } | null> {
  const [room] = (await tx.query('SELECT last_mod_seq FROM rooms WHERE id = $1 FOR UPDATE', [roomId])) as { last_mod_seq: string }[];
  if (!room) return null;
  const [gone] = (await tx.query(
    `DELETE FROM message_reactions x USING (
       SELECT seq, key FROM message_reactions WHERE user_id = $2 AND room_id = $1 ORDER BY seq, key LIMIT $3) AS t
     WHERE x.room_id = $1 AND x.seq = t.seq AND x.user_id = $2 AND x.key = t.key RETURNING x.seq`,
    [roomId, userId, limit],
  )) as [{ seq: string }[], number];
  if (gone.length === 0) return null;
  const writer = new ChangeWriter(tx, roomId, Number(room.last_mod_seq));
  for (const seq of new Set(gone.map((g) => Number(g.seq))))
    await writer.update(seq, SUMMARISE_REACTIONS, [MAX_REACTION_USERS], EVENT_TYPES.messageUpdated);
  const result = await writer.finish();
  return { removed: gone.length, changed: result.outcome === 'changed' ? result.changed : [] };
}

/** Gives each changed message the room's next modSeq, and writes the room's counter and the events once at the end. */
class ChangeWriter {
  private readonly changed: { type: string; message: Message }[] = [];

  constructor(
    private readonly tx: EntityManager,
    private readonly roomId: string,
    private lastModSeq: number,
  ) {}

  /** Runs `sql` ($1 room, $2 seq, $3 the new modSeq, then `params`), which returns the changed row. */
  async update(seq: number, sql: string, params: unknown[], eventType: string): Promise<void> {
    const modSeq = this.lastModSeq + 1;
    const [row] = (await this.tx.query(sql, [this.roomId, seq, modSeq, ...params])) as [MessageRow[], number];
    this.lastModSeq = modSeq;
    this.changed.push({ type: eventType, message: rowToMessage(this.roomId, row[0]!) });
  }

  async finish(): Promise<ChangeResult> {
    await this.tx.query(
      `WITH counter AS (UPDATE rooms SET last_mod_seq = $2 WHERE id = $1)
       INSERT INTO outbox (type, room_id, data)
       SELECT e.type, $1, e.data FROM unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS e(type, data, n) ORDER BY e.n`,
      [this.roomId, this.lastModSeq, this.changed.map((c) => c.type), this.changed.map((c) => JSON.stringify(c.message))],
    );
    const messages = this.changed.map((c) => c.message);
    return { outcome: 'changed', message: messages[0]!, changed: messages };
  }
}
