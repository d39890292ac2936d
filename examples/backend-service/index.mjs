#!/usr/bin/env node
// An example backend service using the chat service: it opens a private room for two users, posts
// a system message into it over the HTTP API, and follows the chat service's event stream.
//
//   CHAT_URL=http://localhost:3000 CHAT_API_KEY=... node examples/backend-service/index.mjs [--once] [--timeout-ms N]
//
// See README.md in this folder for the variables and what is printed.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { chatApi } from './chat-api.mjs';
import { consume, ensureGroup } from './events.mjs';

const MEMBERS = ['alice', 'bob'];
const ONCE_TIMEOUT_MS = 15_000;

function readConfig() {
  const { values } = parseArgs({ options: { once: { type: 'boolean', default: false }, 'timeout-ms': { type: 'string' } } });
  const timeoutMs = values['timeout-ms'] === undefined ? (values.once ? ONCE_TIMEOUT_MS : null) : Number(values['timeout-ms']);
  if (timeoutMs !== null && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) fail('--timeout-ms must be a positive integer');
  const env = process.env;
  if (!env.CHAT_API_KEY) fail('CHAT_API_KEY is required: one of the chat service API_KEYS (not a read-only one)');
  return {
    once: values.once,
    timeoutMs,
    chatUrl: env.CHAT_URL ?? 'http://localhost:3000',
    apiKey: env.CHAT_API_KEY,
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    stream: env.EVENTS_STREAM ?? 'chat.events',
    group: env.CONSUMER_GROUP ?? 'backend-service',
    // Stable across restarts of the same host, so a restarted consumer re-reads what it had not acknowledged.
    consumer: env.CONSUMER_NAME ?? hostname(),
  };
}

function fail(message) {
  console.error(`backend-service: ${message}`);
  process.exit(2);
}

/** What identifies an event among those this run caused. */
function keyOf(event) {
  if (event.type === 'member.added' || event.type === 'member.removed') return `${event.type} ${event.roomId} ${event.data?.userId}`;
  if (event.type === 'message.created') return `${event.type} ${event.data?.id}`;
  return `${event.type} ${event.roomId}`;
}

async function main() {
  const config = readConfig();
  const deadline = config.timeoutMs === null ? Infinity : Date.now() + config.timeoutMs;
  const api = chatApi(config.chatUrl, config.apiKey);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3, connectionName: `backend-service-${config.consumer}` });
  redis.on('error', (err) => console.error(`redis: ${err.message}`));

  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => (stopping = true));

  try {
    // The group exists before the room is made, so the group's reads include this run's events.
    await ensureGroup(redis, config.stream, config.group);

    const roomId = `ops-${randomUUID().slice(0, 8)}`;
    const room = await api.upsertRoom(roomId, {
      visibility: 'private',
      title: 'Deployment review',
      metadata: { source: 'backend-service' },
    });
    console.log(`room ${roomId} ${room.status === 201 ? 'created' : 'replaced'}: ${JSON.stringify(room.body)}`);
    for (const userId of MEMBERS) {
      await api.addMember(roomId, userId);
      console.log(`member ${userId} added to ${roomId}`);
    }
    const posted = await api.postSystemMessage(roomId, `This room is private to ${MEMBERS.join(' and ')}.`, 'welcome');
    console.log(`system message posted: ${JSON.stringify(posted.body)}`);

    const expected = new Set([
      `room.upserted ${roomId}`,
      ...MEMBERS.map((userId) => `member.added ${roomId} ${userId}`),
      `message.created ${posted.body.id}`,
    ]);
    console.log(`reading ${config.stream} as group ${config.group}, consumer ${config.consumer}`);
    await consume(redis, {
      stream: config.stream,
      group: config.group,
      consumer: config.consumer,
      shouldStop: () => stopping || Date.now() >= deadline || (config.once && expected.size === 0),
      blockMs: () => deadline - Date.now(),
      onEvent: (event, entryId) => {
        console.log(`event ${JSON.stringify(event)} (entry ${entryId})`);
        expected.delete(keyOf(event));
      },
      onDuplicate: (event, entryId) => console.log(`duplicate ${event.id} (${event.type}) skipped (entry ${entryId})`),
      onMalformed: (entryId) => console.error(`entry ${entryId} is not an event; acknowledged and skipped`),
    });

    if (config.once && expected.size > 0) {
      console.error(`timed out after ${config.timeoutMs} ms waiting for: ${[...expected].join(', ')}`);
      process.exitCode = 1;
    } else if (config.once) {
      console.log(`done: all ${MEMBERS.length + 2} events of this run were read`);
    }
  } finally {
    // disconnect, not quit: QUIT would wait while Redis is unreachable.
    redis.disconnect();
  }
}

main().catch((err) => {
  console.error(`backend-service: ${err.message}`);
  process.exitCode = 1;
});
