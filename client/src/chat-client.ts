import { abortable, abortReason, throwIfAborted, type AbortSignalLike } from './abort.js';
import { backoffDelay } from './backoff.js';
import type { CloseKind, Connection, ConnectionHandlers, Reply } from './connection.js';
import { Emitter } from './emitter.js';
import { ChatRequestError } from './errors.js';
import { clearTimer, globalWebSocket, pageHref, parseUrl, randomId, setTimer, sleep, type TimerHandle } from './host.js';
import { tokenExpiresAt } from './jwt.js';
import { RoomChanges } from './room-changes.js';
import { RoomHandleImpl } from './room-handle.js';
import { RoomStream } from './room-stream.js';
import { loadSocketIo, SocketIoConnection, type Io } from './socketio-connection.js';
import type {
  BanOptions,
  ChangesPage,
  ChatClient,
  ChatClientEvents,
  ConnectOptions,
  ConnectionState,
  HistoryOptions,
  Message,
  RoomEvents,
  RoomHandle,
  RoomInfo,
  RoomRecovery,
  RoomRemoval,
  SendOptions,
} from './types.js';
import type {
  BanRequest,
  ChangesRequest,
  ClientEvent,
  ClientEventMap,
  EditRequest,
  HistoryRequest,
  JoinRequest,
  ModerationList,
  RoomsListRequest,
  SendRequest,
} from './wire.js';
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
/** The protocol's clientMsgId (docs/protocol.md, field rules). */
const CLIENT_MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;

interface JoinedRoom {
  stream: RoomStream;
  changes: RoomChanges;
  /** States (not creations) seen before the first join answered: applied once it tells where the room starts. */
  early: Message[];
  /** The join (resync) running on connection `syncGen`, shared by join() and the resync after `session`. */
  sync: Promise<SyncResult> | null;
  syncGen: number;
  filling: boolean;
  catchingUp: boolean;
}

/**
 * Where a message came from. A creation (message.new push, send reply) of a message already
 * delivered is a duplicate; any other source may carry a newer state of it.
 */
type Source = 'creation' | 'state';

/** A join's answer, and for a rejoin what it recovered (null for a first join). */
interface SyncResult {
  info: RoomInfo;
  recovery: RoomRecovery | null;
}

/** What a request of event E sends, and what its `ok` reply holds (the protocol's ClientEventMap). */
type RequestOf<E extends ClientEvent> = ClientEventMap[E]['request'];
type ReplyOf<E extends ClientEvent> = ClientEventMap[E]['reply'];
/** The requests whose reply is the message's latest state, retried by change(). */
type ChangeEvent = 'message.edit' | 'message.delete' | 'reaction.add' | 'reaction.remove';

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
  /** socket.io-client, loaded on the first socket.io connection (null for the ws transport). */
  private io: Promise<Io> | null = null;
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
  /** room(id) handles, kept for the client's lifetime so that the same id gives the same object (and its listeners). */
  private readonly handles = new Map<string, RoomHandleImpl>();
  private readonly maxResumePages: number;
  private sessions = 0;

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
    this.maxResumePages = options.resume?.maxPages ?? Infinity;
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

  room(roomId: string): RoomHandle {
    let handle = this.handles.get(roomId);
    if (!handle) this.handles.set(roomId, (handle = new RoomHandleImpl(this, roomId)));
    return handle;
  }

  async join(roomId: string): Promise<RoomInfo> {
    let room = this.joined.get(roomId);
    if (!room) {
      const entry: JoinedRoom = {
        stream: new RoomStream(roomId, (m) => this.deliver(entry, m)),
        changes: new RoomChanges(),
        early: [],
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
        return (await this.sync(room)).info;
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
    const clientMsgId = opts.clientMsgId ?? randomId();
    if (typeof clientMsgId !== 'string' || !CLIENT_MSG_ID.test(clientMsgId))
      throw new TypeError('clientMsgId must be 1–64 characters from [A-Za-z0-9_-]');
    const { signal } = opts;
    throwIfAborted(signal);
    const data: SendRequest = { roomId, body, clientMsgId };
    if (opts.parentSeq !== undefined) data.parentSeq = opts.parentSeq;
    if (opts.mentions !== undefined) data.mentions = opts.mentions;
    // The same clientMsgId on every attempt: the server stores the message once however often it
    // arrives, and answers a repeat with the stored message.
    for (let failures = 0; ;) {
      let reply: Reply;
      try {
        reply = await this.rawRequest('message.send', data, Infinity, signal);
      } catch (err) {
        if (isTransient(err)) continue;
        throw err;
      }
      if (reply.ok) {
        const message = reply.data as ReplyOf<'message.send'>;
        const room = this.joined.get(roomId);
        if (room) this.absorb(room, message, 'creation');
        return message;
      }
      const err = new ChatRequestError(reply.error.code, reply.error.message, reply.error.details);
      const retryIn = this.retryDelay(err, ++failures);
      if (retryIn === null) throw err;
      if (err.code === 'RATE_LIMITED') this.emitRoom('throttled', roomId, { roomId, retryAfterMs: retryIn });
      await abortable(sleep(retryIn), signal);
    }
  }

  async edit(roomId: string, seq: number, body: string, opts: { mentions?: string[]; expectedVersion?: number } = {}): Promise<Message> {
    const data: EditRequest = { roomId, seq, body };
    if (opts.mentions !== undefined) data.mentions = opts.mentions;
    if (opts.expectedVersion !== undefined) data.expectedVersion = opts.expectedVersion;
    return this.change('message.edit', data);
  }

  async delete(roomId: string, seq: number): Promise<Message> {
    return this.change('message.delete', { roomId, seq });
  }

  async react(roomId: string, seq: number, key: string): Promise<Message> {
    return this.change('reaction.add', { roomId, seq, key });
  }

  async unreact(roomId: string, seq: number, key: string): Promise<Message> {
    return this.change('reaction.remove', { roomId, seq, key });
  }

  async history(roomId: string, opts: HistoryOptions = {}): Promise<{ messages: Message[]; hasMore: boolean }> {
    // Optional fields must be left out rather than sent as undefined/null.
    const data: HistoryRequest = { roomId };
    if (opts.beforeSeq !== undefined) data.beforeSeq = opts.beforeSeq;
    if (opts.afterSeq !== undefined) data.afterSeq = opts.afterSeq;
    if (opts.parentSeq !== undefined) data.parentSeq = opts.parentSeq;
    if (opts.limit !== undefined) data.limit = opts.limit;
    const page = await this.call('message.history', data);
    return { messages: page.messages, hasMore: page.hasMore };
  }

  async changes(roomId: string, opts: { afterModSeq: number; limit?: number }): Promise<ChangesPage> {
    const data: ChangesRequest = { roomId, afterModSeq: opts.afterModSeq };
    if (opts.limit !== undefined) data.limit = opts.limit;
    const page = await this.call('message.changes', data);
    return { messages: page.messages, hasMore: page.hasMore, lastModSeq: page.lastModSeq, truncated: page.truncated === true };
  }

  lastModSeq(roomId: string): number | null {
    return this.joined.get(roomId)?.changes.upTo ?? null;
  }

  async presence(roomId: string): Promise<string[]> {
    const res = await this.call('presence.list', { roomId });
    return res.users.map((u) => u.userId);
  }

  async typing(roomId: string, typing: boolean): Promise<void> {
    await this.call(typing ? 'typing.start' : 'typing.stop', { roomId });
  }

  async markRead(roomId: string, seq: number): Promise<number> {
    const res = await this.call('message.read', { roomId, seq });
    return res.lastReadSeq;
  }

  async mute(roomId: string, userId: string, opts: { durationMs?: number } = {}): Promise<void> {
    await this.call(
      'moderation.mute',
      opts.durationMs === undefined ? { roomId, userId } : { roomId, userId, durationMs: opts.durationMs },
    );
  }

  async unmute(roomId: string, userId: string): Promise<void> {
    await this.call('moderation.unmute', { roomId, userId });
  }

  async ban(roomId: string, userId: string, opts: BanOptions = {}): Promise<void> {
    const data: BanRequest = { roomId, userId };
    if (opts.durationMs !== undefined) data.durationMs = opts.durationMs;
    if (opts.reason !== undefined) data.reason = opts.reason;
    await this.call('moderation.ban', data);
  }

  async unban(roomId: string, userId: string): Promise<void> {
    await this.call('moderation.unban', { roomId, userId });
  }

  async kick(roomId: string, userId: string): Promise<void> {
    await this.call('moderation.kick', { roomId, userId });
  }

  async sanctions(roomId: string): Promise<ModerationList> {
    const list = await this.call('moderation.list', { roomId });
    return { roomId: list.roomId, mutes: list.mutes, bans: list.bans };
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
    const data: RoomsListRequest = {};
    if (opts.limit !== undefined) data.limit = opts.limit;
    if (opts.afterRoomId !== undefined) data.afterRoomId = opts.afterRoomId;
    const page = await this.call('rooms.list', data);
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
    const WebSocketCtor = this.WebSocketCtor;
    if (WebSocketCtor !== null) return this.attach(() => new WsConnection(WebSocketCtor, url, this.token, this.timeoutMs, handlers));
    this.io ??= loadSocketIo();
    this.io.then(
      (io) => gen === this.gen && !this.closed && this.attach(() => new SocketIoConnection(io, url, this.token, this.timeoutMs, handlers)),
      (err: unknown) => gen === this.gen && !this.closed && this.giveUp('TRANSPORT_UNAVAILABLE', errorText(err)),
    );
  }

  private attach(create: () => Connection): void {
    try {
      this.conn = create();
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
    if (++this.sessions > 1) void this.recover();
    else for (const room of this.joined.values()) void this.resync(room);
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

  /** Resolves once the connection is OPEN; rejects with TIMEOUT after waitMs, CLOSED, or the abort reason. */
  private whenOpen(waitMs: number, signal?: AbortSignalLike): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.currentState === 'OPEN' && this.conn) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: TimerHandle = null;
      const settle = (err?: unknown) => {
        clearTimer(timer);
        signal?.removeEventListener('abort', onAbort);
        this.openWaiters.delete(waiter);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = () => settle(abortReason(signal!));
      const waiter: OpenWaiter = { resolve: () => settle(), reject: settle };
      if (Number.isFinite(waitMs))
        timer = setTimer(() => settle(new ChatRequestError('TIMEOUT', `not connected within ${waitMs} ms`)), waitMs);
      signal?.addEventListener('abort', onAbort);
      this.openWaiters.add(waiter);
    });
  }

  private rejectOpenWaiters(): void {
    for (const w of this.openWaiters) w.reject(closedError());
    this.openWaiters.clear();
  }

  /**
   * One attempt: waits up to waitMs for an open connection, then for the reply. An abort before
   * the request is written sends nothing; after it, only the wait for the reply ends.
   */
  private async rawRequest<E extends ClientEvent>(event: E, data: RequestOf<E>, waitMs: number, signal?: AbortSignalLike): Promise<Reply> {
    await this.whenOpen(waitMs, signal);
    throwIfAborted(signal);
    if (!this.conn) throw new ChatRequestError('DISCONNECTED', 'not connected');
    return abortable(this.conn.request(event, data, this.timeoutMs), signal);
  }

  /** A request whose error reply becomes a ChatRequestError. */
  private async call<E extends ClientEvent>(event: E, data: RequestOf<E>): Promise<ReplyOf<E>> {
    return okData<E>(await this.rawRequest(event, data, this.timeoutMs));
  }

  /**
   * An edit, delete or reaction; the reply is this client's newest state of the message. Retried
   * after UNAVAILABLE and RATE_LIMITED, which the protocol says stored nothing; not after a timeout
   * or a dropped connection, when an edit may have been stored and a second one would be another version.
   */
  private async change<E extends ChangeEvent>(event: E, data: RequestOf<E>): Promise<Message> {
    for (let failures = 0; ;) {
      let message: Message;
      try {
        message = await this.call<ChangeEvent>(event, data);
      } catch (err) {
        const retryIn = this.retryDelay(err, ++failures);
        if (retryIn === null) throw err;
        await sleep(retryIn);
        continue;
      }
      const room = this.joined.get(data.roomId);
      if (room) this.absorb(room, message, 'state');
      return message;
    }
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
  private sync(room: JoinedRoom): Promise<SyncResult> {
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

  private async runSync(room: JoinedRoom, gen: number): Promise<SyncResult> {
    const conn = this.conn;
    if (gen !== this.gen || !conn || this.currentState !== 'OPEN') throw new ChatRequestError('DISCONNECTED', 'not connected');
    const { roomId } = room.stream;
    const since = room.stream.upTo;
    const sinceMod = room.changes.upTo;
    const data: JoinRequest = { roomId };
    if (since !== null) data.sinceSeq = since;
    // Only a rejoin catches up on changes: the first join starts at the room's current state.
    if (since !== null && sinceMod !== null) data.sinceModSeq = sinceMod;
    const join = okData<'room.join'>(await conn.request('room.join', data, this.timeoutMs));
    let recovery: RoomRecovery | null = null;
    if (since === null) {
      room.stream.start(join.lastSeq);
      // A service from before message changes answers no lastModSeq: the client then tracks none.
      if (typeof join.lastModSeq === 'number') room.changes.reach(join.lastModSeq);
      for (const m of room.early.splice(0)) this.absorb(room, m, 'state');
    } else {
      let reason: RoomRecovery['reason'];
      const missed = join.missed ?? [];
      if (join.truncated === true) {
        // Messages after sinceSeq are gone below the room's floor (retention): delivery goes on at
        // the floor, where missed starts, instead of waiting for seqs that no longer exist.
        reason = 'truncated';
        room.stream.skipTo((missed[0]?.seq ?? join.lastSeq + 1) - 1);
      }
      for (const m of missed) this.absorb(room, m, 'state');
      // Page on until caught up (each page moves upTo on, so this ends) or out of the page budget.
      for (let more = join.hasMore === true, pages = 0; more; pages++) {
        if (pages >= this.maxResumePages) {
          // Too far behind: start over at the room's newest message, like a first join.
          reason = 'maxPages';
          room.stream.skipTo(join.lastSeq);
          if (typeof join.lastModSeq === 'number') room.changes.reach(join.lastModSeq);
          break;
        }
        // A rejoin's stream started at `since`, so it is never unset here.
        const before = room.stream.upTo ?? since;
        const history: HistoryRequest = { roomId, afterSeq: before, limit: PAGE };
        const page = okData<'message.history'>(await conn.request('message.history', history, this.timeoutMs));
        if (this.absorbPage(room, before, page.messages)) reason ??= 'truncated';
        more = page.hasMore && room.stream.upTo !== before;
        if (page.hasMore && !more) reason ??= 'incomplete';
      }
      if (reason !== 'maxPages' && data.sinceModSeq !== undefined && Array.isArray(join.changes)) {
        const first = {
          messages: join.changes,
          hasMore: join.hasMoreChanges === true,
          lastModSeq: join.lastModSeq ?? 0,
          truncated: join.changesTruncated === true,
        };
        const outcome = await this.applyChanges(room, first, async (afterModSeq) => {
          const next: ChangesRequest = { roomId, afterModSeq, limit: PAGE };
          return okData<'message.changes'>(await conn.request('message.changes', next, this.timeoutMs));
        });
        if (outcome !== 'complete') reason ??= outcome;
      }
      recovery = {
        roomId,
        fromSeq: since,
        toSeq: room.stream.upTo ?? since,
        fromModSeq: sinceMod,
        toModSeq: room.changes.upTo,
        discontinuity: reason !== undefined,
      };
      if (reason) recovery.reason = reason;
    }
    // The join belongs to the connection it ran on: a newer one must join again.
    if (gen !== this.gen) throw new ChatRequestError('DISCONNECTED', 'the connection changed during the join');
    return { info: roomInfo(join), recovery };
  }

  /**
   * Applies `first` and the pages after it until the last one. Each page starts after the last
   * modSeq of the one before, so this ends; reaching the end means every change up to the last
   * page's lastModSeq is applied — except, when a page was `truncated`, the changes of messages
   * that retention removed meanwhile.
   */
  private async applyChanges(
    room: JoinedRoom,
    first: ChangesPage,
    next: (afterModSeq: number) => Promise<ChangesPage>,
  ): Promise<'complete' | 'incomplete' | 'truncated'> {
    let truncated = false;
    for (let page = first; ;) {
      truncated ||= page.truncated === true;
      for (const m of page.messages) this.absorb(room, m, 'state');
      if (!page.hasMore) {
        room.changes.reach(page.lastModSeq);
        return truncated ? 'truncated' : 'complete';
      }
      const last = page.messages.at(-1);
      if (!last) return 'incomplete'; // hasMore without a message to page on from: the service's pages stopped
      page = await next(last.modSeq);
    }
  }

  /**
   * Takes one `message.history { afterSeq: before }` page. The history holds every message after
   * `before` that exists, so a page that starts beyond before + 1 means the seqs between are gone
   * (retention removed them): delivery skips them. Answers whether it did.
   */
  private absorbPage(room: JoinedRoom, before: number | null, messages: Message[]): boolean {
    const first = messages[0];
    const hole = before !== null && first !== undefined && first.seq > before + 1 && room.stream.upTo === before;
    if (hole) room.stream.skipTo(first.seq - 1);
    for (const m of messages) this.absorb(room, m, 'state');
    return hole;
  }

  /**
   * The rejoins after a reconnect; once all settled on this connection, 'recovered' tells per room
   * what came back (rooms the server removed are left out: 'removed' said so).
   */
  private async recover(): Promise<void> {
    const gen = this.gen;
    const results = await Promise.all([...this.joined.values()].map((room) => this.resync(room)));
    if (gen !== this.gen || this.closed) return; // dropped again: the next session recovers from where this one got to
    const rooms = results.filter((r): r is RoomRecovery => r !== null);
    for (const r of rooms) this.handles.get(r.roomId)?.events.emit('recovered', r);
    this.events.emit('recovered', { rooms, discontinuity: rooms.some((r) => r.discontinuity) });
  }

  /**
   * Rejoins one room; failures that retrying cannot fix are reported. Resolves with what was
   * recovered, or null: a first join (the room was joined while disconnected), a room removed or
   * left meanwhile, or a connection that dropped again.
   */
  private async resync(room: JoinedRoom): Promise<RoomRecovery | null> {
    const gen = this.gen;
    const { roomId } = room.stream;
    for (let failures = 0; gen === this.gen && this.joined.get(roomId) === room;) {
      try {
        return (await this.sync(room)).recovery;
      } catch (err) {
        if (isTransient(err)) return null; // the next session resyncs again
        const retryIn = this.retryDelay(err, ++failures);
        if (retryIn !== null) {
          await sleep(retryIn);
          continue;
        }
        const code = err instanceof ChatRequestError ? err.code : 'INTERNAL';
        if (code === 'FORBIDDEN') {
          // The room became private, or this user lost its membership, while disconnected.
          this.joined.delete(roomId);
          this.emitRoom('removed', roomId, { roomId });
          return null;
        }
        this.events.emit('error', { code, message: `rejoining ${roomId} failed: ${errorText(err)}` });
        const at = room.stream.upTo;
        if (at === null) return null;
        const modSeq = room.changes.upTo;
        return { roomId, fromSeq: at, toSeq: at, fromModSeq: modSeq, toModSeq: modSeq, discontinuity: true, reason: 'failed' };
      }
    }
    return null;
  }

  /** Emits a room's event to the client's listeners and to its room(id) handle's. */
  private emitRoom<K extends keyof RoomEvents & keyof ChatClientEvents>(
    event: K,
    roomId: string,
    payload: RoomEvents[K] & ChatClientEvents[K],
  ): void {
    this.events.emit(event, payload);
    this.handles.get(roomId)?.events.emit(event, payload);
  }

  /**
   * Takes a message of a joined room from any source. One not delivered yet goes to the stream (and
   * out as 'message', in the newest state known by then); one delivered, or from before the join
   * point, goes out as 'updated' when it is newer than the state held for its seq.
   */
  private absorb(room: JoinedRoom, m: Message, source: Source): void {
    // A service from before message changes sends messages without modSeq: they only ever go to the stream.
    const tracked = typeof m.modSeq === 'number';
    if (tracked) room.changes.note(m.modSeq);
    if (room.stream.upTo === null) {
      if (source === 'state' && tracked) room.early.push(m);
      else room.stream.accept(m);
    } else if (m.seq > room.stream.upTo) room.stream.accept(m);
    else if (source === 'state' && tracked && room.changes.take(m) && this.joined.get(m.roomId) === room)
      this.emitRoom('updated', m.roomId, m);
    if (room.stream.hasGap) this.scheduleFill(room);
    if (room.changes.hasGap) this.scheduleCatchUp(room);
  }

  /** Only the room's current entry speaks: a join still running for a room left (and maybe rejoined) stays silent. */
  private deliver(room: JoinedRoom, m: Message): void {
    if (typeof m.modSeq === 'number') room.changes.take(m);
    if (this.joined.get(m.roomId) === room) this.emitRoom('message', m.roomId, m);
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
        if (before === null) return; // not joined yet: the join answers from where the room is
        const page = await this.call('message.history', { roomId, afterSeq: before, limit: PAGE });
        this.absorbPage(room, before, page.messages);
        if (room.stream.upTo === before) return;
      }
    } catch {
      // Disconnected or refused: the rejoin after the reconnect (or the next push) catches up.
    } finally {
      room.filling = false;
    }
  }

  /**
   * A change seen above a missing modSeq: the missing push may still be on its way between
   * instances, or lost. Unless a join is catching the room up anyway, read the changes after the
   * cursor to the end once the wait is over.
   */
  private scheduleCatchUp(room: JoinedRoom): void {
    if (room.catchingUp || room.sync) return;
    room.catchingUp = true;
    setTimer(() => void this.catchUp(room), GAP_WAIT_MS);
  }

  private async catchUp(room: JoinedRoom): Promise<void> {
    const { roomId } = room.stream;
    const read = (afterModSeq: number) => this.changes(roomId, { afterModSeq, limit: PAGE });
    try {
      const from = room.changes.upTo;
      if (!room.changes.hasGap || from === null || this.joined.get(roomId) !== room || room.sync) return;
      await this.applyChanges(room, await read(from), read);
    } catch {
      // Disconnected or refused: the rejoin after the reconnect catches up from the same cursor.
    } finally {
      room.catchingUp = false;
    }
  }

  private onPush(event: string, data: unknown): void {
    const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
    const roomId = typeof d.roomId === 'string' ? d.roomId : null;
    if (roomId === null && event !== 'error') return;
    switch (event) {
      case 'message.new': {
        const room = this.joined.get(roomId!);
        if (room && typeof d.seq === 'number') this.absorb(room, data as Message, 'creation');
        break;
      }
      case 'message.updated': {
        const room = this.joined.get(roomId!);
        if (room && typeof d.seq === 'number') this.absorb(room, data as Message, 'state');
        break;
      }
      case 'presence.joined':
      case 'presence.left':
        this.emitRoom('presence', roomId!, { roomId: roomId!, userId: String(d.userId), online: event === 'presence.joined' });
        break;
      case 'typing':
        this.emitRoom('typing', roomId!, { roomId: roomId!, userId: String(d.userId), typing: d.typing === true });
        break;
      case 'receipt':
        this.emitRoom('receipt', roomId!, { roomId: roomId!, userId: String(d.userId), seq: Number(d.seq) });
        break;
      case 'room.removed':
        this.joined.delete(roomId!);
        this.emitRoom(
          'removed',
          roomId!,
          typeof d.reason === 'string' ? { roomId: roomId!, reason: d.reason as RoomRemoval['reason'] } : { roomId: roomId! },
        );
        break;
      case 'error':
        this.events.emit('error', { code: String(d.code ?? 'INTERNAL'), message: String(d.message ?? '') });
        break;
      // Later releases add pushes: the protocol asks clients to ignore the ones they do not know.
    }
  }
}

/**
 * The data of an `ok` reply to a request of event E, typed as the protocol says it is (the
 * transports carry it untyped); an error reply becomes a ChatRequestError.
 */
function okData<E extends ClientEvent>(reply: Reply): ReplyOf<E> {
  if (!reply.ok) throw new ChatRequestError(reply.error.code, reply.error.message, reply.error.details);
  return reply.data as ReplyOf<E>;
}

function roomInfo(r: RoomInfo): RoomInfo {
  const info: RoomInfo = { roomId: r.roomId, lastSeq: r.lastSeq, lastReadSeq: r.lastReadSeq, unread: r.unread };
  if (typeof r.lastModSeq === 'number') info.lastModSeq = r.lastModSeq;
  if (r.role === 'owner' || r.role === 'moderator' || r.role === 'member') info.role = r.role;
  return info;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
