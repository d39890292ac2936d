// What both baselines share: the /stats and /health routes, and the shape of a message.
import { randomUUID } from 'node:crypto';

let seq = 0;

/** The same fields as the service's Message; seq is a per-process counter (no persistence). */
export function makeMessage(roomId, senderId, body, clientMsgId) {
  return { id: randomUUID(), roomId, seq: ++seq, senderId, body, clientMsgId: clientMsgId ?? null, createdAt: new Date().toISOString() };
}

export const ROOM_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function validSend(data) {
  return (
    data !== null &&
    typeof data === 'object' &&
    typeof data.roomId === 'string' &&
    ROOM_ID.test(data.roomId) &&
    typeof data.body === 'string' &&
    data.body.length > 0 &&
    data.body.length <= 4000
  );
}

export function validJoin(data) {
  return data !== null && typeof data === 'object' && typeof data.roomId === 'string' && ROOM_ID.test(data.roomId);
}

export const fail = (code, message) => ({ ok: false, error: { code, message } });

/** GET /health: 200 once `ready()`; GET /stats: memory after a forced GC, CPU, connections. */
export function statsHandler({ ready, connections }) {
  return (req, res) => {
    if (req.url === '/health') {
      res.writeHead(ready() ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: ready() }));
      return true;
    }
    if (req.url === '/stats') {
      if (typeof global.gc === 'function') {
        global.gc();
        global.gc();
      }
      const body = {
        pid: process.pid,
        gc: typeof global.gc === 'function',
        memory: process.memoryUsage(),
        cpu: process.cpuUsage(),
        connections: connections(),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return true;
    }
    return false;
  };
}
