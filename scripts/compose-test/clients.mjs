// Clients of `npm run test:compose`, as the contract asks a client to behave behind a balancer:
// each keeps what it has of one room by seq and, after every `session` (first connect or a
// reconnect), rejoins with `sinceSeq` and pages the history until nothing is missing. socket.io
// clients reconnect by themselves; the raw ws client reconnects by hand, as a page would.
import { SignJWT } from 'jose';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

export const KINDS = ['io-polling', 'io-websocket', 'ws'];
const REQUEST_TIMEOUT_MS = 5000;
/** Long enough that a send made right after a replica dies finds its clients away. */
const RECONNECT_DELAY_MS = 1500;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An HS256 token for `sub`, signed like test/support/tokens.ts signs them, valid for an hour. */
export function tokenFor(sub, secret) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(secret));
}

export class ResumingClient {
  /** seq → how it arrived, one entry per arrival: 'live' (message.new) or 'missed' (room.join / history). */
  arrivals = new Map();
  /** Arrivals through room.join or history of a seq the client already had (allowed by the contract, counted apart). */
  redundant = 0;
  connectionIds = [];
  sessions = 0;
  #io = null;
  #ws = null;
  #frameId = 0;
  #replies = new Map();
  #closed = false;

  constructor({ kind, user, url, secret, roomId }) {
    Object.assign(this, { kind, user, url, secret, roomId });
  }

  get name() {
    return `${this.kind}/${this.user}`;
  }

  async start() {
    const token = await tokenFor(this.user, this.secret);
    if (this.kind === 'ws') return this.#openWs(token);
    this.#io = io(this.url, {
      auth: { token },
      transports: [this.kind === 'io-polling' ? 'polling' : 'websocket'],
      reconnectionDelay: RECONNECT_DELAY_MS,
      reconnectionDelayMax: 2 * RECONNECT_DELAY_MS,
      // Keeps the balancer's cookie, which pins a polling session to its replica.
      withCredentials: true,
    });
    this.#io.on('session', (s) => void this.#onSession(s.connectionId));
    this.#io.on('message.new', (m) => this.#keep([m], 'live'));
  }

  #openWs(token) {
    const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}/ws`, { headers: { Authorization: `Bearer ${token}` } });
    this.#ws = ws;
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (typeof frame.id === 'string') this.#replies.get(frame.id)?.(frame);
      else if (frame.event === 'session') void this.#onSession(frame.data.connectionId);
      else if (frame.event === 'message.new') this.#keep([frame.data], 'live');
    });
    // A refused upgrade (no replica ready yet) ends in 'close' too, which retries.
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (!this.#closed) setTimeout(() => this.#openWs(token), RECONNECT_DELAY_MS);
    });
  }

  /** The reply `{ ok, data | error }`; rejects when none comes within 5 s. */
  request(event, data) {
    if (this.#io) return this.#io.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, data);
    const id = `r${++this.#frameId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#replies.delete(id);
        reject(new Error(`${this.name}: no reply to ${event}`));
      }, REQUEST_TIMEOUT_MS);
      this.#replies.set(id, (reply) => {
        clearTimeout(timer);
        this.#replies.delete(id);
        resolve(reply);
      });
      if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify({ event, data, id }));
    });
  }

  /** The highest seq up to which nothing is missing. */
  get upTo() {
    let n = 0;
    while (this.arrivals.has(n + 1)) n++;
    return n;
  }

  #keep(messages, how) {
    for (const m of messages) {
      if (m.roomId !== this.roomId) continue;
      const had = this.arrivals.get(m.seq) ?? [];
      if (how === 'missed' && had.length > 0) {
        this.redundant++;
        continue;
      }
      this.arrivals.set(m.seq, [...had, how]);
    }
  }

  async #onSession(connectionId) {
    this.connectionIds.push(connectionId);
    try {
      const join = await this.request('room.join', { roomId: this.roomId, sinceSeq: this.upTo });
      if (!join.ok) throw new Error(`room.join: ${JSON.stringify(join.error)}`);
      this.#keep(join.data.missed, 'missed');
      let more = join.data.hasMore;
      while (more) {
        const page = await this.request('message.history', { roomId: this.roomId, afterSeq: this.upTo, limit: 100 });
        if (!page.ok) throw new Error(`message.history: ${JSON.stringify(page.error)}`);
        this.#keep(page.data.messages, 'missed');
        more = page.data.hasMore;
      }
      this.sessions++;
    } catch (err) {
      // The connection went away mid-join; the next session joins again.
      this.lastJoinError = err.message;
    }
  }

  /** Resolves once this client has every seq up to `n`. */
  async waitUpTo(n, timeoutMs) {
    const end = Date.now() + timeoutMs;
    while (this.upTo < n) {
      if (Date.now() > end) throw new Error(`${this.name}: has every seq up to ${this.upTo} of ${n}`);
      await sleep(50);
    }
  }

  /** Resolves once the client has joined `count` sessions in all. */
  async waitSessions(count, timeoutMs) {
    const end = Date.now() + timeoutMs;
    while (this.sessions < count) {
      if (Date.now() > end)
        throw new Error(`${this.name}: ${this.sessions} of ${count} sessions joined (${this.lastJoinError ?? 'no error'})`);
      await sleep(50);
    }
  }

  close() {
    this.#closed = true;
    this.#io?.close();
    this.#ws?.terminate();
  }
}
