// The load generator's clients: one small API over socket.io-client (websocket transport only)
// and raw `ws`, the same against the service and the baselines. Requests are matched through one
// pending table per process, swept for timeouts once a second (no timer per request).
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { nowUs } from '../lib/hist.mjs';

const pending = new Map(); // key -> { t0, cb }
let nextKey = 0;
const REQUEST_TIMEOUT_US = 15_000_000;

setInterval(() => {
  const limit = nowUs() - REQUEST_TIMEOUT_US;
  for (const [key, p] of pending) {
    if (p.t0 < limit) {
      pending.delete(key);
      p.cb({ ok: false, error: { code: 'TIMEOUT', message: 'no reply' } });
    }
  }
}, 1000).unref();

export function inflight() {
  return pending.size;
}

function settle(key, reply) {
  const p = pending.get(key);
  if (!p) return;
  pending.delete(key);
  p.cb(reply);
}

/**
 * kind: 'io' | 'ws'. `onMessage(data)` gets every message.new; `onClose(reason)` once.
 * connect() resolves at the `session` push (both the service and the baselines send it).
 */
export class BenchClient {
  constructor(kind, baseUrl, token) {
    this.kind = kind;
    this.baseUrl = baseUrl;
    this.token = token;
    this.onMessage = () => undefined;
    this.onClose = () => undefined;
    this.open = false;
    this.closed = false;
  }

  connect(timeoutMs = 20_000) {
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => finish(new Error('connect timeout')), timeoutMs);
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          this.terminate();
          reject(err);
        } else {
          this.open = true;
          resolve();
        }
      };
      const closed = (reason) => {
        if (this.closed) return;
        this.closed = true;
        const wasOpen = this.open;
        this.open = false;
        if (!done) finish(new Error(`closed before session: ${reason}`));
        else if (wasOpen) this.onClose(reason);
      };
      if (this.kind === 'io') {
        const s = io(this.baseUrl, {
          transports: ['websocket'],
          upgrade: false,
          reconnection: false,
          forceNew: true,
          timeout: timeoutMs,
          auth: { token: this.token },
        });
        this.socket = s;
        s.on('session', () => finish());
        s.on('message.new', (m) => this.onMessage(m));
        s.on('connect_error', (err) => closed(`connect_error ${err.message}`));
        s.on('disconnect', (reason) => closed(reason));
      } else {
        const ws = new WebSocket(`${this.baseUrl.replace(/^http/, 'ws')}/ws`, {
          headers: { Authorization: `Bearer ${this.token}` },
          perMessageDeflate: false,
        });
        this.ws = ws;
        ws.on('error', () => undefined);
        ws.on('unexpected-response', (_req, res) => {
          closed(`HTTP ${res.statusCode}`);
          ws.terminate();
        });
        ws.on('close', (code) => closed(`close ${code}`));
        ws.on('message', (raw) => {
          const f = JSON.parse(raw.toString());
          if (f.id !== undefined && f.ok !== undefined) settle(Number(f.id), f);
          else if (f.event === 'message.new') this.onMessage(f.data);
          else if (f.event === 'session') finish();
        });
      }
    });
  }

  /** cb(reply) exactly once: the reply, or { ok:false, error:{code} } on timeout / closed socket. */
  call(event, data, cb) {
    if (!this.open) return cb({ ok: false, error: { code: 'CLOSED', message: 'not connected' } });
    const key = ++nextKey;
    pending.set(key, { t0: nowUs(), cb });
    if (this.kind === 'io') this.socket.emit(event, data, (reply) => settle(key, reply));
    else this.ws.send(JSON.stringify({ event, data, id: String(key) }));
  }

  request(event, data) {
    return new Promise((resolve) => this.call(event, data, resolve));
  }

  terminate() {
    this.open = false;
    this.closed = true;
    if (this.socket) this.socket.disconnect();
    if (this.ws) this.ws.terminate();
  }
}
