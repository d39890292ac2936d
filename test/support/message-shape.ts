/** Every key of a `Message` on the wire, sorted: what a reply or push must carry, no more. */
export const MESSAGE_KEYS = [
  'body',
  'clientMsgId',
  'createdAt',
  'deletedAt',
  'editedAt',
  'id',
  'lastReplySeq',
  'mentions',
  'modSeq',
  'parentSeq',
  'reactions',
  'replyCount',
  'roomId',
  'senderId',
  'seq',
  'version',
];

/** Every key of a `Room` on the wire, sorted. */
export const ROOM_KEYS = [
  'createdAt',
  'floorSeq',
  'lastModSeq',
  'lastSeq',
  'metadata',
  'retentionDays',
  'roomId',
  'slowModeMs',
  'title',
  'visibility',
];

/** The state fields of a room nobody wrote to yet, with the default retention (keep everything). */
export const EMPTY_ROOM = { lastSeq: 0, lastModSeq: 0, retentionDays: null, floorSeq: 1, slowModeMs: 0 };

/** The change fields of a message nobody edited, deleted, reacted to or replied to yet. */
export const UNCHANGED = {
  version: 1,
  editedAt: null,
  deletedAt: null,
  parentSeq: null,
  replyCount: 0,
  lastReplySeq: null,
  mentions: [],
  reactions: [],
};
