import { z } from 'zod';
import { storableJsonIssue, storableTextIssue } from '../common/safe-text.js';
import { ChatError } from './chat.errors.js';
import type { Assert, SameShape } from '../common/assert-type.js';
import { ROLES, type ClientEvent, type ClientEventMap } from './chat.events.js';

/** A room id, as the protocol states it (the API documents show the same string). */
export const ROOM_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';
const CLIENT_MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;
// Unicode White_Space, which String.prototype.trim does not match exactly (it misses U+0085).
const ONLY_WHITE_SPACE = /^\p{White_Space}*$/u;

export const MAX_PAGE = 100;
export const DEFAULT_PAGE = 50;
/**
 * The largest rooms.list page, and its default: a contract client sending `{}` still gets every
 * room unless it has more than this (then `hasMore` says so).
 */
export const MAX_ROOMS_PAGE = 1000;
/** message.changes pages: the contract's largest, and its default. */
export const MAX_CHANGES_PAGE = 100;
/** Distinct reaction keys on one message, and keys one user may put on one message. */
export const MAX_REACTION_KEYS = 50;
export const MAX_REACTION_KEYS_PER_USER = 20;
/** User ids listed per reaction key (count says how many there are). */
export const MAX_REACTION_USERS = 50;
/** Users one message may mention, after de-duplication. */
export const MAX_MENTIONS = 50;
/**
 * Entries a mentions array may have before de-duplication: generous for repeats, and a bound on
 * the work a hostile array can cause (frames are size-capped anyway).
 */
const MAX_MENTION_ENTRIES = 1000;
/** White_Space or a control character (Cc): not allowed in a reaction key. */
const NOT_IN_KEY = /[\p{White_Space}\p{Cc}]/u;

const roomId = z.string().regex(new RegExp(ROOM_ID_PATTERN), `must match ${ROOM_ID_PATTERN}`);
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Every stored string passes this (see safe-text.ts); the issue names the field. */
function storable<T extends z.ZodType<string>>(schema: T) {
  return schema.superRefine((s, ctx) => {
    const issue = storableTextIssue(s);
    if (issue) ctx.addIssue({ code: 'custom', message: issue });
  });
}

/** Message bodies: stored exactly as sent, so anything Postgres or a client would alter is refused here. */
function body(maxLength: number) {
  return storable(z.string())
    .refine((s) => !ONLY_WHITE_SPACE.test(s), 'must not be empty or white space only')
    .refine((s) => countCodePoints(s) <= maxLength, `must be at most ${maxLength} characters`);
}

function countCodePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const userId = storable(z.string().min(1, 'must be 1-128 characters').max(128, 'must be 1-128 characters'));

/** User ids, de-duplicated (first occurrences kept), at most MAX_MENTIONS of them. */
const mentions = z
  .array(userId)
  .max(MAX_MENTION_ENTRIES, `must have at most ${MAX_MENTIONS} distinct user ids`)
  .transform((ids) => [...new Set(ids)])
  .refine((ids) => ids.length <= MAX_MENTIONS, `must have at most ${MAX_MENTIONS} distinct user ids`);

const reactionKey = storable(z.string()).refine((k) => {
  const n = countCodePoints(k);
  return n >= 1 && n <= 32 && !NOT_IN_KEY.test(k);
}, 'must be 1-32 characters, none of them white space or control characters');
const MAX_METADATA_BYTES = 16 * 1024;
/** The longest mute or ban with an end: 100 years (longer is the same as none, which has no durationMs). */
export const MAX_SANCTION_MS = 100 * 365 * 24 * 3600 * 1000;
/** A ban's reason, as shown to moderators. */
const MAX_REASON_LENGTH = 1000;
const sanctionMs = z.number().int().min(1).max(MAX_SANCTION_MS, 'must be at most 100 years (omit it for no end)');
/** A room's slowModeMs: at most an hour. */
export const MAX_SLOW_MODE_MS = 3_600_000;
/** A room's retentionDays: at least a day, at most 100 years. */
const MIN_RETENTION_DAYS = 1;
const MAX_RETENTION_DAYS = 36_500;

export function createSchemas(limits: { maxMessageLength: number; maxHistoryPage?: number }) {
  const maxPage = limits.maxHistoryPage ?? MAX_PAGE;
  const clientMsgId = z.string().regex(CLIENT_MSG_ID, 'must be 1-64 characters of A-Z a-z 0-9 _ -');
  return {
    join: z.object({ roomId, sinceSeq: seq.optional(), sinceModSeq: seq.optional() }),
    leave: z.object({ roomId }),
    send: z.object({
      roomId,
      body: body(limits.maxMessageLength),
      clientMsgId: clientMsgId.optional(),
      parentSeq: seq.optional(),
      mentions: mentions.optional(),
    }),
    edit: z.object({
      roomId,
      seq,
      body: body(limits.maxMessageLength),
      mentions: mentions.optional(),
      expectedVersion: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    }),
    messageRef: z.object({ roomId, seq }),
    reaction: z.object({ roomId, seq, key: reactionKey }),
    changes: z.object({
      roomId,
      afterModSeq: seq,
      limit: z.number().int().min(1).max(MAX_CHANGES_PAGE).default(MAX_CHANGES_PAGE),
    }),
    /** A message posted by a trusted service on behalf of `senderId`. */
    post: z.object({
      roomId,
      senderId: userId,
      // `system: true` selects systemPost instead (see isSystemPost), so here it can only be false.
      system: z.literal(false, 'must be true (a system message) or false').optional(),
      body: body(limits.maxMessageLength),
      clientMsgId: clientMsgId.optional(),
      parentSeq: seq.optional(),
      mentions: mentions.optional(),
    }),
    /** A system message posted by a trusted service: it has no sender of its own (stored as SYSTEM_SENDER_ID). */
    systemPost: z.object({
      roomId,
      system: z.literal(true),
      senderId: z.never('must not be set when system is true').optional(),
      body: body(limits.maxMessageLength),
      clientMsgId: clientMsgId.optional(),
      parentSeq: seq.optional(),
      mentions: mentions.optional(),
    }),
    room: z.object({
      roomId,
      visibility: z.enum(['public', 'private']),
      title: storable(z.string())
        .refine((t) => countCodePoints(t) <= 200, 'must be at most 200 characters')
        .nullable()
        .default(null),
      metadata: z
        .record(z.string(), z.unknown())
        .superRefine((m, ctx) => {
          const issue = storableJsonIssue(m);
          if (issue) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
        })
        .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES, 'must be at most 16 KiB as JSON')
        .nullable()
        .default(null),
      retentionDays: z.number().int().min(MIN_RETENTION_DAYS).max(MAX_RETENTION_DAYS).nullable().default(null),
      slowModeMs: z.number().int().min(0).max(MAX_SLOW_MODE_MS).default(0),
    }),
    roomRef: z.object({ roomId }),
    read: z.object({ roomId, seq }),
    /** rooms.list: a page of rooms by roomId, after `afterRoomId` (the last one of the previous page). */
    roomsList: z.object({
      limit: z.number().int().min(1).max(MAX_ROOMS_PAGE).default(MAX_ROOMS_PAGE),
      afterRoomId: roomId.optional(),
    }),
    member: z.object({ roomId, userId, role: z.enum(ROLES).optional() }),
    /** moderation.unmute, .unban and .kick; the mute and ban below add how long, and a ban why. */
    moderationTarget: z.object({ roomId, userId }),
    mute: z.object({ roomId, userId, durationMs: sanctionMs.optional() }),
    ban: z.object({
      roomId,
      userId,
      durationMs: sanctionMs.optional(),
      reason: storable(z.string().max(MAX_REASON_LENGTH, `must be at most ${MAX_REASON_LENGTH} characters`))
        .nullable()
        .optional(),
    }),
    history: z
      .object({
        roomId,
        beforeSeq: seq.optional(),
        afterSeq: seq.optional(),
        parentSeq: seq.optional(),
        limit: z.number().int().min(1).max(maxPage).default(Math.min(DEFAULT_PAGE, maxPage)),
      })
      .refine((q) => q.beforeSeq === undefined || q.afterSeq === undefined, {
        message: 'beforeSeq and afterSeq cannot be combined',
        path: ['beforeSeq'],
      }),
  };
}

export type ChatSchemas = ReturnType<typeof createSchemas>;

/** A request's type in ClientEventMap, as the protocol's types say. */
type RequestOf<E extends ClientEvent> = ClientEventMap[E]['request'];
/** What a schema accepts (before defaults). */
type Accepts<K extends keyof ChatSchemas> = z.input<ChatSchemas[K]>;

/** Fails to compile when a schema and the request type of wire.ts (which the client compiles) disagree. */
export type SchemasMatchRequests = Assert<
  | SameShape<Accepts<'join'>, RequestOf<'room.join'>>
  | SameShape<Accepts<'leave'>, RequestOf<'room.leave'>>
  | SameShape<Accepts<'send'>, RequestOf<'message.send'>>
  | SameShape<Accepts<'history'>, RequestOf<'message.history'>>
  | SameShape<Accepts<'edit'>, RequestOf<'message.edit'>>
  | SameShape<Accepts<'messageRef'>, RequestOf<'message.delete'>>
  | SameShape<Accepts<'reaction'>, RequestOf<'reaction.add'>>
  | SameShape<Accepts<'changes'>, RequestOf<'message.changes'>>
  | SameShape<Accepts<'read'>, RequestOf<'message.read'>>
  | SameShape<Accepts<'roomRef'>, RequestOf<'typing.start'>>
  | SameShape<Accepts<'roomsList'>, RequestOf<'rooms.list'>>
  | SameShape<z.input<typeof presenceQuery>, RequestOf<'presence.list'>>
  | SameShape<Accepts<'mute'>, RequestOf<'moderation.mute'>>
  | SameShape<Accepts<'moderationTarget'>, RequestOf<'moderation.kick'>>
  | SameShape<Accepts<'ban'>, RequestOf<'moderation.ban'>>
  | SameShape<Accepts<'roomRef'>, RequestOf<'moderation.list'>>
>;

/** A user named by a service (HTTP path parameter), with the same rule as a token's `sub`. */
export const userRef = z.object({ userId });

/** `presence.list { roomId }`. */
export const presenceQuery = z.object({ roomId });

/** Whether posted data asks for a system message; decides which schema validates it. */
export function isSystemPost(data: unknown): boolean {
  return typeof data === 'object' && data !== null && (data as { system?: unknown }).system === true;
}

/**
 * Parses untrusted request data. Unknown keys are dropped (so client-set sender, seq, id or
 * timestamps never reach storage); failures name the offending fields.
 */
export function parseInput<S extends z.ZodType>(schema: S, data: unknown): z.infer<S> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ChatError('VALIDATION_FAILED', 'data must be an object', { fields: [] });
  }
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const fields = [...new Set(result.error.issues.map((i) => String(i.path[0] ?? '')).filter(Boolean))];
  const first = result.error.issues[0];
  const message = first ? `${first.path.length ? `${first.path.join('.')}: ` : ''}${first.message}` : 'invalid data';
  throw new ChatError('VALIDATION_FAILED', message, { fields });
}
