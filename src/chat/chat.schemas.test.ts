import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChatError } from './chat.errors.js';
import { createSchemas, DEFAULT_PAGE, MAX_PAGE, MAX_ROOMS_PAGE, parseInput, userRef } from './chat.schemas.js';

const schemas = createSchemas({ maxMessageLength: 4000 });

/** Runs parseInput expecting a VALIDATION_FAILED ChatError and returns it. */
function refusal(run: () => unknown): ChatError {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ChatError, `expected a ChatError, got ${String(caught)}`);
  assert.equal(caught.code, 'VALIDATION_FAILED');
  return caught;
}

describe('roomId', () => {
  const accepted = ['a', '0', 'Z'.repeat(128), 'a' + '-'.repeat(127), 'room.with_all:kinds-of-chars', 'a.', '9:'];
  for (const roomId of accepted) {
    it(`accepts ${JSON.stringify(roomId.length > 20 ? `${roomId.slice(0, 8)}… (${roomId.length} chars)` : roomId)}`, () => {
      assert.deepEqual(parseInput(schemas.leave, { roomId }), { roomId });
    });
  }

  const refused: [string, unknown][] = [
    ['129 chars', 'a'.repeat(129)],
    ['empty', ''],
    ['leading dash', '-room'],
    ['leading dot', '.room'],
    ['leading underscore', '_room'],
    ['leading colon', ':room'],
    ['inner space', 'my room'],
    ['leading space', ' room'],
    ['trailing space', 'room '],
    ['trailing newline', 'room\n'],
    ['slash', 'a/b'],
    ['backslash', 'a\\b'],
    ['ümlaut', 'ümlaut'],
    ['Latin letter with umlaut inside', 'r\u00fcm'],
    ['Cyrillic а look-alike', 'ch\u0430t'],
    ['Cyrillic first letter', '\u0430bc'],
    ['fullwidth letters', '\uff52\uff4f\uff4f\uff4d'],
    ['NUL', 'room\u0000'],
    ['emoji', 'room😀'],
    ['number instead of string', 42],
    ['null', null],
  ];
  for (const [name, roomId] of refused) {
    it(`refuses ${name}`, () => {
      const err = refusal(() => parseInput(schemas.leave, { roomId }));
      assert.deepEqual(err.details, { fields: ['roomId'] });
      assert.match(err.message, /^roomId: /);
    });
  }

  it('refuses a missing roomId, naming it', () => {
    const err = refusal(() => parseInput(schemas.join, {}));
    assert.deepEqual(err.details, { fields: ['roomId'] });
  });
});

describe('sinceSeq / beforeSeq / afterSeq', () => {
  it('accepts sinceSeq 0 and MAX_SAFE_INTEGER', () => {
    assert.deepEqual(parseInput(schemas.join, { roomId: 'r', sinceSeq: 0 }), { roomId: 'r', sinceSeq: 0 });
    assert.deepEqual(parseInput(schemas.join, { roomId: 'r', sinceSeq: Number.MAX_SAFE_INTEGER }), {
      roomId: 'r',
      sinceSeq: Number.MAX_SAFE_INTEGER,
    });
  });

  it('omits sinceSeq from the result when it was not sent', () => {
    const parsed = parseInput(schemas.join, { roomId: 'r' });
    assert.deepEqual(parsed, { roomId: 'r' });
    assert.equal(Object.hasOwn(parsed, 'sinceSeq'), false);
  });

  for (const sinceSeq of [-1, 1.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 2, '3', null, true]) {
    it(`refuses sinceSeq ${typeof sinceSeq === 'string' ? JSON.stringify(sinceSeq) : String(sinceSeq)}`, () => {
      const err = refusal(() => parseInput(schemas.join, { roomId: 'r', sinceSeq }));
      assert.deepEqual(err.details, { fields: ['sinceSeq'] });
    });
  }

  it('refuses beforeSeq with afterSeq, naming beforeSeq', () => {
    const err = refusal(() => parseInput(schemas.history, { roomId: 'r', beforeSeq: 5, afterSeq: 1 }));
    assert.deepEqual(err.details, { fields: ['beforeSeq'] });
    assert.equal(err.message, 'beforeSeq: beforeSeq and afterSeq cannot be combined');
  });

  it('applies the default and maximum page sizes', () => {
    assert.equal(DEFAULT_PAGE, 50);
    assert.equal(MAX_PAGE, 100);
    assert.deepEqual(parseInput(schemas.history, { roomId: 'r' }), { roomId: 'r', limit: 50 });
    assert.deepEqual(parseInput(schemas.history, { roomId: 'r', limit: 100 }), { roomId: 'r', limit: 100 });
    assert.deepEqual(parseInput(schemas.history, { roomId: 'r', limit: 1, afterSeq: 0 }), { roomId: 'r', limit: 1, afterSeq: 0 });
  });
});

describe('details.fields and the error message', () => {
  it('lists every offending top-level field once, in schema order', () => {
    const err = refusal(() => parseInput(schemas.send, { roomId: '', body: 'x'.repeat(4001), clientMsgId: '!' }));
    assert.deepEqual(err.details, { fields: ['roomId', 'body', 'clientMsgId'] });
  });

  it('names a field once even when it fails several checks', () => {
    const err = refusal(() => parseInput(schemas.send, { roomId: 'r', body: ' \u0000 ' }));
    assert.deepEqual(err.details, { fields: ['body'] });
  });

  it('prefixes the message with the first offending field', () => {
    const err = refusal(() => parseInput(schemas.send, { roomId: 'r', body: 'a\u0000' }));
    assert.equal(err.message, 'body: must not contain NUL');
  });

  it('refuses non-object data with an empty fields list', () => {
    for (const data of [null, undefined, [], [{ roomId: 'r' }], 'r', 0, 1, true]) {
      const err = refusal(() => parseInput(schemas.leave, data));
      assert.deepEqual(err.details, { fields: [] });
      assert.equal(err.message, 'data must be an object');
    }
  });

  it('produces an error body with code, message and details', () => {
    const err = refusal(() => parseInput(schemas.leave, { roomId: '-' }));
    assert.deepEqual(err.toBody(), { code: 'VALIDATION_FAILED', message: err.message, details: { fields: ['roomId'] } });
  });
});

describe('parsed result', () => {
  it('is a fresh object without unknown keys', () => {
    const input = { roomId: 'r', body: 'hi', clientMsgId: 'c_1', senderId: 'mallory', seq: 9, id: 'x', createdAt: 'then' };
    const parsed = parseInput(schemas.send, input);
    assert.notEqual(parsed, input);
    assert.deepEqual(parsed, { roomId: 'r', body: 'hi', clientMsgId: 'c_1' });
    assert.deepEqual(Object.keys(parsed), ['roomId', 'body', 'clientMsgId']);
    assert.equal(input.senderId, 'mallory', 'the input is left untouched');
  });

  it('has no own __proto__ key and the ordinary prototype when the input came from JSON.parse', () => {
    const input: unknown = JSON.parse('{"roomId":"r","body":"hi","__proto__":{"isAdmin":true,"body":"evil"}}');
    assert.equal(Object.hasOwn(input as object, '__proto__'), true, 'JSON.parse creates an own __proto__ key');
    const parsed = parseInput(schemas.send, input);
    assert.deepEqual(parsed, { roomId: 'r', body: 'hi' });
    assert.equal(Object.hasOwn(parsed, '__proto__'), false);
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
    assert.equal((parsed as Record<string, unknown>)['isAdmin'], undefined);
    assert.equal(({} as Record<string, unknown>)['isAdmin'], undefined, 'Object.prototype is not polluted');
  });

  it('drops a constructor/prototype key from history queries', () => {
    const input: unknown = JSON.parse('{"roomId":"r","constructor":{"prototype":{"x":1}},"limit":5}');
    const parsed = parseInput(schemas.history, input);
    assert.deepEqual(Object.keys(parsed).sort(), ['limit', 'roomId']);
  });
});

describe('message body limits', () => {
  it('counts code points, not UTF-16 units, with the default 4000 limit', () => {
    const atLimit = '😀'.repeat(4000);
    assert.equal(atLimit.length, 8000);
    assert.equal(parseInput(schemas.send, { roomId: 'r', body: atLimit }).body, atLimit);
    const err = refusal(() => parseInput(schemas.send, { roomId: 'r', body: atLimit + 'a' }));
    assert.deepEqual(err.details, { fields: ['body'] });
    assert.equal(err.message, 'body: must be at most 4000 characters');
  });

  it('respects another maxMessageLength given to createSchemas', () => {
    const small = createSchemas({ maxMessageLength: 3 });
    assert.equal(parseInput(small.send, { roomId: 'r', body: '👍🏽!' }).body, '👍🏽!');
    const err = refusal(() => parseInput(small.send, { roomId: 'r', body: 'abcd' }));
    assert.deepEqual(err.details, { fields: ['body'] });
    assert.equal(err.message, 'body: must be at most 3 characters');

    const large = createSchemas({ maxMessageLength: 10_000 });
    const body = 'x'.repeat(10_000);
    assert.equal(parseInput(large.send, { roomId: 'r', body }).body, body);
    refusal(() => parseInput(large.send, { roomId: 'r', body: body + 'x' }));
    refusal(() => parseInput(schemas.send, { roomId: 'r', body }));
  });

  it('keeps each schema set independent of the others', () => {
    const tiny = createSchemas({ maxMessageLength: 1 });
    refusal(() => parseInput(tiny.send, { roomId: 'r', body: 'ab' }));
    assert.equal(parseInput(schemas.send, { roomId: 'r', body: 'ab' }).body, 'ab');
  });

  it('accepts a single non-white-space character between white space and keeps it as sent', () => {
    assert.equal(parseInput(schemas.send, { roomId: 'r', body: '\n x \t' }).body, '\n x \t');
  });

  it('accepts well-formed surrogate pairs and refuses a reversed pair', () => {
    assert.equal(parseInput(schemas.send, { roomId: 'r', body: '\ud83d\ude00' }).body, '😀');
    const err = refusal(() => parseInput(schemas.send, { roomId: 'r', body: '\ude00\ud83d' }));
    assert.deepEqual(err.details, { fields: ['body'] });
  });

  it('refuses a body made only of U+0085 NEXT LINE, which Unicode classes as white space', () => {
    // protocol.md: body must be "not empty after removing Unicode white space at both ends".
    // U+0085 has the Unicode White_Space property, but String.prototype.trim does not remove it.
    const err = refusal(() => parseInput(schemas.send, { roomId: 'r', body: '\u0085' }));
    assert.deepEqual(err.details, { fields: ['body'] });
  });
});

describe('clientMsgId', () => {
  it('accepts 1 and 64 characters of [A-Za-z0-9_-]', () => {
    for (const clientMsgId of ['a', '_', '-', 'A'.repeat(64), 'abc-DEF_123']) {
      assert.equal(parseInput(schemas.send, { roomId: 'r', body: 'b', clientMsgId }).clientMsgId, clientMsgId);
    }
  });

  it('refuses other characters and lengths', () => {
    for (const clientMsgId of ['', 'a'.repeat(65), 'a.b', 'a:b', 'ü', 'a b', 'a\n', 5]) {
      const err = refusal(() => parseInput(schemas.send, { roomId: 'r', body: 'b', clientMsgId }));
      assert.deepEqual(err.details, { fields: ['clientMsgId'] });
    }
  });
});

describe('history limit bounds (maxHistoryPage)', () => {
  it('allows up to MAX_PAGE with the default 50 when no maxHistoryPage is given', () => {
    assert.deepEqual(parseInput(schemas.history, { roomId: 'r' }), { roomId: 'r', limit: DEFAULT_PAGE });
    assert.equal(parseInput(schemas.history, { roomId: 'r', limit: MAX_PAGE }).limit, MAX_PAGE);
    refusal(() => parseInput(schemas.history, { roomId: 'r', limit: MAX_PAGE + 1 }));
  });

  it('caps limit at a smaller maxHistoryPage and lowers the default to it', () => {
    const small = createSchemas({ maxMessageLength: 4000, maxHistoryPage: 10 });
    assert.deepEqual(parseInput(small.history, { roomId: 'r' }), { roomId: 'r', limit: 10 });
    assert.equal(parseInput(small.history, { roomId: 'r', limit: 10 }).limit, 10);
    const err = refusal(() => parseInput(small.history, { roomId: 'r', limit: 11 }));
    assert.deepEqual(err.details, { fields: ['limit'] });
    assert.match(err.message, /^limit: /);
  });

  it('keeps the default 50 when maxHistoryPage is larger than it', () => {
    const wide = createSchemas({ maxMessageLength: 4000, maxHistoryPage: 80 });
    assert.equal(parseInput(wide.history, { roomId: 'r' }).limit, 50);
    assert.equal(parseInput(wide.history, { roomId: 'r', limit: 80 }).limit, 80);
    refusal(() => parseInput(wide.history, { roomId: 'r', limit: 81 }));
  });
});

describe('rooms.list page', () => {
  it('defaults to the largest page, 1000, from the first room', () => {
    assert.equal(MAX_ROOMS_PAGE, 1000);
    assert.deepEqual(parseInput(schemas.roomsList, {}), { limit: 1000 });
  });

  it('takes limit 1..1000 and a roomId to start after; drops unknown keys', () => {
    assert.deepEqual(parseInput(schemas.roomsList, { limit: 1, afterRoomId: 'a', cursor: 'x' }), { limit: 1, afterRoomId: 'a' });
    assert.deepEqual(parseInput(schemas.roomsList, { limit: 1000, afterRoomId: 'Z'.repeat(128) }), {
      limit: 1000,
      afterRoomId: 'Z'.repeat(128),
    });
  });

  for (const [data, fields] of [
    [{ limit: 0 }, ['limit']],
    [{ limit: 1001 }, ['limit']],
    [{ limit: 10.5 }, ['limit']],
    [{ limit: '10' }, ['limit']],
    [{ limit: Number.NaN }, ['limit']],
    [{ afterRoomId: '' }, ['afterRoomId']],
    [{ afterRoomId: '.a' }, ['afterRoomId']],
    [{ afterRoomId: 'a'.repeat(129) }, ['afterRoomId']],
    [{ afterRoomId: ['a'] }, ['afterRoomId']],
  ] as const) {
    it(`refuses ${JSON.stringify(data)}, naming ${fields.join(', ')}`, () => {
      assert.deepEqual(refusal(() => parseInput(schemas.roomsList, data)).details, { fields });
    });
  }
});

describe('post (trusted sender) and member schemas', () => {
  it('accepts a senderId / userId of 1 to 128 characters', () => {
    for (const id of ['u', 'x'.repeat(128), 'auth0|5f7c8ec7c33c6c004bbafe82', 'user@example.com']) {
      assert.equal(parseInput(schemas.post, { roomId: 'r', senderId: id, body: 'hi' }).senderId, id);
      assert.deepEqual(parseInput(schemas.member, { roomId: 'r', userId: id }), { roomId: 'r', userId: id });
    }
  });

  for (const id of ['', 'x'.repeat(129)]) {
    it(`refuses a ${id.length}-character senderId and userId with "must be 1-128 characters"`, () => {
      const post = refusal(() => parseInput(schemas.post, { roomId: 'r', senderId: id, body: 'hi' }));
      assert.deepEqual(post.details, { fields: ['senderId'] });
      assert.equal(post.message, 'senderId: must be 1-128 characters');
      const member = refusal(() => parseInput(schemas.member, { roomId: 'r', userId: id }));
      assert.deepEqual(member.details, { fields: ['userId'] });
      assert.equal(member.message, 'userId: must be 1-128 characters');
    });
  }

  it('applies the body rules to posted messages as well', () => {
    const err = refusal(() => parseInput(schemas.post, { roomId: 'r', senderId: 'u', body: '\u0085' }));
    assert.deepEqual(err.details, { fields: ['body'] });
  });
});

describe('room schema', () => {
  it('defaults an omitted title and metadata to null and drops unknown keys', () => {
    const parsed = parseInput(schemas.room, { roomId: 'r', visibility: 'private', lastSeq: 4, createdAt: 'then' });
    assert.deepEqual(parsed, { roomId: 'r', visibility: 'private', title: null, metadata: null, retentionDays: null, slowModeMs: 0 });
  });

  it('refuses a missing or unknown visibility, naming it', () => {
    for (const visibility of [undefined, 'hidden', 'Public', 1, null]) {
      const err = refusal(() => parseInput(schemas.room, { roomId: 'r', visibility }));
      assert.deepEqual(err.details, { fields: ['visibility'] });
    }
  });

  it('refuses a title over 200 characters with a readable message', () => {
    assert.equal(parseInput(schemas.room, { roomId: 'r', visibility: 'public', title: 't'.repeat(200) }).title, 't'.repeat(200));
    const err = refusal(() => parseInput(schemas.room, { roomId: 'r', visibility: 'public', title: 't'.repeat(201) }));
    assert.equal(err.message, 'title: must be at most 200 characters');
  });

  it('accepts a metadata object and refuses arrays and scalars, naming metadata', () => {
    const metadata = { topic: 'ops', tags: ['a', 'b'], nested: { n: 1, off: false, none: null } };
    assert.deepEqual(parseInput(schemas.room, { roomId: 'r', visibility: 'public', metadata }).metadata, metadata);
    for (const bad of [[], [{ a: 1 }], 'text', 3, true]) {
      const err = refusal(() => parseInput(schemas.room, { roomId: 'r', visibility: 'public', metadata: bad }));
      assert.deepEqual(err.details, { fields: ['metadata'] });
    }
  });

  it('refuses metadata over 16 KiB of JSON with a readable message', () => {
    const err = refusal(() => parseInput(schemas.room, { roomId: 'r', visibility: 'public', metadata: { big: 'x'.repeat(16 * 1024) } }));
    assert.equal(err.message, 'metadata: must be at most 16 KiB as JSON');
  });

  it('does not let a __proto__ key in metadata pollute prototypes', () => {
    const input: unknown = JSON.parse('{"roomId":"r","visibility":"public","metadata":{"__proto__":{"isAdmin":true},"a":1}}');
    const parsed = parseInput(schemas.room, input);
    assert.ok(parsed.metadata);
    assert.equal(Object.getPrototypeOf(parsed.metadata), Object.prototype);
    assert.equal((parsed.metadata as Record<string, unknown>)['isAdmin'], undefined);
    assert.equal(({} as Record<string, unknown>)['isAdmin'], undefined);
    assert.equal(parsed.metadata['a'], 1);
  });
});

describe('stored text other than bodies (one safe-text rule)', () => {
  const bad = ['a\u0000b', 'a\ud800', '\udc00b'];

  it('refuses NUL and lone surrogates in a posted senderId and a member userId, naming the field', () => {
    for (const s of bad) {
      assert.deepEqual(refusal(() => parseInput(schemas.post, { roomId: 'r', senderId: s, body: 'b' })).details, { fields: ['senderId'] });
      assert.deepEqual(refusal(() => parseInput(schemas.member, { roomId: 'r', userId: s })).details, { fields: ['userId'] });
    }
  });

  it('refuses them in a room title and in metadata keys and values at any depth, naming the path', () => {
    for (const s of bad) {
      assert.deepEqual(refusal(() => parseInput(schemas.room, { roomId: 'r', visibility: 'public', title: s })).details, {
        fields: ['title'],
      });
      for (const metadata of [{ k: s }, { [s]: 1 }, { a: { b: [1, { c: s }] } }, { a: [{ [s]: true }] }]) {
        const err = refusal(() => parseInput(schemas.room, { roomId: 'r', visibility: 'public', metadata }));
        assert.deepEqual(err.details, { fields: ['metadata'] });
        assert.match(err.message, /^metadata[.\w]*: (a key )?must (not contain NUL|be well-formed Unicode)/);
      }
    }
    const err = refusal(() =>
      parseInput(schemas.room, { roomId: 'r', visibility: 'public', metadata: { a: { b: [1, { c: '\u0000' }] } } }),
    );
    assert.equal(err.message, 'metadata.a.b.1.c: must not contain NUL');
  });

  it('accepts surrogate pairs and other text everywhere', () => {
    const s = 'caf\u00e9 \ud83d\ude00 \u200b';
    assert.equal(parseInput(schemas.member, { roomId: 'r', userId: s }).userId, s);
    const room = parseInput(schemas.room, { roomId: 'r', visibility: 'public', title: s, metadata: { [s]: [s, { s }] } });
    assert.deepEqual(room.metadata, { [s]: [s, { s }] });
  });
});

describe('stored text in user references', () => {
  it('refuses NUL and lone surrogates in a userRef (HTTP path userId), naming it', () => {
    for (const s of ['\u0000', 'a\ud800', '\ude00\ud83d']) {
      const err = refusal(() => parseInput(userRef, { userId: s }));
      assert.deepEqual(err.details, { fields: ['userId'] });
      assert.match(err.message, /^userId: must (not contain NUL|be well-formed Unicode)/);
    }
  });
});
