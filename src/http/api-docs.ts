import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { z } from 'zod';
import { createSchemas, userRef } from '../chat/chat.schemas.js';
import type { AppConfig } from '../config/config.schema.js';
import { API_KEY_SCHEME, schemaRef } from './api-docs.decorators.js';

/** Swagger UI here, the document at /docs-json (and /docs-yaml); no key needed, like /health. */
export const DOCS_PATH = 'docs';

type JsonSchema = Record<string, unknown>;

/** Serves the OpenAPI document of every HTTP route and Swagger UI for it; call before listen. */
export function serveApiDocs(app: INestApplication, config: AppConfig): void {
  SwaggerModule.setup(DOCS_PATH, app, buildApiDocument(app, config), { customSiteTitle: 'Chat service HTTP API' });
}

/** The document Nest's controllers describe, completed with the request schemas derived from the validating zod schemas. */
export function buildApiDocument(app: INestApplication, config: AppConfig): OpenAPIObject {
  const info = new DocumentBuilder()
    .setTitle('Chat service HTTP API')
    .setDescription(
      'The HTTP API for backend services, on the same port as the socket.io and raw WebSocket endpoints. Every /v1 route ' +
        'needs an `X-API-Key` header with one of API_KEYS; a read-only key (`key:read`) may only GET. Every error is ' +
        '`{ ok: false, error: { code, message, details? } }` with a stable upper-case code.',
    )
    .setVersion('1')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'One of API_KEYS' }, API_KEY_SCHEME)
    .build();
  // Each handler's method name is its operationId (`postMessage`, `getRoom`): what generated clients call.
  const document = SwaggerModule.createDocument(app, info, { operationIdFactory: (_controller, method) => method });
  document.components = { ...document.components, schemas: { ...document.components?.schemas, ...requestSchemas(config.limits) } };
  return document;
}

/**
 * Request bodies and parameters as the zod schemas that validate them accept them, with the
 * configured limits. Rules zod checks in code (refinements) have no JSON Schema form; they are
 * described in words.
 */
function requestSchemas(limits: AppConfig['limits']): Record<string, JsonSchema> {
  const s = createSchemas(limits);
  const body = `1-${limits.maxMessageLength} Unicode code points (MAX_MESSAGE_LENGTH), not only white space, no NUL, well-formed Unicode; stored as sent`;
  const clientMsgId = 'Idempotency key: a repeated (roomId, senderId, clientMsgId) returns the stored message';
  const mentions = 'Mentioned user ids: at most 50 after de-duplication (first occurrences kept)';
  const parentSeq = 'Reply in the thread of this message: a top-level message of the room that is not deleted';
  return {
    RoomId: toSchema(s.roomRef.shape.roomId),
    UserId: toSchema(userRef.shape.userId),
    ClientMsgId: toSchema(s.post.shape.clientMsgId.unwrap()),
    Seq: { ...toSchema(s.history.shape.beforeSeq.unwrap()), description: 'A message seq (integer >= 0)' },
    PageLimit: toSchema(s.history.shape.limit),
    ModSeq: { ...toSchema(s.changes.shape.afterModSeq), description: "A room's change counter (integer >= 0): changes after it" },
    ChangesLimit: toSchema(s.changes.shape.limit),
    EditMessage: withDescriptions(toSchema(s.edit.omit({ roomId: true, seq: true })), {
      body,
      mentions,
      expectedVersion: 'Edit only if the stored version is this one; otherwise 409 CONFLICT with details.currentVersion',
    }),
    MemberSettings: withDescriptions(toSchema(s.member.omit({ roomId: true, userId: true })), {
      role: 'owner, moderator or member; owners and moderators moderate the room. Omitted: a new member is a member, an existing one keeps their role',
    }),
    MuteSettings: withDescriptions(toSchema(s.mute.omit({ roomId: true, userId: true })), {
      durationMs: 'How long the mute lasts, in ms; omitted: until unmuted',
    }),
    BanSettings: withDescriptions(toSchema(s.ban.omit({ roomId: true, userId: true })), {
      durationMs: 'How long the ban lasts, in ms; omitted: until unbanned',
      reason: 'Why, as the bans list and the moderation.banned event show it; at most 1000 characters',
    }),
    RoomSettings: withDescriptions(toSchema(s.room.omit({ roomId: true })), {
      title: 'At most 200 characters; omitted: null',
      metadata: 'A JSON object of at most 16 KiB; omitted: null',
      retentionDays: 'Days messages are kept, 1-36500; omitted or null: forever. Older messages are removed at least hourly',
      slowModeMs:
        'Slow mode, 0-3600000: a member who is not an owner or moderator may send one message per this many ms over a socket (RATE_LIMITED with details.retryAfterMs); omitted: 0, off',
    }),
    PostUserMessage: withDescriptions(toSchema(s.post.omit({ roomId: true })), {
      senderId: 'The user the message is posted for (not checked for membership)',
      system: 'Omit or false; `true` (without senderId) makes a system message',
      body,
      clientMsgId,
      parentSeq,
      mentions,
    }),
    PostSystemMessage: withDescriptions(toSchema(s.systemPost.omit({ roomId: true })), {
      senderId: 'Must be absent: a system message is stored with senderId `system`',
      body,
      clientMsgId,
      parentSeq,
      mentions,
    }),
    PostMessage: { oneOf: [schemaRef('PostUserMessage'), schemaRef('PostSystemMessage')] },
  };
}

function toSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }) as JsonSchema;
}

function withDescriptions(schema: JsonSchema, descriptions: Record<string, string>): JsonSchema {
  const properties = schema.properties as Record<string, JsonSchema>;
  for (const [name, description] of Object.entries(descriptions)) properties[name] = { ...properties[name], description };
  return schema;
}
