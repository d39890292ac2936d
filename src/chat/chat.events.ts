/** The wire protocol in code: event names and the values beside them; the payloads are the types of wire.ts, re-exported here. */

import type { Assert, ListsAll } from '../common/assert-type.js';
import type { ClientEvent, Role, ServerEventMap } from './wire.js';

export type * from './wire.js';

export const CLIENT_EVENTS = {
  roomJoin: 'room.join',
  roomLeave: 'room.leave',
  messageSend: 'message.send',
  messageHistory: 'message.history',
  authRefresh: 'auth.refresh',
  typingStart: 'typing.start',
  typingStop: 'typing.stop',
  messageRead: 'message.read',
  roomsList: 'rooms.list',
  presenceList: 'presence.list',
  messageEdit: 'message.edit',
  messageDelete: 'message.delete',
  reactionAdd: 'reaction.add',
  reactionRemove: 'reaction.remove',
  messageChanges: 'message.changes',
  moderationMute: 'moderation.mute',
  moderationUnmute: 'moderation.unmute',
  moderationBan: 'moderation.ban',
  moderationUnban: 'moderation.unban',
  moderationKick: 'moderation.kick',
  moderationList: 'moderation.list',
} as const satisfies Record<string, ClientEvent>;
/** Fails to compile when a request of ClientEventMap has no name here. */
export type ClientEventsListed = Assert<ListsAll<ClientEvent, (typeof CLIENT_EVENTS)[keyof typeof CLIENT_EVENTS]>>;

export const SERVER_EVENTS = {
  session: 'session',
  messageNew: 'message.new',
  /** A stored message changed (edit, delete, reaction, reply count): its latest state. */
  messageUpdated: 'message.updated',
  roomRemoved: 'room.removed',
  presenceJoined: 'presence.joined',
  presenceLeft: 'presence.left',
  error: 'error',
  typing: 'typing',
  receipt: 'receipt',
} as const satisfies Record<string, keyof ServerEventMap>;

/** A member's standing in a room, every one of them (for validation and the API documents). */
export const ROLES = ['owner', 'moderator', 'member'] as const satisfies readonly Role[];
/** Fails to compile when a Role is missing from ROLES. */
export type RolesListed = Assert<ListsAll<Role, (typeof ROLES)[number]>>;

/**
 * The senderId of system messages (posted over HTTP with `system: true`). Reserved: a token whose
 * `sub` is this id is refused, so no user can speak as the system.
 */
export const SYSTEM_SENDER_ID = 'system';
