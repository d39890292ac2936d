import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import type { Mock } from 'node:test';
import { ChatError, StorageUnavailableError, type ErrorCode } from './chat.errors.js';
import {
  SYSTEM_SENDER_ID,
  type HistoryPage,
  type Member,
  type Message,
  type Room,
  type RoomReadState,
  type RoomsPage,
  type Visibility,
} from './chat.events.js';
import type {
  AppendResult,
  ChatStore,
  PageQuery,
  ReadResult,
  RoomAccess,
  RoomBroadcaster,
  RoomCreationCounter,
  RoomInput,
  RoomsQuery,
  RoomSubscriber,
  SlowModeSlots,
} from './chat.ports.js';
import { ChatService } from './chat.service.js';
import { RoomSanctions } from './room-sanctions.js';

const ROOM = 'lobby';
const SENDER = 'user-alice';
const USER = 'user-bob';

function makeMessage(overrides: Partial<Message> = {}): Message {
  return {
    id: 'msg-1',
    roomId: ROOM,
    seq: 1,
    senderId: SENDER,
    body: 'hello',
    clientMsgId: null,
    createdAt: '2024-01-01T00:00:00.000Z',
    version: 1,
    modSeq: 1,
    editedAt: null,
    deletedAt: null,
    parentSeq: null,
    replyCount: 0,
    lastReplySeq: null,
    mentions: [],
    reactions: [],
    ...overrides,
  };
}

/** Slow mode is off in these rooms (sanctions() reads null): its slots are never asked for. */
const unusedSlots: SlowModeSlots = {
  take: () => assert.fail('slow mode is off'),
  giveBack: () => assert.fail('slow mode is off'),
};

function makeRoom(overrides: Partial<Room> = {}): Room {
  return {
    roomId: ROOM,
    visibility: 'public',
    title: null,
    metadata: null,
    lastSeq: 0,
    lastModSeq: 0,
    retentionDays: null,
    slowModeMs: 0,
    floorSeq: 1,
    createdAt: '2024-01-01T00:00:00.000Z',
    ...overrides,
  };
}

function access(visibility: Visibility, isMember: boolean, lastSeq = 0, lastReadSeq = 0): RoomAccess {
  return { visibility, isMember, role: 'member', lastSeq, lastModSeq: lastSeq, lastReadSeq };
}

interface FakeBehaviour {
  append?: ChatStore['append'];
  openRoom?: (roomId: string, userId: string) => Promise<RoomAccess | null>;
  roomExists?: (roomId: string) => Promise<boolean>;
  roomAccess?: (roomId: string, userId: string) => Promise<RoomAccess | null>;
  page?: (query: PageQuery) => Promise<HistoryPage>;
  upsertRoom?: (input: RoomInput) => Promise<{ room: Room; previous: Visibility | null }>;
  getRoom?: (roomId: string) => Promise<Room | null>;
  setMember?: ChatStore['setMember'];
  listMembers?: (roomId: string) => Promise<Member[] | null>;
  markRead?: (roomId: string, userId: string, seq: number) => Promise<ReadResult>;
  listRooms?: (query: RoomsQuery) => Promise<RoomsPage>;
  change?: ChatStore['change'];
  maxMessageLength?: number;
  maxHistoryPage?: number;
  maxBufferedBytes?: number;
  roomCreations?: { perUser: number; windowMs: number };
}

interface Harness {
  service: ChatService;
  append: Mock<ChatStore['append']>;
  openRoom: Mock<ChatStore['openRoom']>;
  createRoom: Mock<ChatStore['createRoom']>;
  roomExists: Mock<ChatStore['roomExists']>;
  roomAccess: Mock<ChatStore['roomAccess']>;
  page: Mock<ChatStore['page']>;
  upsertRoom: Mock<ChatStore['upsertRoom']>;
  getRoom: Mock<ChatStore['getRoom']>;
  setMember: Mock<ChatStore['setMember']>;
  listMembers: Mock<ChatStore['listMembers']>;
  markRead: Mock<ChatStore['markRead']>;
  listRooms: Mock<ChatStore['listRooms']>;
  publish: Mock<RoomBroadcaster['publish']>;
  publishToOthers: Mock<RoomBroadcaster['publishToOthers']>;
  removeUsers: Mock<RoomBroadcaster['removeUsers']>;
  removeNonMembers: Mock<RoomBroadcaster['removeNonMembers']>;
  /** Counts room creations per user in one window that ends at `creationWindowEnd`. */
  countCreation: Mock<RoomCreationCounter['hit']>;
  /** A connection whose join/leave calls are recorded in `calls` as subscribe:/unsubscribe:. */
  subscriber(): {
    assertCanJoin: Mock<RoomSubscriber['assertCanJoin']>;
    join: Mock<RoomSubscriber['join']>;
    leave: Mock<RoomSubscriber['leave']>;
  };
  /** Every store/broadcaster/subscription call in the order it happened. */
  calls: string[];
}

/** Where the fake room-creation counter's window ends. */
const CREATION_WINDOW_MS = 60_000;

/** A ChatService wired to hand-written fakes that record every call. By default rooms exist, are public and empty. */
function setup(behaviour: FakeBehaviour = {}): Harness {
  const calls: string[] = [];
  // Like the real store: a created message is handed to onCreated at COMMIT, before the result.
  const append = mock.fn<ChatStore['append']>(async (input, options, onCreated) => {
    calls.push(`append:${input.roomId}`);
    const result: AppendResult = behaviour.append
      ? await behaviour.append(input, options, onCreated)
      : { outcome: 'created', message: makeMessage({ roomId: input.roomId, body: input.body, clientMsgId: input.clientMsgId }) };
    if (result.outcome === 'created') onCreated(result.message, null);
    return result;
  });
  const openRoom = mock.fn<ChatStore['openRoom']>(async (roomId, userId) => {
    calls.push(`openRoom:${roomId}`);
    return behaviour.openRoom ? behaviour.openRoom(roomId, userId) : access('public', false);
  });
  const createRoom = mock.fn<ChatStore['createRoom']>(async (roomId) => {
    calls.push(`createRoom:${roomId}`);
  });
  const roomExists = mock.fn<ChatStore['roomExists']>(async (roomId) => {
    calls.push(`roomExists:${roomId}`);
    return behaviour.roomExists ? behaviour.roomExists(roomId) : true;
  });
  const roomAccess = mock.fn<ChatStore['roomAccess']>(async (roomId, userId) => {
    calls.push(`roomAccess:${roomId}`);
    return behaviour.roomAccess ? behaviour.roomAccess(roomId, userId) : access('public', false);
  });
  const page = mock.fn<ChatStore['page']>(async (query) => {
    calls.push(`page:${query.roomId}`);
    return { floorSeq: 1, ...(behaviour.page ? await behaviour.page(query) : { messages: [], hasMore: false }) };
  });
  const upsertRoom = mock.fn<ChatStore['upsertRoom']>(async (input) => {
    calls.push(`upsertRoom:${input.roomId}`);
    if (behaviour.upsertRoom) return behaviour.upsertRoom(input);
    return { room: makeRoom(input), previous: null };
  });
  const getRoom = mock.fn<ChatStore['getRoom']>(async (roomId) => {
    calls.push(`getRoom:${roomId}`);
    return behaviour.getRoom ? behaviour.getRoom(roomId) : makeRoom({ roomId });
  });
  const setMember = mock.fn<ChatStore['setMember']>(async (roomId, userId, member, role) => {
    calls.push(`setMember:${roomId}:${userId}:${member}${role ? `:${role}` : ''}`);
    return behaviour.setMember ? behaviour.setMember(roomId, userId, member, role) : { changed: true };
  });
  const listMembers = mock.fn<ChatStore['listMembers']>(async (roomId) => {
    calls.push(`listMembers:${roomId}`);
    return behaviour.listMembers ? behaviour.listMembers(roomId) : [];
  });
  const markRead = mock.fn<ChatStore['markRead']>(async (roomId, userId, seq) => {
    calls.push(`markRead:${roomId}:${userId}:${seq}`);
    return behaviour.markRead ? behaviour.markRead(roomId, userId, seq) : { outcome: 'read', lastReadSeq: seq, grew: seq > 0 };
  });
  const listRooms = mock.fn<ChatStore['listRooms']>(async (query) => {
    calls.push(`listRooms:${query.userId}`);
    return behaviour.listRooms ? behaviour.listRooms(query) : { rooms: [], hasMore: false };
  });
  const change = mock.fn<ChatStore['change']>(async (roomId, seq, actor, what, onChanged) => {
    calls.push(`change:${roomId}:${seq}:${what.kind}`);
    return behaviour.change ? behaviour.change(roomId, seq, actor, what, onChanged) : { outcome: 'no_room' };
  });
  const changes = mock.fn<ChatStore['changes']>(async (query) => {
    calls.push(`changes:${query.roomId}:${query.afterModSeq}`);
    return { messages: [], hasMore: false, lastModSeq: 0, truncated: false };
  });
  const versions = mock.fn<ChatStore['versions']>(async () => null);
  const created = new Map<string, number>();
  const countCreation = mock.fn<RoomCreationCounter['hit']>(async (userId) => {
    calls.push(`countCreation:${userId}`);
    const count = (created.get(userId) ?? 0) + 1;
    created.set(userId, count);
    return { count, resetAt: Date.now() + CREATION_WINDOW_MS };
  });
  const publish = mock.fn<RoomBroadcaster['publish']>((roomId, event) => {
    calls.push(`publish:${roomId}:${event}`);
  });
  const publishToOthers = mock.fn<RoomBroadcaster['publishToOthers']>((roomId, event, _data, exceptUserId) => {
    calls.push(`publishToOthers:${roomId}:${event}:${exceptUserId}`);
  });
  const removeUsers = mock.fn<RoomBroadcaster['removeUsers']>((roomId, userIds) => {
    calls.push(`removeUsers:${roomId}:${userIds.join(',')}`);
  });
  const removeNonMembers = mock.fn<RoomBroadcaster['removeNonMembers']>((roomId) => {
    calls.push(`removeNonMembers:${roomId}`);
  });
  const store: ChatStore = {
    append,
    openRoom,
    createRoom,
    roomExists,
    roomAccess,
    page,
    upsertRoom,
    getRoom,
    setMember,
    listMembers,
    markRead,
    listRooms,
    change,
    changes,
    versions,
    // Erasure and export are the store's work; the e2e tests (test/user-erasure.test.ts) cover them.
    eraseUser: mock.fn<ChatStore['eraseUser']>(async () => ({
      messagesDeleted: 0,
      reactionsRemoved: 0,
      roomsLeft: 0,
      sanctionedRooms: [],
    })),
    exportUser: mock.fn<ChatStore['exportUser']>(async function* () {}),
    // Moderation has its own tests (room-sanctions.test.ts, test/moderation.test.ts): nobody is sanctioned here.
    moderate: mock.fn<ChatStore['moderate']>(async () => true),
    sanctions: mock.fn<ChatStore['sanctions']>(async () => new Map()),
    // Only the realtime reconciler asks; test/store-queries.test.ts covers it.
    judgeJoins: mock.fn<ChatStore['judgeJoins']>(async (joins) => joins.map(() => 'allowed' as const)),
  };
  const broadcaster: RoomBroadcaster = {
    publish,
    publishToOthers,
    removeUsers,
    removeNonMembers,
    moderated: async () => undefined,
    relayReachable: () => true,
  };
  const service = new ChatService(
    store,
    broadcaster,
    {
      maxMessageLength: behaviour.maxMessageLength ?? 4000,
      maxHistoryPage: behaviour.maxHistoryPage ?? 100,
      maxBufferedBytes: behaviour.maxBufferedBytes ?? 1024 * 1024,
      roomCreations: behaviour.roomCreations ?? { perUser: 20, windowMs: CREATION_WINDOW_MS },
    },
    { hit: countCreation },
    new RoomSanctions(store, unusedSlots),
  );
  const subscriber = () => ({
    assertCanJoin: mock.fn<RoomSubscriber['assertCanJoin']>(() => undefined),
    join: mock.fn<RoomSubscriber['join']>((roomId) => {
      calls.push(`subscribe:${roomId}`);
      return Promise.resolve();
    }),
    leave: mock.fn<RoomSubscriber['leave']>((roomId) => {
      calls.push(`unsubscribe:${roomId}`);
    }),
  });
  return {
    service,
    append,
    openRoom,
    createRoom,
    roomExists,
    roomAccess,
    page,
    upsertRoom,
    getRoom,
    setMember,
    listMembers,
    markRead,
    listRooms,
    publish,
    publishToOthers,
    removeUsers,
    removeNonMembers,
    countCreation,
    subscriber,
    calls,
  };
}

/** Returns an assert.rejects/throws validator for a VALIDATION_FAILED ChatError with exactly these fields. */
function validationFailed(fields: string[]) {
  return (err: unknown): true => {
    assert.ok(err instanceof ChatError, `expected a ChatError, got ${String(err)}`);
    assert.equal(err.code, 'VALIDATION_FAILED');
    assert.deepEqual(err.details, { fields });
    return true;
  };
}

/** Returns an assert.rejects validator for a ChatError with this code. */
function chatError(code: ErrorCode) {
  return (err: unknown): true => {
    assert.ok(err instanceof ChatError, `expected a ChatError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

describe('ChatService.send validation', () => {
  const cases: { name: string; data: unknown; fields: string[] }[] = [
    { name: 'missing body', data: { roomId: ROOM }, fields: ['body'] },
    { name: 'empty body', data: { roomId: ROOM, body: '' }, fields: ['body'] },
    { name: 'white-space-only body', data: { roomId: ROOM, body: ' \t\n\r ' }, fields: ['body'] },
    {
      name: 'body of non-ASCII white space (NBSP, ideographic space, line separator)',
      data: { roomId: ROOM, body: '\u00a0\u3000\u2028\u2003' },
      fields: ['body'],
    },
    { name: 'body containing NUL', data: { roomId: ROOM, body: 'hel\u0000lo' }, fields: ['body'] },
    { name: 'body over 4000 code points', data: { roomId: ROOM, body: 'a'.repeat(4001) }, fields: ['body'] },
    { name: 'body over 4000 code points made of emoji', data: { roomId: ROOM, body: '😀'.repeat(4001) }, fields: ['body'] },
    { name: 'body with a lone high surrogate', data: { roomId: ROOM, body: 'abc\ud83d' }, fields: ['body'] },
    { name: 'body with a lone low surrogate', data: { roomId: ROOM, body: '\ude00abc' }, fields: ['body'] },
    { name: 'body that is not a string', data: { roomId: ROOM, body: 42 }, fields: ['body'] },
    { name: 'missing roomId', data: { body: 'hi' }, fields: ['roomId'] },
    { name: 'roomId with a slash', data: { roomId: 'a/b', body: 'hi' }, fields: ['roomId'] },
    { name: 'empty roomId', data: { roomId: '', body: 'hi' }, fields: ['roomId'] },
    { name: 'numeric roomId', data: { roomId: 7, body: 'hi' }, fields: ['roomId'] },
    { name: 'clientMsgId with a space', data: { roomId: ROOM, body: 'hi', clientMsgId: 'a b' }, fields: ['clientMsgId'] },
    { name: 'empty clientMsgId', data: { roomId: ROOM, body: 'hi', clientMsgId: '' }, fields: ['clientMsgId'] },
    { name: 'clientMsgId of 65 chars', data: { roomId: ROOM, body: 'hi', clientMsgId: 'x'.repeat(65) }, fields: ['clientMsgId'] },
    { name: 'null clientMsgId', data: { roomId: ROOM, body: 'hi', clientMsgId: null }, fields: ['clientMsgId'] },
    { name: 'bad roomId and bad body together', data: { roomId: '-x', body: '' }, fields: ['roomId', 'body'] },
    { name: 'data null', data: null, fields: [] },
    { name: 'data an array', data: [ROOM, 'hi'], fields: [] },
    { name: 'data a string', data: '{"roomId":"lobby","body":"hi"}', fields: [] },
    { name: 'data a number', data: 42, fields: [] },
    { name: 'data undefined', data: undefined, fields: [] },
  ];

  for (const c of cases) {
    it(`refuses ${c.name} with VALIDATION_FAILED and stores/broadcasts nothing`, async () => {
      const h = setup();
      await assert.rejects(h.service.send(SENDER, c.data), validationFailed(c.fields));
      assert.equal(h.append.mock.callCount(), 0);
      assert.equal(h.publish.mock.callCount(), 0);
      assert.deepEqual(h.calls, []);
    });
  }

  it('accepts a body of exactly 4000 code points even when it is 8000 UTF-16 units (emoji)', async () => {
    const h = setup();
    const body = '😀'.repeat(3999) + 'a';
    assert.equal(body.length, 7999);
    await h.service.send(SENDER, { roomId: ROOM, body });
    assert.equal(h.append.mock.callCount(), 1);
    assert.equal(h.append.mock.calls[0]?.arguments[0].body, body);
  });

  it('accepts 4000 astral code points (8000 UTF-16 units) with the default limit', async () => {
    const h = setup();
    const body = '𝒜'.repeat(4000);
    assert.equal(body.length, 8000);
    const message = await h.service.send(SENDER, { roomId: ROOM, body });
    assert.equal(message.body, body);
    assert.equal(h.append.mock.callCount(), 1);
  });

  it('stores the body exactly as sent, surrounding white space included', async () => {
    const h = setup();
    await h.service.send(SENDER, { roomId: ROOM, body: '  hi there \n' });
    assert.equal(h.append.mock.calls[0]?.arguments[0].body, '  hi there \n');
  });

  it('honours a configured maxMessageLength', async () => {
    const h = setup({ maxMessageLength: 5 });
    await h.service.send(SENDER, { roomId: ROOM, body: '12345' });
    await assert.rejects(h.service.send(SENDER, { roomId: ROOM, body: '123456' }), validationFailed(['body']));
    assert.equal(h.append.mock.callCount(), 1);
  });
});

describe('ChatService.send storage and broadcast', () => {
  it('passes only roomId, the authenticated senderId, body and clientMsgId to the store, untrusted', async () => {
    const h = setup();
    const data = {
      roomId: ROOM,
      body: 'hi',
      clientMsgId: 'c-1',
      senderId: 'mallory',
      seq: 999,
      id: 'forged-id',
      createdAt: '1999-01-01T00:00:00.000Z',
    };
    await h.service.send(SENDER, data);
    assert.equal(h.append.mock.callCount(), 1);
    assert.deepEqual(h.append.mock.calls[0]?.arguments.slice(0, 2), [
      { roomId: ROOM, senderId: SENDER, body: 'hi', clientMsgId: 'c-1', parentSeq: null, mentions: [] },
      { trusted: false, createRoom: false },
    ]);
  });

  it('leaves the membership check to the store transaction (no separate access read)', async () => {
    const h = setup();
    await h.service.send(SENDER, { roomId: ROOM, body: 'hi' });
    assert.deepEqual(h.calls, [`append:${ROOM}`, `publish:${ROOM}:message.new`]);
    assert.equal(h.openRoom.mock.callCount(), 0);
    assert.equal(h.roomAccess.mock.callCount(), 0);
  });

  it('drops a __proto__ key coming from JSON.parse and passes clientMsgId null when absent', async () => {
    const h = setup();
    const data: unknown = JSON.parse('{"__proto__":{"senderId":"mallory","polluted":true},"roomId":"lobby","body":"hi"}');
    await h.service.send(SENDER, data);
    const passed = h.append.mock.calls[0]?.arguments[0];
    assert.ok(passed);
    assert.deepEqual(passed, { roomId: ROOM, senderId: SENDER, body: 'hi', clientMsgId: null, parentSeq: null, mentions: [] });
    assert.deepEqual(Object.keys(passed).sort(), ['body', 'clientMsgId', 'mentions', 'parentSeq', 'roomId', 'senderId']);
    assert.equal(Object.hasOwn(passed, '__proto__'), false);
    assert.equal(Object.getPrototypeOf(passed), Object.prototype);
    assert.equal((passed as unknown as Record<string, unknown>)['polluted'], undefined);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  it('publishes a newly created message once as message.new to its room and returns it', async () => {
    const stored = makeMessage({ id: 'm-42', seq: 42, body: 'hi', clientMsgId: 'c-1' });
    const h = setup({ append: async () => ({ outcome: 'created', message: stored }) });
    const result = await h.service.send(SENDER, { roomId: ROOM, body: 'hi', clientMsgId: 'c-1' });
    assert.equal(result, stored);
    assert.equal(h.publish.mock.callCount(), 1);
    assert.deepEqual(h.publish.mock.calls[0]?.arguments, [ROOM, 'message.new', stored]);
    assert.equal(h.publish.mock.calls[0]?.arguments[2], stored);
    assert.deepEqual(h.calls, [`append:${ROOM}`, `publish:${ROOM}:message.new`]);
  });

  it('does not publish a duplicate (outcome existing) but still returns the stored message', async () => {
    const stored = makeMessage({ id: 'm-7', seq: 7, clientMsgId: 'c-1' });
    const h = setup({ append: async () => ({ outcome: 'existing', message: stored }) });
    const result = await h.service.send(SENDER, { roomId: ROOM, body: 'hello', clientMsgId: 'c-1' });
    assert.deepEqual(result, stored);
    assert.equal(h.append.mock.callCount(), 1);
    assert.equal(h.publish.mock.callCount(), 0);
  });

  it('refuses a non-member of a private room (outcome forbidden) with FORBIDDEN and publishes nothing', async () => {
    const h = setup({ append: async () => ({ outcome: 'forbidden' }) });
    await assert.rejects(h.service.send(SENDER, { roomId: 'secret', body: 'hi' }), (err: unknown) => {
      chatError('FORBIDDEN')(err);
      assert.match((err as ChatError).message, /secret/);
      return true;
    });
    assert.equal(h.append.mock.callCount(), 1);
    assert.equal(h.publish.mock.callCount(), 0);
    assert.deepEqual(h.calls, ['append:secret']);
  });

  it('propagates StorageUnavailableError (UNAVAILABLE) from append and broadcasts nothing', async () => {
    const failure = new StorageUnavailableError(new Error('connection reset'));
    const h = setup({ append: async () => Promise.reject(failure) });
    await assert.rejects(h.service.send(SENDER, { roomId: ROOM, body: 'hi', clientMsgId: 'c-1' }), (err: unknown) => {
      assert.equal(err, failure);
      assert.ok(err instanceof ChatError);
      assert.equal(err.code, 'UNAVAILABLE');
      return true;
    });
    assert.equal(h.append.mock.callCount(), 1);
    assert.equal(h.publish.mock.callCount(), 0);
  });

  it('publishes a message that commits after its sender was answered UNAVAILABLE (a late COMMIT)', async () => {
    const stored = makeMessage({ clientMsgId: 'c-late' });
    const h = setup({
      append: async (_input, _trusted, onCreated) => {
        const late = new StorageUnavailableError(new Error('no answer from the database within 2000 ms'));
        // The batch commits after the storage timeout answered the caller.
        setTimeout(() => onCreated(stored, null), 5);
        return Promise.reject(late);
      },
    });
    await assert.rejects(h.service.send(SENDER, { roomId: ROOM, body: 'hello', clientMsgId: 'c-late' }), { code: 'UNAVAILABLE' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(
      h.publish.mock.calls.map((c) => c.arguments),
      [[ROOM, 'message.new', stored]],
    );
  });
});

describe('ChatService.post (trusted service)', () => {
  it('stores on behalf of the given senderId with trusted=true and returns { message, created: true }', async () => {
    const stored = makeMessage({ id: 'm-3', seq: 3, senderId: 'svc-user', body: 'from backend' });
    const h = setup({ append: async () => ({ outcome: 'created', message: stored }) });
    const result = await h.service.post({ roomId: ROOM, senderId: 'svc-user', body: 'from backend', clientMsgId: 'k-1' });
    assert.deepEqual(result, { message: stored, created: true });
    assert.equal(result.message, stored);
    assert.deepEqual(h.append.mock.calls[0]?.arguments.slice(0, 2), [
      { roomId: ROOM, senderId: 'svc-user', body: 'from backend', clientMsgId: 'k-1', parentSeq: null, mentions: [] },
      { trusted: true, createRoom: true },
    ]);
    assert.deepEqual(h.publish.mock.calls[0]?.arguments, [ROOM, 'message.new', stored]);
    assert.deepEqual(h.calls, [`append:${ROOM}`, `publish:${ROOM}:message.new`]);
  });

  it('returns created: false for a repeated clientMsgId and does not publish again', async () => {
    const stored = makeMessage({ clientMsgId: 'k-1' });
    const h = setup({ append: async () => ({ outcome: 'existing', message: stored }) });
    const result = await h.service.post({ roomId: ROOM, senderId: SENDER, body: 'hello', clientMsgId: 'k-1' });
    assert.deepEqual(result, { message: stored, created: false });
    assert.equal(h.publish.mock.callCount(), 0);
  });

  it('drops unknown keys and passes clientMsgId null when absent', async () => {
    const h = setup();
    await h.service.post({ roomId: ROOM, senderId: SENDER, body: 'hi', seq: 5, id: 'forged', createdAt: 'then' });
    assert.deepEqual(h.append.mock.calls[0]?.arguments.slice(0, 2), [
      { roomId: ROOM, senderId: SENDER, body: 'hi', clientMsgId: null, parentSeq: null, mentions: [] },
      { trusted: true, createRoom: true },
    ]);
  });

  it('stores `system: true` without senderId as a system message (senderId "system"), trusted and idempotent like any post', async () => {
    const h = setup();
    await h.service.post({ roomId: ROOM, system: true, body: 'maintenance at noon', clientMsgId: 'notice-1' });
    assert.deepEqual(h.append.mock.calls[0]?.arguments.slice(0, 2), [
      { roomId: ROOM, senderId: SYSTEM_SENDER_ID, body: 'maintenance at noon', clientMsgId: 'notice-1', parentSeq: null, mentions: [] },
      { trusted: true, createRoom: true },
    ]);
    assert.equal(h.publish.mock.callCount(), 1);
  });

  it('treats `system: false` as an ordinary post', async () => {
    const h = setup();
    await h.service.post({ roomId: ROOM, system: false, senderId: SENDER, body: 'hi' });
    assert.equal(h.append.mock.calls[0]?.arguments[0].senderId, SENDER);
  });

  it('accepts a senderId of 1 and of 128 characters', async () => {
    const h = setup();
    for (const senderId of ['u', 'u'.repeat(128)]) {
      await h.service.post({ roomId: ROOM, senderId, body: 'hi' });
    }
    assert.deepEqual(
      h.append.mock.calls.map((c) => c.arguments[0].senderId),
      ['u', 'u'.repeat(128)],
    );
  });

  const refused: { name: string; data: unknown; fields: string[] }[] = [
    { name: 'a missing senderId', data: { roomId: ROOM, body: 'hi' }, fields: ['senderId'] },
    { name: 'an empty senderId', data: { roomId: ROOM, senderId: '', body: 'hi' }, fields: ['senderId'] },
    { name: 'a senderId of 129 characters', data: { roomId: ROOM, senderId: 'u'.repeat(129), body: 'hi' }, fields: ['senderId'] },
    { name: 'a numeric senderId', data: { roomId: ROOM, senderId: 42, body: 'hi' }, fields: ['senderId'] },
    { name: 'a null senderId', data: { roomId: ROOM, senderId: null, body: 'hi' }, fields: ['senderId'] },
    { name: 'a white-space-only body', data: { roomId: ROOM, senderId: SENDER, body: '  ' }, fields: ['body'] },
    { name: 'a bad roomId', data: { roomId: 'a b', senderId: SENDER, body: 'hi' }, fields: ['roomId'] },
    { name: 'a bad clientMsgId', data: { roomId: ROOM, senderId: SENDER, body: 'hi', clientMsgId: 'a.b' }, fields: ['clientMsgId'] },
    { name: 'non-object data', data: 'hi', fields: [] },
    {
      name: 'system: true together with a senderId',
      data: { roomId: ROOM, system: true, senderId: SENDER, body: 'hi' },
      fields: ['senderId'],
    },
    { name: 'system: true with a null senderId', data: { roomId: ROOM, system: true, senderId: null, body: 'hi' }, fields: ['senderId'] },
    {
      name: 'a system flag that is not a boolean',
      data: { roomId: ROOM, system: 'yes', senderId: SENDER, body: 'hi' },
      fields: ['system'],
    },
    { name: 'a system message with a bad body', data: { roomId: ROOM, system: true, body: ' ' }, fields: ['body'] },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} with VALIDATION_FAILED and stores nothing`, async () => {
      const h = setup();
      await assert.rejects(h.service.post(c.data), validationFailed(c.fields));
      assert.deepEqual(h.calls, []);
    });
  }

  it('propagates StorageUnavailableError from append without publishing', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ append: async () => Promise.reject(failure) });
    await assert.rejects(h.service.post({ roomId: ROOM, senderId: SENDER, body: 'hi' }), (err: unknown) => err === failure);
    assert.equal(h.publish.mock.callCount(), 0);
  });
});

describe('ChatService.join', () => {
  it('checks the connection room cap before anything is stored', async () => {
    const h = setup();
    const subscriber = h.subscriber();
    subscriber.assertCanJoin.mock.mockImplementation(() => {
      throw new ChatError('LIMIT_EXCEEDED', 'too many rooms');
    });
    await assert.rejects(h.service.join(USER, { roomId: ROOM }, subscriber), chatError('LIMIT_EXCEEDED'));
    assert.deepEqual(h.calls, [], 'no room created, nothing subscribed');
  });

  it('checks access, subscribes, re-checks access and returns its lastSeq without missed/hasMore keys', async () => {
    const h = setup({ openRoom: async () => access('public', false, 15), roomAccess: async () => access('public', false, 17) });
    const subscriber = h.subscriber();
    const result = await h.service.join(USER, { roomId: ROOM }, subscriber);
    assert.deepEqual(result, { roomId: ROOM, lastSeq: 17, lastModSeq: 17, role: 'member', lastReadSeq: 0, unread: 17 });
    assert.equal(Object.hasOwn(result, 'missed'), false);
    assert.equal(Object.hasOwn(result, 'hasMore'), false);
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`]);
    assert.deepEqual(h.openRoom.mock.calls[0]?.arguments, [ROOM, USER]);
    assert.deepEqual(h.roomAccess.mock.calls[0]?.arguments, [ROOM, USER]);
    assert.equal(subscriber.join.mock.callCount(), 1);
    assert.equal(subscriber.leave.mock.callCount(), 0);
    assert.equal(h.page.mock.callCount(), 0);
  });

  it('with sinceSeq reads one page of at most 100 after it and returns missed/hasMore from the store', async () => {
    const missed = [makeMessage({ id: 'a', seq: 6 }), makeMessage({ id: 'b', seq: 7 })];
    const h = setup({ roomAccess: async () => access('public', false, 7), page: async () => ({ messages: missed, hasMore: true }) });
    const result = await h.service.join(USER, { roomId: ROOM, sinceSeq: 5 }, h.subscriber());
    assert.deepEqual(result, {
      roomId: ROOM,
      lastSeq: 7,
      lastModSeq: 7,
      lastReadSeq: 0,
      unread: 7,
      role: 'member',
      missed,
      hasMore: true,
      truncated: false,
    });
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, afterSeq: 5, limit: 100 }]);
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`, `page:${ROOM}`]);
  });

  it('reports lastSeq as the newest missed seq when a message was committed after the access read', async () => {
    const missed = [makeMessage({ seq: 1 }), makeMessage({ seq: 2 }), makeMessage({ seq: 3 })];
    const h = setup({ roomAccess: async () => access('public', false, 2), page: async () => ({ messages: missed, hasMore: false }) });
    const result = await h.service.join(USER, { roomId: ROOM, sinceSeq: 0 }, h.subscriber());
    assert.equal(result.lastSeq, 3);
    assert.equal(result.hasMore, false);
    assert.equal(result.missed, missed);
  });

  it('keeps the access lastSeq when it is newer than the missed page (hasMore)', async () => {
    const missed = [makeMessage({ seq: 11 }), makeMessage({ seq: 12 })];
    const h = setup({ roomAccess: async () => access('public', false, 250), page: async () => ({ messages: missed, hasMore: true }) });
    const result = await h.service.join(USER, { roomId: ROOM, sinceSeq: 10 }, h.subscriber());
    assert.equal(result.lastSeq, 250);
  });

  it('with sinceSeq on an empty room returns missed [] and hasMore false with lastSeq 0', async () => {
    const h = setup();
    const result = await h.service.join(USER, { roomId: ROOM, sinceSeq: 0 }, h.subscriber());
    assert.deepEqual(result, {
      roomId: ROOM,
      lastSeq: 0,
      lastModSeq: 0,
      lastReadSeq: 0,
      role: 'member',
      unread: 0,
      missed: [],
      hasMore: false,
      truncated: false,
    });
  });

  it('refuses a bad roomId or sinceSeq without subscribing or touching the store', async () => {
    const bad: { data: unknown; fields: string[] }[] = [
      { data: { roomId: 'has space' }, fields: ['roomId'] },
      { data: { roomId: ROOM, sinceSeq: -1 }, fields: ['sinceSeq'] },
      { data: { roomId: ROOM, sinceSeq: '5' }, fields: ['sinceSeq'] },
      { data: null, fields: [] },
    ];
    for (const { data, fields } of bad) {
      const h = setup();
      const subscriber = h.subscriber();
      await assert.rejects(h.service.join(USER, data, subscriber), validationFailed(fields));
      assert.equal(subscriber.join.mock.callCount(), 0);
      assert.deepEqual(h.calls, []);
    }
  });

  it('lets a member join a private room', async () => {
    const h = setup({ openRoom: async () => access('private', true, 4), roomAccess: async () => access('private', true, 4) });
    const subscriber = h.subscriber();
    assert.deepEqual(await h.service.join(USER, { roomId: ROOM }, subscriber), {
      roomId: ROOM,
      lastSeq: 4,
      lastModSeq: 4,
      role: 'member',
      lastReadSeq: 0,
      unread: 4,
    });
    assert.equal(subscriber.join.mock.callCount(), 1);
    assert.equal(subscriber.leave.mock.callCount(), 0);
  });

  it('refuses a non-member of a private room with FORBIDDEN without ever subscribing', async () => {
    const h = setup({ openRoom: async () => access('private', false, 9) });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM, sinceSeq: 0 }, subscriber), chatError('FORBIDDEN'));
    assert.equal(subscriber.join.mock.callCount(), 0);
    assert.equal(subscriber.leave.mock.callCount(), 0);
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`]);
  });

  it('unsubscribes and answers FORBIDDEN when membership is revoked between the two checks', async () => {
    const h = setup({ openRoom: async () => access('private', true, 3), roomAccess: async () => access('private', false, 3) });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM, sinceSeq: 0 }, subscriber), chatError('FORBIDDEN'));
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`, `unsubscribe:${ROOM}`]);
    assert.deepEqual(subscriber.leave.mock.calls[0]?.arguments, [ROOM]);
    assert.equal(h.page.mock.callCount(), 0);
  });

  it('unsubscribes and answers FORBIDDEN when a public room turns private between the two checks', async () => {
    const h = setup({ openRoom: async () => access('public', false), roomAccess: async () => access('private', false) });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM }, subscriber), chatError('FORBIDDEN'));
    assert.equal(subscriber.join.mock.callCount(), 1);
    assert.equal(subscriber.leave.mock.callCount(), 1);
  });

  it('unsubscribes and answers UNAVAILABLE when the room vanished between the two checks', async () => {
    const h = setup({ roomAccess: async () => null });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM }, subscriber), chatError('UNAVAILABLE'));
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`, `unsubscribe:${ROOM}`]);
  });

  it('unsubscribes when the access re-check fails with StorageUnavailableError after subscribing', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ roomAccess: async () => Promise.reject(failure) });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM }, subscriber), (err: unknown) => err === failure);
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`, `unsubscribe:${ROOM}`]);
  });

  it('unsubscribes when reading the missed page fails with StorageUnavailableError', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ page: async () => Promise.reject(failure) });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM, sinceSeq: 0 }, subscriber), (err: unknown) => {
      assert.equal(err, failure);
      assert.equal((err as ChatError).code, 'UNAVAILABLE');
      return true;
    });
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`, `page:${ROOM}`, `unsubscribe:${ROOM}`]);
  });

  it('propagates StorageUnavailableError from openRoom without subscribing', async () => {
    const h = setup({ openRoom: async () => Promise.reject(new StorageUnavailableError()) });
    const subscriber = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: ROOM }, subscriber), (err: unknown) => {
      assert.ok(err instanceof StorageUnavailableError);
      assert.equal(err.code, 'UNAVAILABLE');
      return true;
    });
    assert.equal(subscriber.join.mock.callCount(), 0);
    assert.equal(subscriber.leave.mock.callCount(), 0);
    assert.equal(h.publish.mock.callCount(), 0);
  });
});

describe('ChatService.leave', () => {
  it('unsubscribes from the room and returns { roomId }', async () => {
    const h = setup();
    const subscriber = h.subscriber();
    const result = await h.service.leave(USER, { roomId: ROOM, extra: true }, subscriber);
    assert.deepEqual(result, { roomId: ROOM });
    assert.equal(subscriber.leave.mock.callCount(), 1);
    assert.deepEqual(subscriber.leave.mock.calls[0]?.arguments, [ROOM]);
    assert.equal(subscriber.join.mock.callCount(), 0);
    assert.deepEqual(h.calls, [`unsubscribe:${ROOM}`]);
  });

  it('refuses a bad roomId without unsubscribing', async () => {
    const h = setup();
    const subscriber = h.subscriber();
    await assert.rejects(h.service.leave(USER, { roomId: '.hidden' }, subscriber), validationFailed(['roomId']));
    await assert.rejects(h.service.leave(USER, 'lobby', subscriber), validationFailed([]));
    assert.equal(subscriber.leave.mock.callCount(), 0);
    assert.deepEqual(h.calls, []);
  });
});

describe('ChatService.history', () => {
  it('passes the default limit 50 to store.page and returns its page', async () => {
    const page: HistoryPage = { messages: [makeMessage({ seq: 3 })], hasMore: true };
    const h = setup({ page: async () => page });
    const result = await h.service.history(USER, { roomId: ROOM });
    assert.deepEqual(result, page);
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, limit: 50 }]);
  });

  it('passes beforeSeq, afterSeq and limit through and drops unknown keys', async () => {
    const h = setup();
    await h.service.history(USER, { roomId: ROOM, beforeSeq: 10, limit: 100, senderId: 'x' });
    await h.service.history(USER, { roomId: ROOM, afterSeq: 0, limit: 1 });
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, beforeSeq: 10, limit: 100 }]);
    assert.deepEqual(h.page.mock.calls[1]?.arguments, [{ roomId: ROOM, afterSeq: 0, limit: 1 }]);
  });

  it('refuses beforeSeq combined with afterSeq', async () => {
    const h = setup();
    await assert.rejects(
      async () => h.service.history(USER, { roomId: ROOM, beforeSeq: 10, afterSeq: 2 }),
      validationFailed(['beforeSeq']),
    );
    assert.equal(h.page.mock.callCount(), 0);
  });

  for (const limit of [0, 101, -1, 1e9, '10', 1.5, null, Number.NaN]) {
    it(`refuses limit ${typeof limit === 'string' ? JSON.stringify(limit) : String(limit)}`, async () => {
      const h = setup();
      await assert.rejects(async () => h.service.history(USER, { roomId: ROOM, limit }), validationFailed(['limit']));
      assert.equal(h.page.mock.callCount(), 0);
      assert.deepEqual(h.calls, [], 'validation comes before any access check');
    });
  }

  it('refuses negative or fractional beforeSeq/afterSeq', async () => {
    const h = setup();
    await assert.rejects(async () => h.service.history(USER, { roomId: ROOM, beforeSeq: -1 }), validationFailed(['beforeSeq']));
    await assert.rejects(async () => h.service.history(USER, { roomId: ROOM, afterSeq: 2.5 }), validationFailed(['afterSeq']));
    assert.equal(h.page.mock.callCount(), 0);
  });

  it('propagates StorageUnavailableError from page', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ page: async () => Promise.reject(failure) });
    await assert.rejects(h.service.history(USER, { roomId: ROOM }), (err: unknown) => err === failure);
    assert.equal(h.publish.mock.callCount(), 0);
  });

  it('cuts a page of big messages below half of MAX_BUFFERED_BYTES, keeps the ones next to the cursor, and says hasMore', async () => {
    const big = (seq: number) => makeMessage({ seq, body: 'é'.repeat(4000) });
    const full = { messages: Array.from({ length: 100 }, (_, i) => big(i + 1)), hasMore: false };
    const h = setup({ page: async () => full, maxBufferedBytes: 64 * 1024 });
    const older = await h.service.history(USER, { roomId: ROOM, limit: 100 });
    const newer = await h.service.history(USER, { roomId: ROOM, afterSeq: 0, limit: 100 });
    for (const page of [older, newer]) {
      assert.ok(Buffer.byteLength(JSON.stringify(page)) <= 32 * 1024, `page of ${Buffer.byteLength(JSON.stringify(page))} bytes`);
      assert.equal(page.hasMore, true);
    }
    assert.deepEqual([older.messages.length, older.messages.at(-1)?.seq, newer.messages[0]?.seq], [3, 100, 1]);
    const joined = await h.service.join(USER, { roomId: ROOM, sinceSeq: 0 }, h.subscriber());
    assert.deepEqual([joined.missed?.length, joined.hasMore], [3, true]);
  });

  it('keeps one message even when it alone passes the budget, so paging moves on', async () => {
    const h = setup({
      page: async () => ({ messages: [makeMessage({ body: 'x'.repeat(40_000) })], hasMore: false }),
      maxBufferedBytes: 16 * 1024,
    });
    assert.equal((await h.service.history(USER, { roomId: ROOM })).messages.length, 1);
  });

  it('checks the user’s access to the room before reading the page', async () => {
    const h = setup();
    await h.service.history(USER, { roomId: ROOM });
    assert.deepEqual(h.calls, [`roomAccess:${ROOM}`, `page:${ROOM}`]);
    assert.deepEqual(h.roomAccess.mock.calls[0]?.arguments, [ROOM, USER]);
  });

  it('serves a member of a private room', async () => {
    const page: HistoryPage = { messages: [makeMessage()], hasMore: false };
    const h = setup({ roomAccess: async () => access('private', true, 1), page: async () => page });
    assert.deepEqual(await h.service.history(USER, { roomId: ROOM }), page);
  });

  it('refuses a non-member of a private room with FORBIDDEN without reading the page', async () => {
    const h = setup({ roomAccess: async () => access('private', false, 5) });
    await assert.rejects(h.service.history(USER, { roomId: ROOM }), chatError('FORBIDDEN'));
    assert.equal(h.page.mock.callCount(), 0);
    assert.deepEqual(h.calls, [`roomAccess:${ROOM}`]);
  });

  it('serves the (empty) page of a room that does not exist (roomAccess null) without creating it', async () => {
    const h = setup({ roomAccess: async () => null });
    assert.deepEqual(await h.service.history(USER, { roomId: 'nowhere' }), { messages: [], hasMore: false });
    assert.deepEqual(h.calls, ['roomAccess:nowhere', 'page:nowhere']);
    assert.equal(h.openRoom.mock.callCount(), 0);
  });

  it('skips the access check for a trusted caller (userId null), even on a private room', async () => {
    const page: HistoryPage = { messages: [makeMessage()], hasMore: true };
    const h = setup({ roomAccess: async () => access('private', false), page: async () => page });
    assert.deepEqual(await h.service.history(null, { roomId: ROOM, limit: 10 }), page);
    assert.equal(h.roomAccess.mock.callCount(), 0);
    assert.deepEqual(h.calls, [`page:${ROOM}`]);
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, limit: 10 }]);
  });

  it('propagates StorageUnavailableError from the access check without reading the page', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ roomAccess: async () => Promise.reject(failure) });
    await assert.rejects(h.service.history(USER, { roomId: ROOM }), (err: unknown) => err === failure);
    assert.equal(h.page.mock.callCount(), 0);
  });

  it('limits the history limit to MAX_HISTORY_PAGE and lowers the default to it', async () => {
    const h = setup({ maxHistoryPage: 20 });
    await h.service.history(USER, { roomId: ROOM, limit: 20 });
    await h.service.history(null, { roomId: ROOM });
    await assert.rejects(h.service.history(USER, { roomId: ROOM, limit: 21 }), validationFailed(['limit']));
    await assert.rejects(h.service.history(null, { roomId: ROOM, limit: 100 }), validationFailed(['limit']));
    assert.deepEqual(
      h.page.mock.calls.map((c) => c.arguments[0].limit),
      [20, 20],
    );
  });

  it('keeps the default limit 50 when MAX_HISTORY_PAGE is above it', async () => {
    const h = setup({ maxHistoryPage: 60 });
    await h.service.history(USER, { roomId: ROOM });
    await h.service.history(USER, { roomId: ROOM, limit: 60 });
    await assert.rejects(h.service.history(USER, { roomId: ROOM, limit: 61 }), validationFailed(['limit']));
    assert.deepEqual(
      h.page.mock.calls.map((c) => c.arguments[0].limit),
      [50, 60],
    );
  });
});

describe('ChatService.upsertRoom validation', () => {
  const refused: { name: string; data: unknown; fields: string[] }[] = [
    { name: 'a missing visibility', data: { roomId: ROOM }, fields: ['visibility'] },
    { name: 'an unknown visibility', data: { roomId: ROOM, visibility: 'secret' }, fields: ['visibility'] },
    { name: 'an upper-case visibility', data: { roomId: ROOM, visibility: 'PRIVATE' }, fields: ['visibility'] },
    { name: 'a null visibility', data: { roomId: ROOM, visibility: null }, fields: ['visibility'] },
    { name: 'a title of 201 characters', data: { roomId: ROOM, visibility: 'public', title: 't'.repeat(201) }, fields: ['title'] },
    { name: 'a numeric title', data: { roomId: ROOM, visibility: 'public', title: 5 }, fields: ['title'] },
    { name: 'metadata that is an array', data: { roomId: ROOM, visibility: 'public', metadata: [1, 2] }, fields: ['metadata'] },
    { name: 'metadata that is an empty array', data: { roomId: ROOM, visibility: 'public', metadata: [] }, fields: ['metadata'] },
    { name: 'metadata that is a string', data: { roomId: ROOM, visibility: 'public', metadata: '{}' }, fields: ['metadata'] },
    { name: 'metadata that is a number', data: { roomId: ROOM, visibility: 'public', metadata: 1 }, fields: ['metadata'] },
    {
      name: 'metadata over 16 KiB as JSON',
      data: { roomId: ROOM, visibility: 'public', metadata: { blob: 'x'.repeat(16 * 1024) } },
      fields: ['metadata'],
    },
    { name: 'a bad roomId', data: { roomId: '-room', visibility: 'public' }, fields: ['roomId'] },
    { name: 'non-object data', data: ['public'], fields: [] },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} with VALIDATION_FAILED and touches neither store nor broadcaster`, async () => {
      const h = setup();
      await assert.rejects(h.service.upsertRoom(c.data), validationFailed(c.fields));
      assert.deepEqual(h.calls, []);
    });
  }

  it('counts the 16 KiB metadata limit in UTF-8 bytes of its JSON, inclusive', async () => {
    const h = setup();
    const overhead = Buffer.byteLength(JSON.stringify({ blob: '' }));
    const atLimit = { blob: 'x'.repeat(16 * 1024 - overhead) };
    assert.equal(Buffer.byteLength(JSON.stringify(atLimit)), 16 * 1024);
    await h.service.upsertRoom({ roomId: ROOM, visibility: 'public', metadata: atLimit });
    assert.deepEqual(h.upsertRoom.mock.calls[0]?.arguments[0].metadata, atLimit);

    const multiByte = { blob: 'é'.repeat(Math.floor((16 * 1024 - overhead) / 2) + 1) };
    assert.ok(JSON.stringify(multiByte).length < 16 * 1024, 'fewer characters than the limit...');
    assert.ok(Buffer.byteLength(JSON.stringify(multiByte)) > 16 * 1024, '...but more UTF-8 bytes');
    await assert.rejects(h.service.upsertRoom({ roomId: ROOM, visibility: 'public', metadata: multiByte }), validationFailed(['metadata']));
    assert.equal(h.upsertRoom.mock.callCount(), 1);
  });

  it('accepts a title of 200 characters, a null title and null metadata', async () => {
    const h = setup();
    await h.service.upsertRoom({ roomId: ROOM, visibility: 'public', title: 't'.repeat(200), metadata: { a: [1, { b: null }] } });
    await h.service.upsertRoom({ roomId: ROOM, visibility: 'private', title: null, metadata: null });
    assert.deepEqual(
      h.upsertRoom.mock.calls.map((c) => c.arguments[0]),
      [
        {
          roomId: ROOM,
          visibility: 'public',
          title: 't'.repeat(200),
          metadata: { a: [1, { b: null }] },
          retentionDays: null,
          slowModeMs: 0,
        },
        { roomId: ROOM, visibility: 'private', title: null, metadata: null, retentionDays: null, slowModeMs: 0 },
      ],
    );
  });

  it('replaces: an omitted title or metadata reaches the store as null, and unknown keys are dropped', async () => {
    const h = setup();
    await h.service.upsertRoom({ roomId: ROOM, visibility: 'public', lastSeq: 99, createdAt: 'then' });
    const passed = h.upsertRoom.mock.calls[0]?.arguments[0];
    assert.deepEqual(passed, { roomId: ROOM, visibility: 'public', title: null, metadata: null, retentionDays: null, slowModeMs: 0 });
    assert.deepEqual(Object.keys(passed ?? {}).sort(), ['metadata', 'retentionDays', 'roomId', 'slowModeMs', 'title', 'visibility']);
  });
});

describe('ChatService.upsertRoom outcome', () => {
  it('returns the stored room with created true when the room is new', async () => {
    const room = makeRoom({ title: 'Lobby' });
    const h = setup({ upsertRoom: async () => ({ room, previous: null }) });
    const result = await h.service.upsertRoom({ roomId: ROOM, visibility: 'public', title: 'Lobby' });
    assert.deepEqual(result, { room, created: true });
    assert.equal(result.room, room);
  });

  for (const previous of ['public', 'private'] as const) {
    it(`returns created false when the room existed (previously ${previous})`, async () => {
      const h = setup({ upsertRoom: async (input) => ({ room: makeRoom(input), previous }) });
      const result = await h.service.upsertRoom({ roomId: ROOM, visibility: previous });
      assert.equal(result.created, false);
    });
  }

  const transitions: { previous: Visibility | null; next: Visibility; removes: boolean }[] = [
    { previous: 'public', next: 'private', removes: true },
    { previous: null, next: 'private', removes: true },
    { previous: 'private', next: 'private', removes: false },
    { previous: 'private', next: 'public', removes: false },
    { previous: 'public', next: 'public', removes: false },
    { previous: null, next: 'public', removes: false },
  ];
  for (const { previous, next, removes } of transitions) {
    it(`${removes ? 'takes' : 'does not take'} non-members out when the room goes ${previous ?? 'new'} → ${next}`, async () => {
      const h = setup({
        upsertRoom: async (input) => ({ room: makeRoom(input), previous }),
        listMembers: async () => [
          { userId: 'alice', role: 'member', lastReadSeq: 0 },
          { userId: 'bob', role: 'member', lastReadSeq: 3 },
        ],
      });
      await h.service.upsertRoom({ roomId: ROOM, visibility: next });
      if (removes) {
        assert.equal(h.removeNonMembers.mock.callCount(), 1);
        assert.deepEqual(
          h.removeNonMembers.mock.calls[0]?.arguments,
          [ROOM, ['alice', 'bob']],
          'the member list travels with the eviction',
        );
        assert.deepEqual(h.calls, [`upsertRoom:${ROOM}`, `listMembers:${ROOM}`, `removeNonMembers:${ROOM}`]);
      } else {
        assert.equal(h.removeNonMembers.mock.callCount(), 0);
        assert.deepEqual(h.calls, [`upsertRoom:${ROOM}`]);
      }
      assert.equal(h.removeUsers.mock.callCount(), 0);
      assert.equal(h.publish.mock.callCount(), 0);
    });
  }

  it('decides on the visibility the store reports, not on the request', async () => {
    // The store is the truth: a room it reports as private (from public) loses its non-members.
    const h = setup({ upsertRoom: async () => ({ room: makeRoom({ visibility: 'private' }), previous: 'public' }) });
    await h.service.upsertRoom({ roomId: ROOM, visibility: 'private' });
    assert.equal(h.removeNonMembers.mock.callCount(), 1);
  });

  it('propagates StorageUnavailableError and takes nobody out', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ upsertRoom: async () => Promise.reject(failure) });
    await assert.rejects(h.service.upsertRoom({ roomId: ROOM, visibility: 'private' }), (err: unknown) => err === failure);
    assert.equal(h.removeNonMembers.mock.callCount(), 0);
  });
});

describe('ChatService.getRoom and listMembers', () => {
  it('getRoom returns the stored room', async () => {
    const room = makeRoom({ roomId: 'r1', visibility: 'private', lastSeq: 8 });
    const h = setup({ getRoom: async () => room });
    assert.equal(await h.service.getRoom({ roomId: 'r1', extra: 1 }), room);
    assert.deepEqual(h.getRoom.mock.calls[0]?.arguments, ['r1']);
  });

  it('getRoom answers NOT_FOUND naming the room when the store returns null', async () => {
    const h = setup({ getRoom: async () => null });
    await assert.rejects(h.service.getRoom({ roomId: 'ghost' }), (err: unknown) => {
      chatError('NOT_FOUND')(err);
      assert.match((err as ChatError).message, /ghost/);
      return true;
    });
  });

  it('listMembers returns the stored members', async () => {
    const members: Member[] = [
      { userId: 'a', role: 'owner', lastReadSeq: 0 },
      { userId: 'b', role: 'member', lastReadSeq: 4 },
    ];
    const h = setup({ listMembers: async () => members });
    assert.equal(await h.service.listMembers({ roomId: ROOM }), members);
    assert.deepEqual(h.listMembers.mock.calls[0]?.arguments, [ROOM]);
  });

  it('listMembers returns an empty list for a room without members', async () => {
    const h = setup({ listMembers: async () => [] });
    assert.deepEqual(await h.service.listMembers({ roomId: ROOM }), []);
  });

  it('listMembers answers NOT_FOUND when the store returns null', async () => {
    const h = setup({ listMembers: async () => null });
    await assert.rejects(h.service.listMembers({ roomId: 'ghost' }), chatError('NOT_FOUND'));
  });

  it('both refuse a bad roomId without touching the store', async () => {
    const h = setup();
    await assert.rejects(h.service.getRoom({ roomId: 'a/b' }), validationFailed(['roomId']));
    await assert.rejects(h.service.listMembers({}), validationFailed(['roomId']));
    assert.deepEqual(h.calls, []);
  });
});

describe('ChatService.addMember', () => {
  it('adds the member and resolves with nothing, taking nobody out', async () => {
    const h = setup();
    assert.equal(await h.service.addMember({ roomId: ROOM, userId: USER }), undefined);
    assert.deepEqual(h.setMember.mock.calls[0]?.arguments, [ROOM, USER, true, undefined]);
    assert.deepEqual(h.calls, [`setMember:${ROOM}:${USER}:true`]);
  });

  it('passes a role on, and refuses one that is not owner, moderator or member', async () => {
    const h = setup();
    await h.service.addMember({ roomId: ROOM, userId: USER, role: 'moderator' });
    assert.deepEqual(h.setMember.mock.calls[0]?.arguments, [ROOM, USER, true, 'moderator']);
    for (const role of ['admin', 'MODERATOR', null, 3])
      await assert.rejects(h.service.addMember({ roomId: ROOM, userId: USER, role }), (err: ChatError) => {
        assert.equal(err.code, 'VALIDATION_FAILED');
        assert.deepEqual(err.details?.fields, ['role']);
        return true;
      });
    assert.equal(h.setMember.mock.callCount(), 1, 'nothing stored for a refused role');
  });

  it('is idempotent: an unchanged membership still succeeds', async () => {
    const h = setup({ setMember: async () => ({ changed: false }) });
    await h.service.addMember({ roomId: ROOM, userId: USER });
    assert.equal(h.setMember.mock.callCount(), 1);
  });

  it('answers NOT_FOUND when the room does not exist', async () => {
    const h = setup({ setMember: async () => null });
    await assert.rejects(h.service.addMember({ roomId: 'ghost', userId: USER }), chatError('NOT_FOUND'));
  });

  const refused: { name: string; data: unknown; fields: string[] }[] = [
    { name: 'a missing userId', data: { roomId: ROOM }, fields: ['userId'] },
    { name: 'an empty userId', data: { roomId: ROOM, userId: '' }, fields: ['userId'] },
    { name: 'a userId of 129 characters', data: { roomId: ROOM, userId: 'u'.repeat(129) }, fields: ['userId'] },
    { name: 'a bad roomId', data: { roomId: 'a b', userId: USER }, fields: ['roomId'] },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} without touching the store`, async () => {
      const h = setup();
      await assert.rejects(h.service.addMember(c.data), validationFailed(c.fields));
      await assert.rejects(h.service.removeMember(c.data), validationFailed(c.fields));
      assert.deepEqual(h.calls, []);
    });
  }
});

describe('ChatService.removeMember', () => {
  it('takes the user’s live connections out of the room when the membership was removed', async () => {
    const h = setup();
    assert.equal(await h.service.removeMember({ roomId: ROOM, userId: USER }), undefined);
    assert.deepEqual(h.setMember.mock.calls[0]?.arguments, [ROOM, USER, false]);
    assert.equal(h.removeUsers.mock.callCount(), 1);
    assert.deepEqual(h.removeUsers.mock.calls[0]?.arguments, [ROOM, [USER]]);
    assert.equal(h.removeNonMembers.mock.callCount(), 0);
  });

  it('evicts again on a repeated removal, so a retry after UNAVAILABLE still takes the user out', async () => {
    const h = setup({ setMember: async () => ({ changed: false }) });
    await h.service.removeMember({ roomId: ROOM, userId: USER });
    assert.equal(h.removeUsers.mock.callCount(), 1);
    assert.deepEqual(h.calls, [`setMember:${ROOM}:${USER}:false`, `removeUsers:${ROOM}:${USER}`]);
  });

  it('answers NOT_FOUND when the room does not exist and takes nobody out', async () => {
    const h = setup({ setMember: async () => null });
    await assert.rejects(h.service.removeMember({ roomId: 'ghost', userId: USER }), chatError('NOT_FOUND'));
    assert.equal(h.removeUsers.mock.callCount(), 0);
    assert.equal(h.getRoom.mock.callCount(), 0);
  });

  it('propagates StorageUnavailableError from setMember', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ setMember: async () => Promise.reject(failure) });
    await assert.rejects(h.service.removeMember({ roomId: ROOM, userId: USER }), (err: unknown) => err === failure);
    assert.equal(h.removeUsers.mock.callCount(), 0);
  });
});

describe('ChatService read state', () => {
  it('join replies carry lastReadSeq and unread from the access read after subscribing', async () => {
    const h = setup({ roomAccess: async () => access('public', false, 10, 4) });
    assert.deepEqual(await h.service.join(USER, { roomId: ROOM }, h.subscriber()), {
      roomId: ROOM,
      lastSeq: 10,
      role: 'member',
      lastModSeq: 10,
      lastReadSeq: 4,
      unread: 6,
    });
  });

  it('counts unread against the newest missed seq', async () => {
    const missed = [makeMessage({ seq: 11 }), makeMessage({ seq: 12 })];
    const h = setup({ roomAccess: async () => access('public', false, 10, 4), page: async () => ({ messages: missed, hasMore: false }) });
    const result = await h.service.join(USER, { roomId: ROOM, sinceSeq: 10 }, h.subscriber());
    assert.equal(result.lastSeq, 12);
    assert.equal(result.unread, 8);
  });

  it('message.read pushes a receipt to the room only when the position grew', async () => {
    const h = setup({ markRead: async (_r, _u, seq) => ({ outcome: 'read', lastReadSeq: 5, grew: seq === 5 }) });
    assert.deepEqual(await h.service.read(USER, { roomId: ROOM, seq: 5 }), { roomId: ROOM, lastReadSeq: 5 });
    assert.deepEqual(h.publish.mock.calls[0]?.arguments, [ROOM, 'receipt', { roomId: ROOM, userId: USER, seq: 5 }]);
    assert.deepEqual(await h.service.read(USER, { roomId: ROOM, seq: 3 }), { roomId: ROOM, lastReadSeq: 5 });
    assert.equal(h.publish.mock.callCount(), 1);
  });

  it('message.read answers FORBIDDEN for a non-member of a private room', async () => {
    const h = setup({ markRead: async () => ({ outcome: 'forbidden' }) });
    await assert.rejects(h.service.read(USER, { roomId: ROOM, seq: 1 }), chatError('FORBIDDEN'));
    assert.equal(h.publish.mock.callCount(), 0);
  });

  for (const data of [{ roomId: ROOM }, { roomId: ROOM, seq: -1 }, { roomId: ROOM, seq: 1.5 }, { roomId: ROOM, seq: '3' }]) {
    it(`message.read refuses ${JSON.stringify(data)} without touching the store`, async () => {
      const h = setup();
      await assert.rejects(h.service.read(USER, data), validationFailed(['seq']));
      assert.deepEqual(h.calls, []);
    });
  }
});

describe('ChatService.listRooms (rooms.list)', () => {
  const room = (roomId: string): RoomReadState => ({ roomId, lastSeq: 3, lastReadSeq: 1, unread: 2 });

  it('asks the store for a page of up to 1000 rooms by default, and returns its page', async () => {
    const page = { rooms: [room('a')], hasMore: false };
    const h = setup({ listRooms: async () => page });
    assert.deepEqual(await h.service.listRooms(USER, {}), page);
    assert.deepEqual(h.listRooms.mock.calls[0]?.arguments, [{ userId: USER, afterRoomId: undefined, limit: 1000 }]);
  });

  it('passes limit and afterRoomId on, and the store’s hasMore back', async () => {
    const page = { rooms: [room('b'), room('c')], hasMore: true };
    const h = setup({ listRooms: async () => page });
    assert.deepEqual(await h.service.listRooms(USER, { limit: 2, afterRoomId: 'a' }), page);
    assert.deepEqual(h.listRooms.mock.calls[0]?.arguments, [{ userId: USER, afterRoomId: 'a', limit: 2 }]);
  });

  const refused: [unknown, string[]][] = [
    [null, []],
    ['{}', []],
    [{ limit: 0 }, ['limit']],
    [{ limit: 1001 }, ['limit']],
    [{ limit: 2.5 }, ['limit']],
    [{ limit: '5' }, ['limit']],
    [{ limit: null }, ['limit']],
    [{ afterRoomId: '' }, ['afterRoomId']],
    [{ afterRoomId: 'a/b' }, ['afterRoomId']],
    [{ afterRoomId: 'x'.repeat(129) }, ['afterRoomId']],
    [{ afterRoomId: 7 }, ['afterRoomId']],
    [{ limit: -1, afterRoomId: '-a' }, ['limit', 'afterRoomId']],
  ];
  for (const [data, fields] of refused) {
    it(`refuses ${JSON.stringify(data)} with VALIDATION_FAILED naming ${JSON.stringify(fields)}, without touching the store`, async () => {
      const h = setup();
      await assert.rejects(h.service.listRooms(USER, data), validationFailed(fields));
      assert.deepEqual(h.calls, []);
    });
  }

  it('cuts a page to half of MAX_BUFFERED_BYTES, keeping the first rooms, with hasMore', async () => {
    const rooms = Array.from({ length: 1000 }, (_, i) => room(`${String(i).padStart(4, '0')}-${'r'.repeat(120)}`));
    const h = setup({ listRooms: async () => ({ rooms, hasMore: false }), maxBufferedBytes: 16 * 1024 });
    const page = await h.service.listRooms(USER, {});
    assert.equal(page.hasMore, true);
    assert.ok(page.rooms.length > 0 && page.rooms.length < 1000, `${page.rooms.length} rooms`);
    assert.deepEqual(page.rooms, rooms.slice(0, page.rooms.length), 'the first rooms, in order');
    assert.ok(Buffer.byteLength(JSON.stringify(page)) <= 8 * 1024 + 100, `${Buffer.byteLength(JSON.stringify(page))} bytes`);
    const small = { rooms: rooms.slice(0, 10), hasMore: false };
    const h2 = setup({ listRooms: async () => small, maxBufferedBytes: 16 * 1024 });
    assert.deepEqual(await h2.service.listRooms(USER, {}), small, 'a page within the budget is left alone');
  });
});

describe('ChatService: rooms created by a user (ROOM_CREATE_LIMIT)', () => {
  /**
   * A store where the rooms of `existing` exist, and createRoom or an append allowed to create
   * adds one (an append that is not answers missing).
   */
  function withRooms(existing: string[], roomCreations = { perUser: 2, windowMs: CREATION_WINDOW_MS }) {
    const rooms = new Set(existing);
    const h = setup({
      roomCreations,
      openRoom: async (roomId) => (rooms.has(roomId) ? access('public', false) : null),
      roomExists: async (roomId) => rooms.has(roomId),
      append: async (input, { createRoom }) => {
        if (!rooms.has(input.roomId) && !createRoom) return { outcome: 'missing' };
        rooms.add(input.roomId);
        return { outcome: 'created', message: makeMessage({ roomId: input.roomId, body: input.body }) };
      },
    });
    h.createRoom.mock.mockImplementation(async (roomId) => {
      h.calls.push(`createRoom:${roomId}`);
      rooms.add(roomId);
    });
    return h;
  }

  it('a join of an existing room is not counted', async () => {
    const h = withRooms([ROOM]);
    await h.service.join(USER, { roomId: ROOM }, h.subscriber());
    assert.deepEqual(h.calls, [`openRoom:${ROOM}`, `subscribe:${ROOM}`, `roomAccess:${ROOM}`]);
  });

  it('a join of a missing room looks once more, counts it, then creates it, then opens it', async () => {
    const h = withRooms([]);
    await h.service.join(USER, { roomId: 'fresh' }, h.subscriber());
    assert.deepEqual(h.calls, [
      'openRoom:fresh',
      'roomExists:fresh',
      `countCreation:${USER}`,
      'createRoom:fresh',
      'openRoom:fresh',
      'subscribe:fresh',
      'roomAccess:fresh',
    ]);
  });

  it('past the cap a join answers RATE_LIMITED with retryAfterMs and creates and subscribes nothing', async () => {
    const h = withRooms([ROOM]);
    await h.service.join(USER, { roomId: 'new-1' }, h.subscriber());
    await h.service.send(USER, { roomId: 'new-2', body: 'hi' });
    h.calls.length = 0;
    const sub = h.subscriber();
    await assert.rejects(h.service.join(USER, { roomId: 'new-3' }, sub), (err: unknown) => {
      chatError('RATE_LIMITED')(err);
      const { retryAfterMs } = (err as ChatError).details as { retryAfterMs: number };
      assert.ok(retryAfterMs > 0 && retryAfterMs <= CREATION_WINDOW_MS, `retryAfterMs ${retryAfterMs}`);
      return true;
    });
    assert.deepEqual(h.calls, ['openRoom:new-3', 'roomExists:new-3', `countCreation:${USER}`]);
    assert.equal(sub.join.mock.callCount(), 0);
    await h.service.join(USER, { roomId: ROOM }, h.subscriber());
    await h.service.join('someone-else', { roomId: 'new-3' }, h.subscriber());
  });

  it('a send to a missing room counts it before storing; past the cap RATE_LIMITED and nothing is stored', async () => {
    const h = withRooms([ROOM], { perUser: 1, windowMs: CREATION_WINDOW_MS });
    await h.service.send(USER, { roomId: ROOM, body: 'existing room' });
    await h.service.send(USER, { roomId: 'new-1', body: 'creates it' });
    assert.deepEqual(h.countCreation.mock.callCount(), 1);
    await assert.rejects(h.service.send(USER, { roomId: 'new-2', body: 'one too many' }), chatError('RATE_LIMITED'));
    assert.deepEqual(
      h.append.mock.calls.filter((c) => c.arguments[1].createRoom).map((c) => c.arguments[0].roomId),
      ['new-1'],
      'only the charged send may create its room',
    );
    assert.deepEqual(
      h.publish.mock.calls.map((c) => c.arguments[0]),
      [ROOM, 'new-1'],
      'nothing stored for new-2',
    );
  });

  it('a burst of sends into a new room is charged once: the others wait for its creation', async () => {
    const h = withRooms([], { perUser: 1, windowMs: CREATION_WINDOW_MS });
    const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => h.service.send(USER, { roomId: 'burst', body: `m${i}` })));
    assert.equal(sent.length, 10);
    assert.equal(h.countCreation.mock.callCount(), 1);
    assert.equal(h.append.mock.calls.filter((c) => c.arguments[1].createRoom).length, 1, 'one append creates the room');
    assert.equal(h.publish.mock.callCount(), 10, 'every message stored once');
  });

  it('an answer "missing" that predates a creation which finished meanwhile is looked at again, not charged', async () => {
    const h = withRooms([]);
    await h.service.join(USER, { roomId: 'raced' }, h.subscriber());
    h.openRoom.mock.mockImplementationOnce(async () => null);
    await h.service.join(USER, { roomId: 'raced' }, h.subscriber());
    assert.equal(h.countCreation.mock.callCount(), 1);
    assert.equal(h.createRoom.mock.callCount(), 1);
  });

  it('two users joining one new room at once on an instance: one is charged, the other finds the room', async () => {
    const h = withRooms([]);
    await Promise.all([
      h.service.join(USER, { roomId: 'shared' }, h.subscriber()),
      h.service.join(SENDER, { roomId: 'shared' }, h.subscriber()),
    ]);
    assert.deepEqual(
      h.countCreation.mock.calls.map((c) => c.arguments[0]),
      [USER],
    );
    assert.equal(h.createRoom.mock.callCount(), 1);
  });

  it('when the creating user is refused, a user waiting on that creation tries with its own budget', async () => {
    const h = withRooms([], { perUser: 1, windowMs: CREATION_WINDOW_MS });
    await h.service.join(USER, { roomId: 'spent-it' }, h.subscriber());
    const [refused, joined] = await Promise.allSettled([
      h.service.join(USER, { roomId: 'contested' }, h.subscriber()),
      h.service.join(SENDER, { roomId: 'contested' }, h.subscriber()),
    ]);
    assert.equal(refused.status, 'rejected');
    chatError('RATE_LIMITED')((refused as PromiseRejectedResult).reason);
    assert.equal(joined.status, 'fulfilled');
    assert.deepEqual(
      h.countCreation.mock.calls.map((c) => c.arguments[0]),
      [USER, USER, SENDER],
    );
    assert.deepEqual(
      h.createRoom.mock.calls.map((c) => c.arguments[0]),
      ['spent-it', 'contested'],
    );
  });

  it('trusted posts (HTTP API, commands) and explicit upserts create rooms without counting', async () => {
    const h = withRooms([], { perUser: 1, windowMs: CREATION_WINDOW_MS });
    for (let i = 0; i < 3; i++) await h.service.post({ roomId: `posted-${i}`, senderId: USER, body: 'hi' });
    for (let i = 0; i < 3; i++) await h.service.upsertRoom({ roomId: `upserted-${i}`, visibility: 'public' });
    assert.equal(h.countCreation.mock.callCount(), 0);
    assert.equal(h.roomExists.mock.callCount(), 0);
  });
});

describe('ChatService typing', () => {
  function typingConnection() {
    const closers: (() => void)[] = [];
    const leavers: ((roomId: string) => void)[] = [];
    return {
      onClose: (l: () => void) => void closers.push(l),
      close: () => closers.forEach((l) => l()),
      onLeave: (l: (roomId: string) => void) => void leavers.push(l),
      /** What an eviction does: the connection leaves without a room.leave request. */
      evict: (roomId: string) => leavers.forEach((l) => l(roomId)),
    };
  }

  it('pushes typing to the others once per start, not on renewals, and false on stop', async () => {
    const h = setup();
    const conn = typingConnection();
    assert.deepEqual(await h.service.typingStart(USER, { roomId: ROOM }, conn), { roomId: ROOM });
    await h.service.typingStart(USER, { roomId: ROOM }, conn);
    assert.deepEqual(await h.service.typingStop(USER, { roomId: ROOM }, conn), { roomId: ROOM });
    assert.deepEqual(
      h.publishToOthers.mock.calls.map((c) => c.arguments),
      [
        [ROOM, 'typing', { roomId: ROOM, userId: USER, typing: true }, USER],
        [ROOM, 'typing', { roomId: ROOM, userId: USER, typing: false }, USER],
      ],
    );
  });

  it('stops typing when the connection leaves the room or closes', async () => {
    const h = setup();
    const conn = Object.assign(typingConnection(), h.subscriber());
    await h.service.typingStart(USER, { roomId: ROOM }, conn);
    await h.service.leave(USER, { roomId: ROOM }, conn);
    await h.service.typingStart(USER, { roomId: 'other' }, conn);
    conn.close();
    assert.deepEqual(
      h.publishToOthers.mock.calls.map((c) => [c.arguments[0], (c.arguments[2] as { typing: boolean }).typing]),
      [
        [ROOM, true],
        [ROOM, false],
        ['other', true],
        ['other', false],
      ],
    );
  });

  it('stops typing when the connection is evicted from the room', async () => {
    const h = setup();
    const conn = typingConnection();
    await h.service.typingStart(USER, { roomId: ROOM }, conn);
    conn.evict(ROOM);
    assert.deepEqual(
      h.publishToOthers.mock.calls.map((c) => (c.arguments[2] as { typing: boolean }).typing),
      [true, false],
    );
  });

  it('checks access on every renewal: a member removed while typing gets FORBIDDEN and the typing ends', async () => {
    let member = true;
    const h = setup({ roomAccess: async () => access('private', member) });
    const conn = typingConnection();
    await h.service.typingStart(USER, { roomId: ROOM }, conn);
    member = false;
    await assert.rejects(h.service.typingStart(USER, { roomId: ROOM }, conn), chatError('FORBIDDEN'));
    await assert.rejects(h.service.typingStart(USER, { roomId: ROOM }, conn), chatError('FORBIDDEN'));
    assert.equal(h.roomAccess.mock.callCount(), 3);
    assert.deepEqual(
      h.publishToOthers.mock.calls.map((c) => (c.arguments[2] as { typing: boolean }).typing),
      [true, false],
      'the refused renewal ends the typing once; nothing starts again',
    );
  });

  it('answers FORBIDDEN to a non-member of a private room on start and stop, and pushes nothing', async () => {
    const h = setup({ roomAccess: async () => access('private', false) });
    const conn = typingConnection();
    await assert.rejects(h.service.typingStart(USER, { roomId: ROOM }, conn), chatError('FORBIDDEN'));
    await assert.rejects(h.service.typingStop(USER, { roomId: ROOM }, conn), chatError('FORBIDDEN'));
    assert.equal(h.publishToOthers.mock.callCount(), 0);
  });
});
