/**
 * "Events out" in code: the event types the service writes to its outbox, and the shapes they
 * leave in (Redis Stream entries, webhook bodies). Pure, so persistence and the relay share it.
 */

export const EVENT_TYPES = {
  /** data: the protocol's Message. Written by chat_append (SQL), which spells the name itself. */
  messageCreated: 'message.created',
  /** data: Room; explicit upserts only. */
  roomUpserted: 'room.upserted',
  /** data: { roomId, userId }; only when membership actually changes. */
  memberAdded: 'member.added',
  memberRemoved: 'member.removed',
  /** data: Message, latest state; edits, reactions and reply counts. Written with the change (and by chat_append for a parent). */
  messageUpdated: 'message.updated',
  /** data: the tombstone. */
  messageDeleted: 'message.deleted',
  /** data: { roomId, floorSeq }; messages below floorSeq are gone (retention). Written by RetentionJob (SQL), which spells the name itself. */
  roomTruncated: 'room.truncated',
  /** data: { roomId, userId, by, until } (by: the moderator's userId, or "api"). */
  moderationMuted: 'moderation.muted',
  /** data: { roomId, userId, by }. */
  moderationUnmuted: 'moderation.unmuted',
  /** data: { roomId, userId, by, until, reason }. */
  moderationBanned: 'moderation.banned',
  /** data: { roomId, userId, by }. */
  moderationUnbanned: 'moderation.unbanned',
  /** data: { roomId, userId, by }. */
  moderationKicked: 'moderation.kicked',
} as const;

export type EventType = (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES];

/** An event as stored in the outbox and published: `id` is generated once, at insert, and never changes. */
export interface ChatEventOut {
  id: string;
  type: string;
  roomId: string;
  data: unknown;
}

/** The field/value list of the event's stream entry: `id`, `type`, `roomId`, and `data` as a JSON string. */
export function streamFields(event: ChatEventOut): string[] {
  return ['id', event.id, 'type', event.type, 'roomId', event.roomId, 'data', JSON.stringify(event.data)];
}

/** The raw JSON body POSTed to webhooks: `{ id, type, roomId, data }`, the same bytes on every attempt. */
export function webhookBody(event: ChatEventOut): string {
  return JSON.stringify({ id: event.id, type: event.type, roomId: event.roomId, data: event.data });
}
