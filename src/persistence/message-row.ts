import type { Message, Reaction } from '../chat/chat.events.js';

/** The columns of a message as the protocol shows it; every read of messages selects these. */
export const MESSAGE_COLUMNS =
  'id, seq, mod_seq, sender_id, body, client_msg_id, created_at, version, edited_at, deleted_at, parent_seq, reply_count, ' +
  'last_reply_seq, mentions, reactions';

/** A messages row as pg returns it: bigints as strings, timestamps as Dates, jsonb parsed. */
export interface MessageRow {
  id: string;
  seq: string;
  mod_seq: string;
  sender_id: string;
  body: string;
  client_msg_id: string | null;
  created_at: Date;
  version: number;
  edited_at: Date | null;
  deleted_at: Date | null;
  parent_seq: string | null;
  reply_count: number;
  last_reply_seq: string | null;
  mentions: string[];
  reactions: Reaction[];
}

export function rowToMessage(roomId: string, r: MessageRow): Message {
  return {
    id: r.id,
    roomId,
    seq: Number(r.seq),
    senderId: r.sender_id,
    body: r.body,
    clientMsgId: r.client_msg_id,
    createdAt: r.created_at.toISOString(),
    version: r.version,
    modSeq: Number(r.mod_seq),
    editedAt: r.edited_at?.toISOString() ?? null,
    deletedAt: r.deleted_at?.toISOString() ?? null,
    parentSeq: r.parent_seq === null ? null : Number(r.parent_seq),
    replyCount: r.reply_count,
    lastReplySeq: r.last_reply_seq === null ? null : Number(r.last_reply_seq),
    mentions: r.mentions,
    reactions: r.reactions,
  };
}
