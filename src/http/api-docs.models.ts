/**
 * Response shapes of the HTTP API, for the OpenAPI document only: nothing constructs these
 * classes. Each `implements` the domain type it describes, so the compiler reports a property
 * that the domain renamed or retyped. Request bodies are not here: they are derived from the zod
 * schemas that validate them (see api-docs.ts).
 */
import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ERROR_CODES, type ErrorBody, type ErrorCode } from '../chat/chat.errors.js';
import {
  ROLES,
  SYSTEM_SENDER_ID,
  type ChangesPage,
  type HistoryPage,
  type Member,
  type Message,
  type MessageVersion,
  type PresenceList,
  type Reaction,
  type Role,
  type Room,
  type Sanction,
  type Visibility,
} from '../chat/chat.events.js';
import { ROOM_ID_PATTERN } from '../chat/chat.schemas.js';

@ApiSchema({ name: 'Reaction' })
export class ReactionModel implements Reaction {
  @ApiProperty({ minLength: 1, maxLength: 32, description: '1-32 characters, no white space or control characters' })
  key!: string;
  @ApiProperty({ type: 'integer', minimum: 1 })
  count!: number;
  @ApiProperty({ type: [String], description: 'The first 50 users who reacted, in code point order' })
  userIds!: string[];
}

@ApiSchema({ name: 'Message', description: 'A stored message, as pushed in `message.new` and returned by history' })
export class MessageModel implements Message {
  @ApiProperty({ description: 'Stable id of the message' })
  id!: string;
  @ApiProperty({ pattern: ROOM_ID_PATTERN })
  roomId!: string;
  @ApiProperty({ type: 'integer', minimum: 1, description: 'Per room: starts at 1 and grows by exactly 1 for each stored message' })
  seq!: number;
  @ApiProperty({ minLength: 1, maxLength: 128, description: `The sender's user id; \`${SYSTEM_SENDER_ID}\` for system messages` })
  senderId!: string;
  @ApiProperty({ description: 'Exactly as sent' })
  body!: string;
  @ApiProperty({ type: String, nullable: true, pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'The idempotency key it was posted with' })
  clientMsgId!: string | null;
  @ApiProperty({ format: 'date-time', description: 'Commit time, ISO 8601 UTC' })
  createdAt!: string;
  @ApiProperty({ type: 'integer', minimum: 1, description: '1 when created, +1 per edit or delete' })
  version!: number;
  @ApiProperty({ type: 'integer', minimum: 1, description: "The room's modSeq of this message's latest change" })
  modSeq!: number;
  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  editedAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'Set on a tombstone (body then empty)' })
  deletedAt!: string | null;
  @ApiProperty({ type: 'integer', nullable: true, description: "The thread root's seq for a reply" })
  parentSeq!: number | null;
  @ApiProperty({ type: 'integer', minimum: 0, description: 'Replies not deleted, for a thread root' })
  replyCount!: number;
  @ApiProperty({ type: 'integer', nullable: true })
  lastReplySeq!: number | null;
  @ApiProperty({ type: [String], description: 'Mentioned user ids' })
  mentions!: string[];
  @ApiProperty({ type: [ReactionModel], description: 'By key in code point order' })
  reactions!: ReactionModel[];
}

@ApiSchema({ name: 'HistoryPage', description: 'Messages ascending by seq' })
export class HistoryPageModel implements HistoryPage {
  @ApiProperty({ type: [MessageModel] })
  messages!: MessageModel[];
  @ApiProperty({ description: 'Whether more messages follow in the paging direction (older without afterSeq, newer with it)' })
  hasMore!: boolean;
}

@ApiSchema({
  name: 'ChangesPage',
  description: 'Messages whose latest change is after afterModSeq, in their latest state, ascending by modSeq',
})
export class ChangesPageModel implements ChangesPage {
  @ApiProperty({ type: [MessageModel] })
  messages!: MessageModel[];
  @ApiProperty({ description: 'More changes follow: page on with the last modSeq returned' })
  hasMore!: boolean;
  @ApiProperty({ type: 'integer', minimum: 0, description: "The room's modSeq when the page was read; 0 for a room that does not exist" })
  lastModSeq!: number;
  @ApiProperty({
    description:
      'Messages whose latest change was after afterModSeq were removed by retention (below the floor): those changes are ' +
      'gone, and the page starts at the floor',
  })
  truncated!: boolean;
}

@ApiSchema({ name: 'MessageVersion' })
export class MessageVersionModel implements MessageVersion {
  @ApiProperty({ type: 'integer', minimum: 1 })
  version!: number;
  @ApiProperty({ description: 'The body this version had' })
  body!: string;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'When the edit that made this version happened; null for version 1',
  })
  editedAt!: string | null;
}

@ApiSchema({ name: 'MessageVersionList' })
export class MessageVersionListModel {
  @ApiProperty({ type: [MessageVersionModel], description: 'Oldest first, the current version last; empty after a delete' })
  versions!: MessageVersionModel[];
}

@ApiSchema({ name: 'Room' })
export class RoomModel implements Room {
  @ApiProperty({ pattern: ROOM_ID_PATTERN })
  roomId!: string;
  @ApiProperty({ enum: ['public', 'private'], description: 'Private rooms admit members only' })
  visibility!: Visibility;
  @ApiProperty({ type: String, nullable: true, maxLength: 200 })
  title!: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'A JSON object of at most 16 KiB' })
  metadata!: Record<string, unknown> | null;
  @ApiProperty({ type: 'integer', minimum: 0, description: 'seq of the newest message; 0 for a room without messages' })
  lastSeq!: number;
  @ApiProperty({ type: 'integer', minimum: 0, description: "modSeq of the room's latest change; 0 for a room without messages" })
  lastModSeq!: number;
  @ApiProperty({ type: 'integer', nullable: true, minimum: 1, maximum: 36500, description: 'Days messages are kept; null: forever' })
  retentionDays!: number | null;
  @ApiProperty({
    type: 'integer',
    minimum: 0,
    maximum: 3600000,
    description: 'Slow mode: ms between two messages of a member who is not a moderator; 0: off',
  })
  slowModeMs!: number;
  @ApiProperty({
    type: 'integer',
    minimum: 1,
    description: 'Every message with a lower seq was removed by retention; 1 until something is removed',
  })
  floorSeq!: number;
  @ApiProperty({ format: 'date-time' })
  createdAt!: string;
}

@ApiSchema({ name: 'Member' })
export class MemberModel implements Member {
  @ApiProperty({ minLength: 1, maxLength: 128 })
  userId!: string;
  @ApiProperty({ enum: ROLES, description: 'Owners and moderators moderate the room' })
  role!: Role;
  @ApiProperty({ type: 'integer', minimum: 0 })
  lastReadSeq!: number;
}

@ApiSchema({ name: 'Sanction' })
export class SanctionModel implements Sanction {
  @ApiProperty({ minLength: 1, maxLength: 128 })
  userId!: string;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true, description: 'When it ends; null: when lifted' })
  until!: string | null;
  @ApiProperty({ type: 'string', nullable: true, description: "A ban's reason; null for a mute" })
  reason!: string | null;
}

@ApiSchema({ name: 'BanList' })
export class BanListModel {
  @ApiProperty({ type: [SanctionModel] })
  bans!: SanctionModel[];
}

@ApiSchema({ name: 'MuteList' })
export class MuteListModel {
  @ApiProperty({ type: [SanctionModel] })
  mutes!: SanctionModel[];
}

@ApiSchema({ name: 'MemberList' })
export class MemberListModel {
  @ApiProperty({ type: [MemberModel] })
  members!: MemberModel[];
}

@ApiSchema({ name: 'PresentUser' })
export class PresentUserModel {
  @ApiProperty({ minLength: 1, maxLength: 128 })
  userId!: string;
}

@ApiSchema({ name: 'PresenceList' })
export class PresenceListModel implements PresenceList {
  @ApiProperty({ pattern: ROOM_ID_PATTERN })
  roomId!: string;
  @ApiProperty({
    type: [PresentUserModel],
    description: 'Users with at least one connection joined to the room, on any instance; the first 1000 by userId',
  })
  users!: PresentUserModel[];
  @ApiProperty({ description: 'More users are present than `users` lists (it stops at 1000)' })
  hasMore!: boolean;
}

@ApiSchema({ name: 'DisconnectAccepted' })
export class DisconnectAcceptedModel {
  @ApiProperty({ minLength: 1, maxLength: 128 })
  userId!: string;
}

@ApiSchema({ name: 'Error' })
export class ErrorModel implements ErrorBody {
  @ApiProperty({ enum: ERROR_CODES, description: 'Stable, upper case' })
  code!: ErrorCode;
  @ApiProperty({ description: 'For people; may change' })
  message!: string;
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description: 'VALIDATION_FAILED: `fields` lists the offending field names; CONFLICT: `currentVersion` is the stored version',
  })
  details?: Record<string, unknown>;
}

@ApiSchema({ name: 'ErrorResponse', description: 'Every HTTP error' })
export class ErrorResponseModel {
  @ApiProperty({ enum: [false] })
  ok!: false;
  @ApiProperty({ type: ErrorModel })
  error!: ErrorModel;
}

@ApiSchema({ name: 'Erasure' })
export class ErasureModel {
  @ApiProperty({ minimum: 0, description: 'Messages this call turned into tombstones' })
  messagesDeleted!: number;

  @ApiProperty({ minimum: 0, description: "The user's reactions this call removed" })
  reactionsRemoved!: number;

  @ApiProperty({ minimum: 0, description: 'Rooms whose membership or read state of the user this call removed' })
  roomsLeft!: number;
}
