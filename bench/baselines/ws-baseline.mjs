#!/usr/bin/env node
// Baseline: what a user would write instead of the service with raw WebSocket — a bare `ws`
// server on /ws with Redis pub/sub (one channel per room, subscribed while the room has local
// members), the service's JSON frames {event, data, id} and replies {id, ok, data|error}, no
// persistence, no auth (senderId is the token's unverified `sub`). Local members get a message
// first; other instances get it from Redis (each instance ignores its own publications), as the
// socket.io Redis adapter and the service do.
//   PORT, REDIS_URL, REDIS_PREFIX; start with --expose-gc so GET /stats measures after a GC.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { WebSocketServer, WebSocket } from 'ws';
import { unverifiedSub } from '../lib/token.mjs';
import { fail, makeMessage, statsHandler, validJoin, validSend } from './common.mjs';

const port = Number(process.env.PORT ?? 4100);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.REDIS_PREFIX ?? 'bench-ws';
const instanceId = randomUUID();
const HEARTBEAT_MS = 25_000;

const pub = new Redis(redisUrl, { connectionName: `${prefix}-pub` });
const sub = pub.duplicate({ connectionName: `${prefix}-sub` });
for (const c of [pub, sub]) c.on('error', (err) => process.stderr.write(`redis: ${err.message}\n`));

/** roomId -> local members */
const rooms = new Map();
const channelOf = (roomId) => `${prefix}:room:${roomId}`;
const roomOf = (channel) => channel.slice(prefix.length + 6);

sub.on('message', (channel, payload) => {
  const nl = payload.indexOf('\n');
  if (payload.slice(0, nl) === instanceId) return;
  deliverLocal(roomOf(channel), payload.slice(nl + 1));
});

function deliverLocal(roomId, frame) {
  const members = rooms.get(roomId);
  if (!members) return;
  for (const ws of members) if (ws.readyState === WebSocket.OPEN) ws.send(frame);
}

function join(ws, roomId) {
  let members = rooms.get(roomId);
  if (!members) {
    rooms.set(roomId, (members = new Set()));
    void sub.subscribe(channelOf(roomId)).catch(() => undefined);
  }
  members.add(ws);
  ws.rooms.add(roomId);
}

function leave(ws, roomId) {
  const members = rooms.get(roomId);
  ws.rooms.delete(roomId);
  if (members?.delete(ws) && members.size === 0) {
    rooms.delete(roomId);
    void sub.unsubscribe(channelOf(roomId)).catch(() => undefined);
  }
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false });
const stats = statsHandler({ ready: () => pub.status === 'ready' && sub.status === 'ready', connections: () => wss.clients.size });
const http = createServer((req, res) => {
  if (!stats(req, res)) res.writeHead(404).end();
});
http.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  const url = URL.parse(req.url ?? '/', 'http://localhost');
  if (url?.pathname !== '/ws') return socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  const header = req.headers.authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const userId = unverifiedSub(header ?? url.searchParams.get('access_token'));
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, userId));
});

wss.on('connection', (ws, userId) => {
  ws.rooms = new Set();
  ws.alive = true;
  ws.on('error', () => undefined);
  ws.on('pong', () => (ws.alive = true));
  ws.on('close', () => {
    for (const roomId of [...ws.rooms]) leave(ws, roomId);
  });
  const reply = (id, r) => id !== undefined && ws.send(JSON.stringify({ id, ...r }));
  ws.on('message', (raw, isBinary) => {
    let frame;
    try {
      frame = isBinary ? undefined : JSON.parse(raw.toString());
    } catch {
      frame = undefined;
    }
    const id = typeof frame?.id === 'string' ? frame.id : undefined;
    if (!frame || typeof frame.event !== 'string') return reply(id, fail('BAD_REQUEST', 'not a request'));
    const data = frame.data;
    switch (frame.event) {
      case 'room.join':
        if (!validJoin(data)) return reply(id, fail('VALIDATION_FAILED', 'roomId'));
        join(ws, data.roomId);
        return reply(id, { ok: true, data: { roomId: data.roomId, lastSeq: 0 } });
      case 'room.leave':
        if (validJoin(data)) leave(ws, data.roomId);
        return reply(id, { ok: true, data: { roomId: data?.roomId } });
      case 'message.send': {
        if (!validSend(data)) return reply(id, fail('VALIDATION_FAILED', 'roomId/body'));
        const message = makeMessage(data.roomId, userId, data.body, data.clientMsgId);
        const out = JSON.stringify({ event: 'message.new', data: message });
        deliverLocal(data.roomId, out);
        void pub.publish(channelOf(data.roomId), `${instanceId}\n${out}`).catch(() => 0);
        return reply(id, { ok: true, data: message });
      }
      default:
        return reply(id, fail('UNKNOWN_EVENT', 'no such event'));
    }
  });
  ws.send(JSON.stringify({ event: 'session', data: { userId, connectionId: randomUUID() } }));
});

// The same heartbeat as the service's raw ws: a ping every 25 s; no pong by the next one drops the peer.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.alive) ws.terminate();
    else {
      ws.alive = false;
      ws.ping();
    }
  }
}, HEARTBEAT_MS);

http.listen(port, '127.0.0.1');
const stop = () => {
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  pub.disconnect();
  sub.disconnect();
  http.close();
  setTimeout(() => process.exit(0), 200).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
