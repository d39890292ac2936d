#!/usr/bin/env node
// Baseline: what a user would write instead of the service with socket.io — a bare socket.io
// server with @socket.io/redis-adapter over ioredis, rooms and broadcast, no persistence, no auth
// (any connection is accepted; senderId is the token's unverified `sub`).
//   PORT, REDIS_URL, REDIS_PREFIX; start with --expose-gc so GET /stats measures after a GC.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { unverifiedSub } from '../lib/token.mjs';
import { fail, makeMessage, statsHandler, validJoin, validSend } from './common.mjs';

const port = Number(process.env.PORT ?? 4000);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.REDIS_PREFIX ?? 'bench-io';

const pub = new Redis(redisUrl, { connectionName: `${prefix}-pub` });
const sub = pub.duplicate({ connectionName: `${prefix}-sub` });
for (const c of [pub, sub]) c.on('error', (err) => process.stderr.write(`redis: ${err.message}\n`));

const stats = statsHandler({ ready: () => pub.status === 'ready' && sub.status === 'ready', connections: () => io.engine.clientsCount });
const http = createServer((req, res) => {
  if (!stats(req, res)) res.writeHead(404).end();
});
// The same transport settings as the service: no compression, 64 KiB packets, 25 s / 20 s heartbeat.
const io = new Server(http, {
  path: '/socket.io',
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 64 * 1024,
  pingInterval: 25_000,
  pingTimeout: 20_000,
  adapter: createAdapter(pub, sub, { key: prefix }),
});

io.on('connection', (socket) => {
  const userId = unverifiedSub(socket.handshake.auth?.token);
  socket.emit('session', { userId, connectionId: socket.id });
  socket.on('room.join', (data, ack) => {
    if (typeof ack !== 'function') return;
    if (!validJoin(data)) return ack(fail('VALIDATION_FAILED', 'roomId'));
    socket.join(data.roomId);
    ack({ ok: true, data: { roomId: data.roomId, lastSeq: 0 } });
  });
  socket.on('room.leave', (data, ack) => {
    if (validJoin(data)) socket.leave(data.roomId);
    if (typeof ack === 'function') ack({ ok: true, data: { roomId: data?.roomId } });
  });
  socket.on('message.send', (data, ack) => {
    if (!validSend(data)) return typeof ack === 'function' && ack(fail('VALIDATION_FAILED', 'roomId/body'));
    const message = makeMessage(data.roomId, userId, data.body, data.clientMsgId);
    io.to(data.roomId).emit('message.new', message);
    if (typeof ack === 'function') ack({ ok: true, data: message });
  });
});

http.listen(port, '127.0.0.1');
const stop = () => {
  io.close();
  pub.disconnect();
  sub.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
