import { backoffDelay } from './backoff.js';
import type { CloseKind, Connection, ConnectionHandlers, Reply } from './connection.js';
import { Emitter } from './emitter.js';
import { ChatRequestError } from './errors.js';
import { clearTimer, globalWebSocket, pageHref, parseUrl, randomId, setTimer, sleep, type TimerHandle } from './host.js';
import { tokenExpiresAt } from './jwt.js';
import { ModSeqTracker } from './mod-seq-tracker.js';
import { RoomStream } from './room-stream.js';
import { SocketIoConnection } from './socketio-connection.js';
import type {
  ChatClient,
  ChatClientEvents,
  ConnectOptions,
  ConnectionState,
  EditOptions,
  HistoryOptions,
  Message,
  RoomInfo,
  SendOptions,
} from './types.js';
import { WsConnection, type WebSocketConstructor } from './ws-connection.js';

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MIN_DELAY_MS = 250;
const DEFAULT_MAX_DELAY_MS = 10_000;
/** Refresh the token this long before `exp` (or halfway through a shorter remaining lifetime). */
const REFRESH_MARGIN_MS = 60_000;
const REFRESH_RETRY_MS = 5_000;
/** A token this close to `exp` is not worth reconnecting with when getToken can give a new one. */
const STALE_TOKEN_MS = 5_000;
/** Pushes relayed between instances may come slightly out of order: wait this long before fetching a gap. */
const GAP_WAIT_MS = 150;
const PAGE = 100;
/** Refused tokens in a row (with getToken giving new ones) after which the client stays closed. */
const MAX_AUTH_FAILURES = 3;
/** setTimeout holds at most 2^31-1 ms; longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface JoinedRoom {
  stream: RoomStream;
  changes: ModSeqTracker;
  /** The join (resync) running on connection `syncGen`, shared by join() and the resync after `session`. */
  sync: Promise<RoomInfo> | null;
  syncGen: number;
  filling: boolean;
  catchingUp: boolean;
}

interface ChangesPage {
  messages: Message[];
  hasMore: boolean;
  lastModSeq: number;
}

interface OpenWaiter {
  resolve(): void;
  reject(err: Error): void;
}

const closedError = () => new ChatRequestError('CLOSED', 'the client is closed');
const isTransient = (err: unknown) => err instanceof ChatRequestError && (err.code === 'TIMEOUT' || err.code === 'DISCONNECTED');

export class ChatClientImpl implements ChatClient {
  private readonly events = new Emitter<ChatClientEvents>();
  private readonly urls: string[];
  private readonly WebSocketCtor: WebSocketConstructor | null;
  private readonly timeoutMs: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private urlIndex = 0;
  private token: string;
  private conn: Connection | null = null;
  /** Increases with every connection attempt; callbacks of older connections are ignored. */
  private gen = 0;
  private currentState: ConnectionState = 'CONNECTING';
  private currentUserId: string | null = null;
  private retrying = false;
  private attempt = 0;
  private authFailures = 0;
  /** Set by close() or when reconnecting is pointless (refused token, kicked): no more connections. */
  private closed = false;
  private reconnectTimer: TimerHandle = null;
  private refreshTimer: TimerHandle = null;
  private readonly openWaiters = new Set<OpenWaiter>();
  private readonly joined = new Map<string, JoinedRoom>();

  constructor(private readonly options: ConnectOptions) {
    if (options.transport !== 'socket.io' && options.transport !== 'ws')
      throw new TypeError(`unknown transport: ${String(options.transport)}`);
    if (typeof options.token !== 'string' || options.token === '') throw new TypeError('token must be a non-empty string');
    const urls = Array.isArray(options.url) ? options.url : [options.url];
    if (urls.length === 0) throw new TypeError('url must name at least one URL');
    this.urls = urls.map((u) => parseUrl(u, pageHref()).href);
    this.token = options.token;
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.minDelayMs = options.reconnect?.minDelayMs ?? DEFAULT_MIN_DELAY_MS;
    this.maxDelayMs = Math.max(this.minDelayMs, options.reconnect?.maxDelayMs ?? DEFAULT_MAX_DELAY_MS);
    this.WebSocketCtor = null;
    if (options.transport === 'ws') {
      const Ctor = options.WebSocket ?? globalWebSocket();
      if (typeof Ctor !== 'function')
        throw new TypeError('no WebSocket implementation: pass options.WebSocket (e.g. the ws package in Node)');
      this.WebSocketCtor = Ctor as WebSocketConstructor;
    }
    this.open();
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get userId(): string | null {
    return this.currentUserId;
  }

  get reconnecting(): boolean {
    return this.retrying;
  }

  on<K extends keyof ChatClientEvents>(event: K, fn: (payload: ChatClientEvents[K]) => void): () => void {
    return this.events.on(event, fn);
  }

  async join(roomId: string): Promise<RoomInfo> {
    let room = this.joined.get(roomId);
    if (!room) {
      const entry: JoinedRoom = {
        stream: new RoomStream(roomId, (m) => this.deliver(entry, m)),
        changes: new ModSeqTracker(),
        sync: null,
        syncGen: 0,
        filling: false,
        catchingUp: false,
      };
      this.joined.set(roomId, (room = entry));
    }
    // Joining is idempotent, so it is retried like a send until the server answers it.
    for (let failures = 0; ;) {
      if (this.joined.get(roomId) !== room) throw new ChatRequestError('CLOSED', `left ${roomId} before the join completed`);
      await this.whenOpen(Infinity);
      try {
        return await this.sync(room);
      } catch (err) {
        if (isTransient(err)) continue;
        const retryIn = this.retryDelay(err, ++failures);
        if (retryIn === null) {
          if (this.joined.get(roomId) === room) this.joined.delete(roomId);
          throw err;
        }
        await sleep(retryIn);
      }
    }
  }

  async leave(roomId: string): Promise<void> {
    this.joined.delete(roomId);
    // The server forgets joins with the connection: with none open there is nothing to undo.
    if (this.currentState !== 'OPEN') return;
    await this.call('room.leave', { roomId });
  }

  async send(roomId: string, body: string, opts: SendOptions = {}): Promise<Message> {
    const clientMsgId = randomId();
    const data: Record<string, unknown> = { roomId, body, clientMsgId };
    if (opts.parentSeq !== undefined) data.parentSeq = opts.parentSeq;
    if (opts.mentions !== undefined) data.mentions = opts.mentions;
    // The same clientMsgId on every attempt: the server stores the message once however often it
    // arrives, and answers a repeat with the stored message.
    for (let failures = 0; ;) {
      let reply: Reply;
      try {
        reply = await this.rawRequest('message.send', data, Infinity);
      } catch (err) {
        if (isTransient(err)) continue;
        throw err;
      }
      if (reply.ok) {
        const message = reply.data as Message;
        const room = this.joined.get(roomId);
        if (room) this.accept(room, message);
        return message;
      }
      const err = new ChatRequestError(reply.error.code, reply.error.message, reply.error.details);
      const retryIn = this.retryDelay(err, ++failures);
      if (retryIn === null) throw err;
      await sleep(retryIn);
    }
  }

  async history(roomId: string, opts: HistoryOptions = {}): Promise<{ messages: Message[]; hasMore: boolean }> {
    // Optional fields must be left out rather than sent as undefined/null.
    const data: Record<string, unknown> = { roomId };
    for (const field of ['beforeSeq', 'afterSeq', 'parentSeq', 'limit'] as const) if (opts[field] !== undefined) data[field] = opts[field];
    const page = (await this.call('message.history', data)) as { messages: Message[]; hasMore: boolean };
    return { messages: page.messages, hasMore: page.hasMore };
  }

  async edit(roomId: string, seq: number, body: string, opts: EditOptions = {}): Promise<Message> {
    const data: Record<string, unknown> = { roomId, seq, body };
    if (opts.mentions !== undefined) data.mentions = opts.mentions;
    if (opts.expectedVersion !== undefined) data.expectedVersion = opts.expectedVersion;
    return this.changed(roomId, await this.call('message.edit', data));
  }

  async deleteMessage(roomId: string, seq: number): Promise<Message> {
    return this.changed(roomId, await this.call('message.delete', { roomId, seq }));
  }

  async react(roomId: string, seq: number, key: string, on: boolean): Promise<Message> {
    return this.changed(roomId, await this.call(on ? 'reaction.add' : 'reaction.remove', { roomId, seq, key }));
  }

  async presence(roomId: string): Promise<string[]> {
    const res = (await this.call('presence.list', { roomId })) as { users: { userId: string }[] };
    return res.users.map((u) => u.userId);
  }

  async typing(roomId: string, typing: boolean): Promise<void> {
    await this.call(typing ? 'typing.start' : 'typing.stop', { roomId });
  }

  async markRead(roomId: string, seq: number): Promise<number> {
    const res = (await this.call('message.read', { roomId, seq })) as { lastReadSeq: number };
    return res.lastReadSeq;
  }

  async rooms(): Promise<RoomInfo[]> {
    const all: RoomInfo[] = [];
    for (let afterRoomId: string | undefined; ;) {
      const page = await this.roomsPage({ afterRoomId });
      all.push(...page.rooms);
      const last = page.rooms.at(-1);
      // A service from before paging answers without hasMore: everything came at once.
      if (!page.hasMore || !last) return all;
      afterRoomId = last.roomId;
    }
  }

  async roomsPage(opts: { limit?: number; afterRoomId?: string } = {}): Promise<{ rooms: RoomInfo[]; hasMore: boolean }> {
    const data: Record<string, unknown> = {};
    if (opts.limit !== undefined) data.limit = opts.limit;
    if (opts.afterRoomId !== undefined) data.afterRoomId = opts.afterRoomId;
    const page = (await this.call('rooms.list', data)) as { rooms: RoomInfo[]; hasMore?: boolean };
    return { rooms: page.rooms.map(roomInfo), hasMore: page.hasMore === true };
  }

  close(): void {
    if (this.closed && this.currentState === 'CLOSED') return;
    this.closed = true;
    this.stopTimers();
    this.rejectOpenWaiters();
    const conn = this.conn;
    if (conn) {
      this.setState('CLOSING');
      conn.close(); // reports closed() synchronously, which ends in CLOSED
    }
    this.setState('CLOSED');
  }

  // --- connection lifecycle ---

  private open(): void {
    const gen = ++this.gen;
    const url = this.urls[this.urlIndex % this.urls.length];
    const handlers: ConnectionHandlers = {
      session: (s) => gen === this.gen && this.onSession(s),
      push: (event, data) => gen === this.gen && this.onPush(event, data),
      closed: (kind, detail) => gen === this.gen && this.onClosed(kind, detail),
    };
    this.setState('CONNECTING');
    try {
      this.conn =
        this.WebSocketCtor !== null
          ? new WsConnection(this.WebSocketCtor, url, this.token, this.timeoutMs, handlers)
          : new SocketIoConnection(url, this.token, this.timeoutMs, handlers);
    } catch (err) {
      // e.g. a browser refusing ws:// from an https page: report it and keep retrying like any failure.
      this.conn = null;
      this.events.emit('error', { code: 'CONNECT_FAILED', message: errorText(err) });
      this.scheduleReconnect(false);
    }
  }

  private onSession(session: { userId: string; connectionId: string }): void {
    this.currentUserId = session.userId;
    this.attempt = 0;
    this.authFailures = 0;
    this.retrying = false;
    this.setState('OPEN');
    this.events.emit('session', { userId: session.userId, connectionId: session.connectionId });
    this.scheduleRefresh();
    for (const w of this.openWaiters) w.resolve();
    this.openWaiters.clear();
    for (const room of this.joined.values()) void this.resync(room);
  }

  private onClosed(kind: CloseKind, detail: string): void {
    this.conn = null;
    clearTimer(this.refreshTimer);
    if (this.closed) {
      this.setState('CLOSED');
      return;
    }
    if (kind === 'KICKED') return this.giveUp('DISCONNECTED', `disconnected by the service (${detail})`);
    if (kind === 'UNAUTHORIZED' || kind === 'EXPIRED') {
      if (!this.options.getToken) return this.giveUp('UNAUTHORIZED', `token refused or expired (${detail}) and no getToken to renew it`);
      if (++this.authFailures > MAX_AUTH_FAILURES)
        return this.giveUp('UNAUTHORIZED', `token refused ${this.authFailures} times in a row (${detail})`);
    }
    this.scheduleReconnect(kind === 'UNAUTHORIZED' || kind === 'EXPIRED');
  }

  private scheduleReconnect(needToken: boolean): void {
    this.attempt++;
    this.retrying = true;
    this.urlIndex++; // with several URLs, try the next instance: this one may be gone
    const delayMs = backoffDelay(this.attempt, this.minDelayMs, this.maxDelayMs);
    this.setState('CONNECTING');
    this.events.emit('reconnecting', { attempt: this.attempt, delayMs });
    this.reconnectTimer = setTimer(() => void this.reconnect(needToken), delayMs);
  }

  private async reconnect(needToken: boolean): Promise<void> {
    if (this.closed) return;
    const exp = tokenExpiresAt(this.token);
    const stale = exp !== undefined && exp - Date.now() < STALE_TOKEN_MS;
    const getToken = this.options.getToken;
    if (getToken && (needToken || stale)) {
      let fresh: string;
      try {
        fresh = await getToken();
      } catch (err) {
        if (this.closed) return;
        this.events.emit('error', { code: 'TOKEN_REFRESH_FAILED', message: `getToken failed: ${errorText(err)}` });
        if (++this.authFailures > MAX_AUTH_FAILURES) return this.giveUp('UNAUTHORIZED', 'getToken keeps failing');
        return this.scheduleReconnect(needToken);
      }
      if (this.closed) return;
      if (needToken && fresh === this.token) return this.giveUp('UNAUTHORIZED', 'getToken returned the token the server refused');
      this.token = fresh;
    } else if (!getToken && exp !== undefined && exp <= Date.now()) {
      // Browsers hide a refused WebSocket upgrade: without this check an expired token would be retried forever.
      return this.giveUp('UNAUTHORIZED', 'the token has expired and there is no getToken to renew it');
    }
    this.open();
  }

  private giveUp(code: string, message: string): void {
    this.closed = true;
    this.retrying = false;
    this.stopTimers();
    this.rejectOpenWaiters();
    this.events.emit('error', { code, message });
    this.setState('CLOSED');
  }

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.events.emit('state', state);
  }

  private stopTimers(): void {
    clearTimer(this.reconnectTimer);
    clearTimer(this.refreshTimer);
  }

  // --- token refresh ---

  private scheduleRefresh(): void {
    clearTimer(this.refreshTimer);
    const exp = tokenExpiresAt(this.token);
    if (!this.options.getToken || exp === undefined) return;
    const left = exp - Date.now();
    const refreshAt = exp - Math.min(REFRESH_MARGIN_MS, Math.max(0, left) / 2);
    const gen = this.gen;
    this.refreshTimer = setTimer(
      () => {
        if (Date.now() < refreshAt) this.scheduleRefresh();
        else void this.refresh(gen);
      },
      Math.min(Math.max(0, refreshAt - Date.now()), MAX_TIMER_MS),
    );
  }

  private async refresh(gen: number): Promise<void> {
    if (gen !== this.gen || this.currentState !== 'OPEN' || !this.options.getToken) return;
    try {
      const fresh = await this.options.getToken();
      await this.call('auth.refresh', { token: fresh });
      if (gen !== this.gen) return;
      this.token = fresh;
      this.scheduleRefresh();
    } catch (err) {
      if (gen !== this.gen || this.closed) return;
      this.events.emit('error', {
        code: err instanceof ChatRequestError ? err.code : 'TOKEN_REFRESH_FAILED',
        message: `token refresh failed: ${errorText(err)}`,
      });
      // Try again while the old token lasts; once it expires the server disconnects and the
      // reconnect asks getToken again.
      this.refreshTimer = setTimer(() => void this.refresh(gen), REFRESH_RETRY_MS);
    }
  }

  // --- requests ---

  /** Resolves once the connection is OPEN; rejects with TIMEOUT after waitMs, or CLOSED. */
  private whenOpen(waitMs: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (this.currentState === 'OPEN' && this.conn) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: TimerHandle = null;
      const waiter: OpenWaiter = {
        resolve: () => {
          clearTimer(timer);
          resolve();
        },
        reject: (err) => {
          clearTimer(timer);
          reject(err);
        },
      };
      if (Number.isFinite(waitMs))
        timer = setTimer(() => {
          this.openWaiters.delete(waiter);
          reject(new ChatRequestError('TIMEOUT', `not connected within ${waitMs} ms`));
        }, waitMs);
      this.openWaiters.add(waiter);
    });
  }

  private rejectOpenWaiters(): void {
    for (const w of this.openWaiters) w.reject(closedError());
    this.openWaiters.clear();
  }

  /** One attempt: waits up to waitMs for an open connection, then for the reply. */
  private async rawRequest(event: string, data: unknown, waitMs: number): Promise<Reply> {
    await this.whenOpen(waitMs);
    if (!this.conn) throw new ChatRequestError('DISCONNECTED', 'not connected');
    return this.conn.request(event, data, this.timeoutMs);
  }

  /** A request whose error reply becomes a ChatRequestError. */
  private async call(event: string, data: unknown): Promise<unknown> {
    return okData(await this.rawRequest(event, data, this.timeoutMs));
  }

  /** How long to wait before retrying after `err`, or null when retrying cannot help. */
  private retryDelay(err: unknown, failures: number): number | null {
    if (!(err instanceof ChatRequestError)) return null;
    if (err.code === 'UNAVAILABLE') return backoffDelay(failures, this.minDelayMs, this.maxDelayMs);
    if (err.code === 'RATE_LIMITED') {
      const hinted = Number((err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs);
      return Math.min(Number.isFinite(hinted) && hinted > 0 ? hinted : this.minDelayMs, this.maxDelayMs);
    }
    return null;
  }

  // --- rooms: joins, resume, ordering ---

  /** Joins `room` on the current connection; one run per connection, shared by all callers. */
  private sync(room: JoinedRoom): Promise<RoomInfo> {
    if (room.sync && room.syncGen === this.gen) return room.sync;
    const gen = this.gen;
    const run = this.runSync(room, gen);
    room.sync = run;
    room.syncGen = gen;
    const done = () => {
      if (room.sync !== run) return;
      room.sync = null;
      if (room.stream.hasGap) this.scheduleFill(room);
      if (room.changes.hasGap) this.scheduleCatchUp(room);
    };
    run.then(done, done);
    return run;
  }

  private async runSync(room: JoinedRoom, gen: number): Promise<RoomInfo> {
    const conn = this.conn;
    if (gen !== this.gen || !conn || this.currentState !== 'OPEN') throw new ChatRequestError('DISCONNECTED', 'not connected');
    const { roomId } = room.stream;
    const since = room.stream.upTo;
    const sinceModSeq = room.changes.upTo;
    const request: Record<string, unknown> = { roomId };
    if (since !== null) request.sinceSeq = since;
    if (since !== null && sinceModSeq !== null) request.sinceModSeq = sinceModSeq;
    const join = okData(await conn.request('room.join', request, this.timeoutMs)) as RoomInfo & {
      missed?: Message[];
      hasMore?: boolean;
      lastModSeq?: number;
      changes?: Message[];
      hasMoreChanges?: boolean;
    };
    if (since === null) {
      room.stream.start(join.lastSeq);
      // A service from before message changes answers without lastModSeq: there is nothing to track.
      if (typeof join.lastModSeq === 'number') room.changes.start(join.lastModSeq);
    } else {
      for (const m of join.missed ?? []) room.stream.accept(m);
      // Page on until caught up; each page moves upTo on, so this ends.
      for (let more = join.hasMore === true; more;) {
        const before = room.stream.upTo;
        const page = okData(await conn.request('message.history', { roomId, afterSeq: before, limit: PAGE }, this.timeoutMs)) as {
          messages: Message[];
          hasMore: boolean;
        };
        for (const m of page.messages) room.stream.accept(m);
        more = page.hasMore && room.stream.upTo !== before;
      }
      // Changes after the new messages, so 'updated' finds the messages it changes already delivered.
      if (join.changes) {
        this.applyChanges(room, { messages: join.changes, hasMore: join.hasMoreChanges === true, lastModSeq: join.lastModSeq ?? 0 });
        if (join.hasMoreChanges === true) await this.catchUpChanges(room, (data) => conn.request('message.changes', data, this.timeoutMs));
      }
    }
    // The join belongs to the connection it ran on: a newer one must join again.
    if (gen !== this.gen) throw new ChatRequestError('DISCONNECTED', 'the connection changed during the join');
    return roomInfo(join);
  }

  /** The rejoin after a reconnect; failures that retrying cannot fix are reported. */
  private async resync(room: JoinedRoom): Promise<void> {
    const gen = this.gen;
    for (let failures = 0; gen === this.gen && this.joined.get(room.stream.roomId) === room;) {
      try {
        await this.sync(room);
        return;
      } catch (err) {
        if (isTransient(err)) return; // the next session resyncs again
        const retryIn = this.retryDelay(err, ++failures);
        if (retryIn !== null) {
          await sleep(retryIn);
          continue;
        }
        const code = err instanceof ChatRequestError ? err.code : 'INTERNAL';
        if (code === 'FORBIDDEN') {
          // The room became private, or this user lost its membership, while disconnected.
          this.joined.delete(room.stream.roomId);
          this.events.emit('removed', { roomId: room.stream.roomId });
        } else this.events.emit('error', { code, message: `rejoining ${room.stream.roomId} failed: ${errorText(err)}` });
        return;
      }
    }
  }

  private accept(room: JoinedRoom, m: Message): void {
    room.stream.accept(m);
    if (room.stream.hasGap) this.scheduleFill(room);
    this.seeChange(room, m);
  }

  /** A request's reply that changed a message: its state goes out as 'updated' like the push that will follow. */
  private changed(roomId: string, data: unknown): Message {
    const m = data as Message;
    const room = this.joined.get(roomId);
    if (room) {
      this.seeChange(room, m);
      this.deliverUpdate(room, m);
    }
    return m;
  }

  private seeChange(room: JoinedRoom, m: Message): void {
    if (typeof m.modSeq !== 'number') return;
    room.changes.see(m.modSeq);
    if (room.changes.hasGap) this.scheduleCatchUp(room);
  }

  /** One page of message.changes: each message goes out as 'updated', and the tracker moves past the page. */
  private applyChanges(room: JoinedRoom, page: ChangesPage): void {
    for (const m of page.messages) this.deliverUpdate(room, m);
    const last = page.messages.at(-1)?.modSeq ?? room.changes.upTo ?? 0;
    // The last page covers the room's whole counter as it was read; a fuller page only up to its last change.
    room.changes.advanceTo(page.hasMore ? last : Math.max(last, page.lastModSeq));
  }

  /** Pages message.changes from the tracker's position until the last page. */
  private async catchUpChanges(room: JoinedRoom, request: (data: unknown) => Promise<Reply>): Promise<void> {
    const { roomId } = room.stream;
    for (let more = true; more && this.joined.get(roomId) === room;) {
      const before = room.changes.upTo ?? 0;
      const page = okData(await request({ roomId, afterModSeq: before, limit: PAGE })) as ChangesPage;
      this.applyChanges(room, page);
      more = page.hasMore && room.changes.upTo !== before;
    }
  }

  /** A change seen beyond a missing modSeq: after a short wait (pushes may be reordered), fetch what is missing. */
  private scheduleCatchUp(room: JoinedRoom): void {
    if (room.catchingUp || room.sync || room.changes.upTo === null) return;
    room.catchingUp = true;
    setTimer(() => void this.catchUpGap(room), GAP_WAIT_MS);
  }

  private async catchUpGap(room: JoinedRoom): Promise<void> {
    try {
      if (room.changes.hasGap && !room.sync)
        await this.catchUpChanges(room, (data) => this.rawRequest('message.changes', data, this.timeoutMs));
    } catch {
      // Disconnected or refused: the rejoin after the reconnect catches up from the tracker's position.
    } finally {
      room.catchingUp = false;
    }
  }

  private deliverUpdate(room: JoinedRoom, m: Message): void {
    if (this.joined.get(m.roomId) === room) this.events.emit('updated', m);
  }

  /** Only the room's current entry speaks: a join still running for a room left (and maybe rejoined) stays silent. */
  private deliver(room: JoinedRoom, m: Message): void {
    if (this.joined.get(m.roomId) === room) this.events.emit('message', m);
  }

  /** Fetches the messages missing behind a gap, unless a join is already catching the room up. */
  private scheduleFill(room: JoinedRoom): void {
    if (room.filling || room.sync || room.stream.upTo === null) return;
    room.filling = true;
    setTimer(() => void this.fill(room), GAP_WAIT_MS);
  }

  private async fill(room: JoinedRoom): Promise<void> {
    const { roomId } = room.stream;
    try {
      while (room.stream.hasGap && this.joined.get(roomId) === room && !room.sync) {
        const before = room.stream.upTo;
        const page = (await this.call('message.history', { roomId, afterSeq: before, limit: PAGE })) as { messages: Message[] };
        for (const m of page.messages) room.stream.accept(m);
        if (room.stream.upTo === before) return;
      }
    } catch {
      // Disconnected or refused: the rejoin after the reconnect (or the next push) catches up.
    } finally {
      room.filling = false;
    }
  }

  private onPush(event: string, data: unknown): void {
    const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
    const roomId = typeof d.roomId === 'string' ? d.roomId : null;
    if (roomId === null && event !== 'error') return;
    switch (event) {
      case 'message.new': {
        const room = this.joined.get(roomId!);
        if (room && typeof d.seq === 'number') this.accept(room, data as Message);
        break;
      }
      case 'message.updated': {
        const room = this.joined.get(roomId!);
        if (room && typeof d.seq === 'number') {
          this.seeChange(room, data as Message);
          this.deliverUpdate(room, data as Message);
        }
        break;
      }
      case 'presence.joined':
      case 'presence.left':
        this.events.emit('presence', { roomId: roomId!, userId: String(d.userId), online: event === 'presence.joined' });
        break;
      case 'typing':
        this.events.emit('typing', { roomId: roomId!, userId: String(d.userId), typing: d.typing === true });
        break;
      case 'receipt':
        this.events.emit('receipt', { roomId: roomId!, userId: String(d.userId), seq: Number(d.seq) });
        break;
      case 'room.removed':
        this.joined.delete(roomId!);
        this.events.emit('removed', { roomId: roomId! });
        break;
      case 'error':
        this.events.emit('error', { code: String(d.code ?? 'INTERNAL'), message: String(d.message ?? '') });
        break;
      // Later releases add pushes: the protocol asks clients to ignore the ones they do not know.
    }
  }
}

function okData(reply: Reply): unknown {
  if (!reply.ok) throw new ChatRequestError(reply.error.code, reply.error.message, reply.error.details);
  return reply.data;
}

function roomInfo(r: RoomInfo): RoomInfo {
  return { roomId: r.roomId, lastSeq: r.lastSeq, lastReadSeq: r.lastReadSeq, unread: r.unread };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
