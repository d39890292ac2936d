import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import type { Mock } from 'node:test';
import { ChatError, StorageUnavailableError } from './chat.errors.js';
import type { HistoryPage, Message } from './chat.events.js';
import type { MessageStore, NewMessage, PageQuery, RoomBroadcaster } from './chat.ports.js';
import { ChatService } from './chat.service.js';

const ROOM = 'lobby';
const SENDER = 'user-alice';

function makeMessage(overrides: Partial<Message> = {}): Message {
  return {
    id: 'msg-1',
    roomId: ROOM,
    seq: 1,
    senderId: SENDER,
    body: 'hello',
    clientMsgId: null,
    createdAt: '2024-01-01T00:00:00.000Z',
    ...overrides,
  };
}

interface FakeBehaviour {
  append?: (input: NewMessage) => Promise<{ message: Message; created: boolean }>;
  openRoom?: (roomId: string) => Promise<number>;
  page?: (query: PageQuery) => Promise<HistoryPage>;
  maxMessageLength?: number;
}

interface Harness {
  service: ChatService;
  append: Mock<(input: NewMessage) => Promise<{ message: Message; created: boolean }>>;
  openRoom: Mock<(roomId: string) => Promise<number>>;
  page: Mock<(query: PageQuery) => Promise<HistoryPage>>;
  publish: Mock<(roomId: string, event: string, data: unknown) => void>;
  /** Every store/broadcaster/subscription call in the order it happened. */
  calls: string[];
}

/** A ChatService wired to hand-written fakes that record every call. */
function setup(behaviour: FakeBehaviour = {}): Harness {
  const calls: string[] = [];
  const append = mock.fn(async (input: NewMessage) => {
    calls.push(`append:${input.roomId}`);
    if (behaviour.append) return behaviour.append(input);
    return { message: makeMessage({ roomId: input.roomId, body: input.body, clientMsgId: input.clientMsgId }), created: true };
  });
  const openRoom = mock.fn(async (roomId: string) => {
    calls.push(`openRoom:${roomId}`);
    return behaviour.openRoom ? behaviour.openRoom(roomId) : 0;
  });
  const page = mock.fn(async (query: PageQuery) => {
    calls.push(`page:${query.roomId}`);
    return behaviour.page ? behaviour.page(query) : { messages: [], hasMore: false };
  });
  const publish = mock.fn((roomId: string, event: string, data: unknown) => {
    void data;
    calls.push(`publish:${roomId}:${event}`);
  });
  const store: MessageStore = { append, openRoom, page };
  const broadcaster: RoomBroadcaster = { publish };
  const service = new ChatService(store, broadcaster, { maxMessageLength: behaviour.maxMessageLength ?? 4000 });
  return { service, append, openRoom, page, publish, calls };
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
  it('passes only roomId, the authenticated senderId, body and clientMsgId to the store', async () => {
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
    assert.deepEqual(h.append.mock.calls[0]?.arguments, [{ roomId: ROOM, senderId: SENDER, body: 'hi', clientMsgId: 'c-1' }]);
  });

  it('drops a __proto__ key coming from JSON.parse and passes clientMsgId null when absent', async () => {
    const h = setup();
    const data: unknown = JSON.parse('{"__proto__":{"senderId":"mallory","polluted":true},"roomId":"lobby","body":"hi"}');
    await h.service.send(SENDER, data);
    const passed = h.append.mock.calls[0]?.arguments[0];
    assert.ok(passed);
    assert.deepEqual(passed, { roomId: ROOM, senderId: SENDER, body: 'hi', clientMsgId: null });
    assert.deepEqual(Object.keys(passed).sort(), ['body', 'clientMsgId', 'roomId', 'senderId']);
    assert.equal(Object.hasOwn(passed, '__proto__'), false);
    assert.equal(Object.getPrototypeOf(passed), Object.prototype);
    assert.equal((passed as unknown as Record<string, unknown>)['polluted'], undefined);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  it('publishes a newly created message once as message.new to its room and returns it', async () => {
    const stored = makeMessage({ id: 'm-42', seq: 42, body: 'hi', clientMsgId: 'c-1' });
    const h = setup({ append: async () => ({ message: stored, created: true }) });
    const result = await h.service.send(SENDER, { roomId: ROOM, body: 'hi', clientMsgId: 'c-1' });
    assert.equal(result, stored);
    assert.equal(h.publish.mock.callCount(), 1);
    assert.deepEqual(h.publish.mock.calls[0]?.arguments, [ROOM, 'message.new', stored]);
    assert.equal(h.publish.mock.calls[0]?.arguments[2], stored);
    assert.deepEqual(h.calls, [`append:${ROOM}`, `publish:${ROOM}:message.new`]);
  });

  it('does not publish a duplicate (created: false) but still returns the stored message', async () => {
    const stored = makeMessage({ id: 'm-7', seq: 7, clientMsgId: 'c-1' });
    const h = setup({ append: async () => ({ message: stored, created: false }) });
    const result = await h.service.send(SENDER, { roomId: ROOM, body: 'hello', clientMsgId: 'c-1' });
    assert.deepEqual(result, stored);
    assert.equal(h.append.mock.callCount(), 1);
    assert.equal(h.publish.mock.callCount(), 0);
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
});

describe('ChatService.join', () => {
  it('subscribes before opening the room and returns lastSeq without missed/hasMore keys', async () => {
    const h = setup({ openRoom: async () => 17 });
    const subscribe = mock.fn((roomId: string) => {
      h.calls.push(`subscribe:${roomId}`);
    });
    const result = await h.service.join({ roomId: ROOM }, subscribe);
    assert.deepEqual(result, { roomId: ROOM, lastSeq: 17 });
    assert.equal(Object.hasOwn(result, 'missed'), false);
    assert.equal(Object.hasOwn(result, 'hasMore'), false);
    assert.deepEqual(h.calls, [`subscribe:${ROOM}`, `openRoom:${ROOM}`]);
    assert.equal(subscribe.mock.callCount(), 1);
    assert.equal(h.page.mock.callCount(), 0);
  });

  it('with sinceSeq reads one page after it and returns missed/hasMore from the store', async () => {
    const missed = [makeMessage({ id: 'a', seq: 6 }), makeMessage({ id: 'b', seq: 7 })];
    const h = setup({ openRoom: async () => 7, page: async () => ({ messages: missed, hasMore: true }) });
    const subscribe = mock.fn((roomId: string) => {
      h.calls.push(`subscribe:${roomId}`);
    });
    const result = await h.service.join({ roomId: ROOM, sinceSeq: 5 }, subscribe);
    assert.deepEqual(result, { roomId: ROOM, lastSeq: 7, missed, hasMore: true });
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, afterSeq: 5, limit: 100 }]);
    assert.deepEqual(h.calls, [`subscribe:${ROOM}`, `openRoom:${ROOM}`, `page:${ROOM}`]);
  });

  it('reports lastSeq as the newest missed seq when a message was committed after openRoom', async () => {
    const missed = [makeMessage({ seq: 1 }), makeMessage({ seq: 2 }), makeMessage({ seq: 3 })];
    const h = setup({ openRoom: async () => 2, page: async () => ({ messages: missed, hasMore: false }) });
    const result = await h.service.join({ roomId: ROOM, sinceSeq: 0 }, () => undefined);
    assert.equal(result.lastSeq, 3);
    assert.equal(result.hasMore, false);
    assert.equal(result.missed, missed);
  });

  it('keeps the openRoom lastSeq when it is newer than the missed page (hasMore)', async () => {
    const missed = [makeMessage({ seq: 11 }), makeMessage({ seq: 12 })];
    const h = setup({ openRoom: async () => 250, page: async () => ({ messages: missed, hasMore: true }) });
    const result = await h.service.join({ roomId: ROOM, sinceSeq: 10 }, () => undefined);
    assert.equal(result.lastSeq, 250);
  });

  it('with sinceSeq on an empty room returns missed [] and hasMore false with lastSeq 0', async () => {
    const h = setup();
    const result = await h.service.join({ roomId: ROOM, sinceSeq: 0 }, () => undefined);
    assert.deepEqual(result, { roomId: ROOM, lastSeq: 0, missed: [], hasMore: false });
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
      const subscribe = mock.fn((roomId: string) => void roomId);
      await assert.rejects(h.service.join(data, subscribe), validationFailed(fields));
      assert.equal(subscribe.mock.callCount(), 0);
      assert.deepEqual(h.calls, []);
    }
  });

  it('propagates StorageUnavailableError from openRoom', async () => {
    const h = setup({ openRoom: async () => Promise.reject(new StorageUnavailableError()) });
    await assert.rejects(
      h.service.join({ roomId: ROOM }, () => undefined),
      (err: unknown) => {
        assert.ok(err instanceof StorageUnavailableError);
        assert.equal(err.code, 'UNAVAILABLE');
        return true;
      },
    );
    assert.equal(h.publish.mock.callCount(), 0);
  });
});

describe('ChatService.leave', () => {
  it('unsubscribes from the room and returns { roomId }', async () => {
    const h = setup();
    const unsubscribe = mock.fn((roomId: string) => void roomId);
    const result = await h.service.leave({ roomId: ROOM, extra: true }, unsubscribe);
    assert.deepEqual(result, { roomId: ROOM });
    assert.equal(unsubscribe.mock.callCount(), 1);
    assert.deepEqual(unsubscribe.mock.calls[0]?.arguments, [ROOM]);
    assert.deepEqual(h.calls, []);
  });

  it('refuses a bad roomId without unsubscribing', async () => {
    const h = setup();
    const unsubscribe = mock.fn((roomId: string) => void roomId);
    await assert.rejects(h.service.leave({ roomId: '.hidden' }, unsubscribe), validationFailed(['roomId']));
    await assert.rejects(h.service.leave('lobby', unsubscribe), validationFailed([]));
    assert.equal(unsubscribe.mock.callCount(), 0);
  });
});

describe('ChatService.history', () => {
  it('passes the default limit 50 to store.page and returns its page', async () => {
    const page: HistoryPage = { messages: [makeMessage({ seq: 3 })], hasMore: true };
    const h = setup({ page: async () => page });
    const result = await h.service.history({ roomId: ROOM });
    assert.equal(result, page);
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, limit: 50 }]);
  });

  it('passes beforeSeq, afterSeq and limit through and drops unknown keys', async () => {
    const h = setup();
    await h.service.history({ roomId: ROOM, beforeSeq: 10, limit: 100, senderId: 'x' });
    await h.service.history({ roomId: ROOM, afterSeq: 0, limit: 1 });
    assert.deepEqual(h.page.mock.calls[0]?.arguments, [{ roomId: ROOM, beforeSeq: 10, limit: 100 }]);
    assert.deepEqual(h.page.mock.calls[1]?.arguments, [{ roomId: ROOM, afterSeq: 0, limit: 1 }]);
  });

  it('refuses beforeSeq combined with afterSeq', async () => {
    const h = setup();
    await assert.rejects(async () => h.service.history({ roomId: ROOM, beforeSeq: 10, afterSeq: 2 }), validationFailed(['beforeSeq']));
    assert.equal(h.page.mock.callCount(), 0);
  });

  for (const limit of [0, 101, -1, 1e9, '10', 1.5, null, Number.NaN]) {
    it(`refuses limit ${typeof limit === 'string' ? JSON.stringify(limit) : String(limit)}`, async () => {
      const h = setup();
      await assert.rejects(async () => h.service.history({ roomId: ROOM, limit }), validationFailed(['limit']));
      assert.equal(h.page.mock.callCount(), 0);
    });
  }

  it('refuses negative or fractional beforeSeq/afterSeq', async () => {
    const h = setup();
    await assert.rejects(async () => h.service.history({ roomId: ROOM, beforeSeq: -1 }), validationFailed(['beforeSeq']));
    await assert.rejects(async () => h.service.history({ roomId: ROOM, afterSeq: 2.5 }), validationFailed(['afterSeq']));
    assert.equal(h.page.mock.callCount(), 0);
  });

  it('propagates StorageUnavailableError from page', async () => {
    const failure = new StorageUnavailableError();
    const h = setup({ page: async () => Promise.reject(failure) });
    await assert.rejects(h.service.history({ roomId: ROOM }), (err: unknown) => err === failure);
    assert.equal(h.publish.mock.callCount(), 0);
  });
});
