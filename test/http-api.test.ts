/**
 * The HTTP API end to end on two instances sharing Redis: every /v1 route with its keys (none,
 * wrong, read-only) and its error answers, the OpenAPI document (/docs-json) against the routes
 * the app really maps, Swagger UI (/docs), live delivery of posted and system messages to the
 * other instance, and POST /v1/users/{userId}/disconnect on both instances and both transports.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { io, type Socket } from 'socket.io-client';
import { connect, handshakeRefusal, KINDS, sleep, type IoTestClient, type TestClient, type WsTestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { clusterEnv, redisPrefix, startInstance, type Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';
import { MESSAGE_KEYS, ROOM_KEYS, UNCHANGED } from './support/message-shape.js';
import type { Method } from './support/http-api.js';

const API_KEY = 'http-api-e2e-key-0123456789abcdef';
const READ_KEY = 'http-api-e2e-read-only-key-0123456789';
/** Long enough for a push (or a reconnect) that was going to come to have come. */
const SETTLE_MS = 400;
const WAIT_MS = 5000;

interface HttpAnswer {
  status: number;
  body: any;
  text: string;
  contentType: string;
}

interface CallOptions {
  body?: unknown;
  /** Sent as it is, instead of JSON.stringify(body). */
  raw?: string;
  /** null: no X-API-Key. */
  key?: string | null;
  headers?: Record<string, string>;
}

/** One HTTP call, bounded by WAIT_MS. */
async function call(
  inst: Instance,
  method: Method,
  path: string,
  { body, raw, key = API_KEY, headers = {} }: CallOptions = {},
): Promise<HttpAnswer> {
  const all: Record<string, string> = { ...headers };
  if (key !== null) all['x-api-key'] = key;
  const payload = raw ?? (body === undefined ? undefined : JSON.stringify(body));
  if (payload !== undefined) all['content-type'] ??= 'application/json';
  const res = await fetch(`${inst.url}${path}`, { method, headers: all, body: payload, signal: AbortSignal.timeout(WAIT_MS) });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, text, contentType: res.headers.get('content-type') ?? '' };
}

function assertError(r: HttpAnswer, status: number, code: string, what: string, fields?: string[]): void {
  assert.equal(r.status, status, `${what}: ${r.text.slice(0, 300)}`);
  assert.equal(r.body?.ok, false, `${what}: error body`);
  assert.equal(r.body?.error?.code, code, `${what}: ${r.text.slice(0, 300)}`);
  assert.equal(typeof r.body?.error?.message, 'string', `${what}: message`);
  assert.deepEqual(Object.keys(r.body).sort(), ['error', 'ok'], `${what}: nothing else in the body`);
  if (fields) assert.deepEqual(r.body.error.details?.fields, fields, `${what}: details.fields`);
}

/** Rejects when `p` has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** `{a":{"a":...}}` nested `depth` levels. */
const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** Every /v1 route of the API, as the OpenAPI document must list them. */
const V1_ROUTES = [
  'PUT /v1/rooms/{roomId}',
  'GET /v1/rooms/{roomId}',
  'PUT /v1/rooms/{roomId}/members/{userId}',
  'DELETE /v1/rooms/{roomId}/members/{userId}',
  'GET /v1/rooms/{roomId}/members',
  'POST /v1/rooms/{roomId}/messages',
  'GET /v1/rooms/{roomId}/messages',
  'PATCH /v1/rooms/{roomId}/messages/{seq}',
  'DELETE /v1/rooms/{roomId}/messages/{seq}',
  'GET /v1/rooms/{roomId}/messages/{seq}/versions',
  'GET /v1/rooms/{roomId}/changes',
  'POST /v1/users/{userId}/disconnect',
];

describe('HTTP API', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;

  before(async () => {
    // LOG_LEVEL info: Nest logs each route it maps, which the OpenAPI test compares with the document.
    cluster = await startCluster(2, { API_KEYS: `${API_KEY},${READ_KEY}:read`, LOG_LEVEL: 'info' });
    [A, B] = cluster.instances;
  });
  after(() => cluster.stop());

  const count = async (sql: string, params: unknown[] = []) => Number((await cluster.db.query<{ n: string }>(sql, params))[0].n);
  const storedIn = (roomId: string) => count('SELECT count(*) AS n FROM messages WHERE room_id = $1', [roomId]);

  async function createRoom(roomId: string, visibility: 'public' | 'private', members: string[] = []): Promise<any> {
    const r = await call(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility, title: `room ${roomId}` } });
    assert.equal(r.status, 201, r.text);
    for (const m of members) assert.equal((await call(A, 'PUT', `/v1/rooms/${roomId}/members/${m}`)).status, 204);
    return r.body;
  }

  async function post(inst: Instance, roomId: string, body: object, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    return call(inst, 'POST', `/v1/rooms/${roomId}/messages`, { body, headers });
  }

  describe('keys', () => {
    it('every /v1 route: 401 without X-API-Key or with a wrong one; a read-only key may GET and gets 403 FORBIDDEN on writes, which change nothing', async () => {
      const roomId = 'keys-room';
      await createRoom(roomId, 'private', ['keys-member']);
      const first = await post(A, roomId, { senderId: 'keys-member', body: 'before the refusals' });
      assert.equal(first.status, 201, first.text);
      // A live connection of the user the refused disconnect names: it must stay open.
      const watched = cluster.track(await connect('ws', B.url, await tokenFor('keys-member')));

      const routes: { route: string; path: string; body?: unknown; readOk?: (r: HttpAnswer) => void }[] = [
        { route: 'PUT /v1/rooms/{roomId}', path: `/v1/rooms/${roomId}`, body: { visibility: 'public' } },
        {
          route: 'GET /v1/rooms/{roomId}',
          path: `/v1/rooms/${roomId}`,
          readOk: (r) => assert.deepEqual([r.status, r.body.roomId, r.body.visibility], [200, roomId, 'private']),
        },
        { route: 'PUT /v1/rooms/{roomId}/members/{userId}', path: `/v1/rooms/${roomId}/members/keys-intruder` },
        { route: 'DELETE /v1/rooms/{roomId}/members/{userId}', path: `/v1/rooms/${roomId}/members/keys-member` },
        {
          route: 'GET /v1/rooms/{roomId}/members',
          path: `/v1/rooms/${roomId}/members`,
          readOk: (r) =>
            assert.deepEqual([r.status, r.body], [200, { members: [{ userId: 'keys-member', role: 'member', lastReadSeq: 0 }] }]),
        },
        {
          route: 'POST /v1/rooms/{roomId}/messages',
          path: `/v1/rooms/${roomId}/messages`,
          body: { senderId: 'keys-member', body: 'refused' },
        },
        {
          route: 'GET /v1/rooms/{roomId}/messages',
          path: `/v1/rooms/${roomId}/messages`,
          readOk: (r) => assert.deepEqual([r.status, r.body], [200, { messages: [first.body], hasMore: false }]),
        },
        { route: 'PATCH /v1/rooms/{roomId}/messages/{seq}', path: `/v1/rooms/${roomId}/messages/1`, body: { body: 'refused edit' } },
        { route: 'DELETE /v1/rooms/{roomId}/messages/{seq}', path: `/v1/rooms/${roomId}/messages/1` },
        {
          route: 'GET /v1/rooms/{roomId}/messages/{seq}/versions',
          path: `/v1/rooms/${roomId}/messages/1/versions`,
          readOk: (r) => assert.deepEqual([r.status, r.body], [200, { versions: [{ version: 1, body: first.body.body, editedAt: null }] }]),
        },
        {
          route: 'GET /v1/rooms/{roomId}/changes',
          path: `/v1/rooms/${roomId}/changes?afterModSeq=0`,
          readOk: (r) =>
            assert.deepEqual([r.status, r.body], [200, { messages: [first.body], hasMore: false, lastModSeq: 1, truncated: false }]),
        },
        { route: 'POST /v1/users/{userId}/disconnect', path: '/v1/users/keys-member/disconnect' },
      ];
      assert.deepEqual(
        routes.map((r) => r.route),
        V1_ROUTES,
        'every route is tried',
      );

      for (const { route, path, body, readOk } of routes) {
        const method = route.split(' ')[0] as Method;
        for (const key of [null, '', 'wrong-key-0123456789abcdef', `${API_KEY}x`, API_KEY.slice(0, -1), `${READ_KEY}:read`]) {
          assertError(await call(B, method, path, { body, key }), 401, 'UNAUTHORIZED', `${route} with key ${JSON.stringify(key)}`);
        }
        const readOnly = await call(A, method, path, { body, key: READ_KEY });
        if (readOk) readOk(readOnly);
        else assertError(readOnly, 403, 'FORBIDDEN', `${route} with the read-only key`);
      }

      const room = await call(B, 'GET', `/v1/rooms/${roomId}`);
      assert.equal(room.body.visibility, 'private', 'the refused PUT changed nothing');
      assert.deepEqual((await call(B, 'GET', `/v1/rooms/${roomId}/members`)).body.members, [
        { userId: 'keys-member', role: 'member', lastReadSeq: 0 },
      ]);
      assert.equal(await storedIn(roomId), 1, 'the refused POSTs stored nothing');
      assert.deepEqual(
        (await call(B, 'GET', `/v1/rooms/${roomId}/messages`)).body.messages,
        [first.body],
        'the refused PATCH and DELETE changed nothing',
      );
      await sleep(SETTLE_MS);
      assert.equal(watched.isOpen, true, 'the refused disconnect closed nothing');
    });
  });

  describe('rooms and members', () => {
    it('PUT /v1/rooms/{roomId}: 201 then 200; 400 VALIDATION_FAILED for bad fields, a bad roomId or hostile nesting; 400 BAD_REQUEST for broken JSON; 413 for an oversized body', async () => {
      const roomId = 'put-room';
      const created = await call(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'public', title: 'T', metadata: { a: 1 } } });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(Object.keys(created.body).sort(), ROOM_KEYS);
      const replaced = await call(B, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'public' } });
      assert.equal(replaced.status, 200, replaced.text);
      assert.deepEqual([replaced.body.title, replaced.body.metadata], [null, null]);

      assertError(await call(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'hidden' } }), 400, 'VALIDATION_FAILED', 'visibility', [
        'visibility',
      ]);
      assertError(await call(A, 'PUT', '/v1/rooms/-bad-start', { body: { visibility: 'public' } }), 400, 'VALIDATION_FAILED', 'roomId', [
        'roomId',
      ]);
      assertError(
        await call(A, 'PUT', `/v1/rooms/${'r'.repeat(129)}`, { body: { visibility: 'public' } }),
        400,
        'VALIDATION_FAILED',
        'long roomId',
        ['roomId'],
      );
      assertError(
        await call(A, 'PUT', `/v1/rooms/${roomId}`, { raw: `{"visibility":"private","metadata":${nested(40)}}` }),
        400,
        'VALIDATION_FAILED',
        'nesting',
        ['metadata'],
      );
      assertError(await call(A, 'PUT', `/v1/rooms/${roomId}`, { raw: '{"visibility":' }), 400, 'BAD_REQUEST', 'broken JSON');
      assertError(
        await call(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private', title: 'x'.repeat(70 * 1024) } }),
        413,
        'PAYLOAD_TOO_LARGE',
        'oversized',
      );
      const after = await call(A, 'GET', `/v1/rooms/${roomId}`);
      assert.deepEqual(after.body, replaced.body, 'no refused PUT changed the room');
      assert.equal((await call(A, 'GET', '/v1/rooms/-bad-start')).status, 400);
    });

    it('GET /v1/rooms/{roomId}: 200 Room; 404 NOT_FOUND for a room that does not exist; 400 for a bad roomId', async () => {
      const room = await createRoom('get-room', 'private');
      const read = await call(B, 'GET', '/v1/rooms/get-room');
      assert.equal(read.status, 200);
      assert.deepEqual(read.body, room);
      assertError(await call(B, 'GET', '/v1/rooms/no-such-room'), 404, 'NOT_FOUND', 'missing room');
      assertError(await call(B, 'GET', '/v1/rooms/bad%20room'), 400, 'VALIDATION_FAILED', 'bad roomId', ['roomId']);
    });

    it('members: PUT and DELETE 204 (idempotent), GET 200 { members }; 404 NOT_FOUND on a missing room; 400 for a bad userId', async () => {
      const roomId = 'members-room';
      await createRoom(roomId, 'private');
      for (let i = 0; i < 2; i++) {
        const added = await call(i ? B : A, 'PUT', `/v1/rooms/${roomId}/members/mia`);
        assert.deepEqual([added.status, added.text], [204, ''], 'PUT member');
      }
      assert.deepEqual((await call(B, 'GET', `/v1/rooms/${roomId}/members`)).body, {
        members: [{ userId: 'mia', role: 'member', lastReadSeq: 0 }],
      });
      for (let i = 0; i < 2; i++) {
        const removed = await call(i ? A : B, 'DELETE', `/v1/rooms/${roomId}/members/mia`);
        assert.deepEqual([removed.status, removed.text], [204, ''], 'DELETE member');
      }
      const listed = await call(A, 'GET', `/v1/rooms/${roomId}/members`);
      assert.deepEqual([listed.status, listed.body], [200, { members: [] }]);

      for (const [method, path] of [
        ['PUT', '/v1/rooms/members-missing/members/mia'],
        ['DELETE', '/v1/rooms/members-missing/members/mia'],
        ['GET', '/v1/rooms/members-missing/members'],
      ] as const) {
        assertError(await call(A, method, path), 404, 'NOT_FOUND', `${method} ${path}`);
      }
      const longUser = 'u'.repeat(129);
      for (const method of ['PUT', 'DELETE'] as const) {
        assertError(await call(A, method, `/v1/rooms/${roomId}/members/${longUser}`), 400, 'VALIDATION_FAILED', `${method} long userId`, [
          'userId',
        ]);
      }
      assertError(await call(A, 'GET', '/v1/rooms/bad%20room/members'), 400, 'VALIDATION_FAILED', 'GET members, bad roomId', ['roomId']);
      assert.equal((await call(A, 'GET', '/v1/rooms/members-missing')).status, 404, 'member routes created no room');
    });

    it('roles: PUT member { role } sets it (204), a PUT without a role keeps it, a bad role is 400 and changes nothing', async () => {
      const roomId = 'roles-room';
      await createRoom(roomId, 'public');
      const roles = async () => (await call(B, 'GET', `/v1/rooms/${roomId}/members`)).body.members;
      assert.equal((await call(A, 'PUT', `/v1/rooms/${roomId}/members/owen`, { body: { role: 'owner' } })).status, 204);
      assert.equal((await call(A, 'PUT', `/v1/rooms/${roomId}/members/mod`, { body: { role: 'moderator' } })).status, 204);
      assert.equal((await call(A, 'PUT', `/v1/rooms/${roomId}/members/mem`)).status, 204);
      const expected = [
        { userId: 'mem', role: 'member', lastReadSeq: 0 },
        { userId: 'mod', role: 'moderator', lastReadSeq: 0 },
        { userId: 'owen', role: 'owner', lastReadSeq: 0 },
      ];
      assert.deepEqual(await roles(), expected);
      assert.equal((await call(B, 'PUT', `/v1/rooms/${roomId}/members/mod`)).status, 204, 'no role: kept');
      assert.equal((await call(B, 'PUT', `/v1/rooms/${roomId}/members/mod`, { body: {} })).status, 204, 'empty body: kept');
      assert.deepEqual(await roles(), expected);
      for (const role of ['admin', 'Owner', '', 1, null])
        assertError(await call(A, 'PUT', `/v1/rooms/${roomId}/members/mod`, { body: { role } }), 400, 'VALIDATION_FAILED', `role ${role}`, [
          'role',
        ]);
      assertError(await call(A, 'PUT', `/v1/rooms/${roomId}/members/mod`, { raw: '[]' }), 400, 'VALIDATION_FAILED', 'array body');
      assert.deepEqual(await roles(), expected, 'refused PUTs changed nothing');
      assert.equal((await call(A, 'PUT', `/v1/rooms/${roomId}/members/mod`, { body: { role: 'member' } })).status, 204);
      assert.equal((await roles())[1].role, 'member', 'a role can be taken back');
    });
  });

  describe('messages', () => {
    it('POST /v1/rooms/{roomId}/messages: 201 Message, 200 with the stored one for a repeated clientMsgId or Idempotency-Key; 400 and 413 otherwise', async () => {
      const roomId = 'post-room';
      const made = await post(A, roomId, { senderId: 'svc-user', body: 'hello', clientMsgId: 'post-1' });
      assert.equal(made.status, 201, made.text);
      assert.deepEqual(Object.keys(made.body).sort(), MESSAGE_KEYS);
      assert.deepEqual([made.body.roomId, made.body.seq, made.body.senderId, made.body.clientMsgId], [roomId, 1, 'svc-user', 'post-1']);
      const again = await post(B, roomId, { senderId: 'svc-user', body: 'hello', clientMsgId: 'post-1' });
      assert.deepEqual([again.status, again.body], [200, made.body]);

      const keyed = await post(A, roomId, { senderId: 'svc-user', body: 'keyed' }, { 'Idempotency-Key': 'idem-1' });
      assert.equal(keyed.status, 201, keyed.text);
      assert.equal(keyed.body.clientMsgId, 'idem-1', 'the Idempotency-Key is the clientMsgId');
      const keyedAgain = await post(B, roomId, { senderId: 'svc-user', body: 'keyed' }, { 'Idempotency-Key': 'idem-1' });
      assert.deepEqual([keyedAgain.status, keyedAgain.body], [200, keyed.body]);
      const bodyWins = await post(
        A,
        roomId,
        { senderId: 'svc-user', body: 'both', clientMsgId: 'from-body' },
        { 'Idempotency-Key': 'idem-1' },
      );
      assert.deepEqual([bodyWins.status, bodyWins.body.clientMsgId], [201, 'from-body'], 'a clientMsgId in the body wins over the header');
      assert.equal(await storedIn(roomId), 3);

      const refusals: [string, HttpAnswer, string, string[] | undefined][] = [
        ['missing senderId', await post(A, roomId, { body: 'x' }), 'VALIDATION_FAILED', ['senderId']],
        ['empty body', await post(A, roomId, { senderId: 'u', body: '   ' }), 'VALIDATION_FAILED', ['body']],
        ['bad clientMsgId', await post(A, roomId, { senderId: 'u', body: 'x', clientMsgId: 'a b' }), 'VALIDATION_FAILED', ['clientMsgId']],
        [
          'bad Idempotency-Key',
          await post(A, roomId, { senderId: 'u', body: 'x' }, { 'Idempotency-Key': 'k'.repeat(65) }),
          'VALIDATION_FAILED',
          ['clientMsgId'],
        ],
        ['array body', await call(A, 'POST', `/v1/rooms/${roomId}/messages`, { body: [1] }), 'VALIDATION_FAILED', []],
        ['bad roomId', await post(A, 'bad%20room', { senderId: 'u', body: 'x' }), 'VALIDATION_FAILED', ['roomId']],
        [
          'nesting',
          await call(A, 'POST', `/v1/rooms/${roomId}/messages`, { raw: `{"senderId":"u","body":"x","x":${nested(40)}}` }),
          'VALIDATION_FAILED',
          ['x'],
        ],
        ['broken JSON', await call(A, 'POST', `/v1/rooms/${roomId}/messages`, { raw: '{"senderId":' }), 'BAD_REQUEST', undefined],
      ];
      for (const [what, r, code, fields] of refusals) assertError(r, 400, code, what, fields);
      assertError(await post(A, roomId, { senderId: 'u', body: 'x'.repeat(70 * 1024) }), 413, 'PAYLOAD_TOO_LARGE', 'oversized');
      assert.equal(await storedIn(roomId), 3, 'no refused post was stored');
    });

    it('GET /v1/rooms/{roomId}/messages pages by beforeSeq, afterSeq and limit; 400 VALIDATION_FAILED for bad or combined cursors', async () => {
      const roomId = 'history-room';
      const posted: any[] = [];
      for (let i = 1; i <= 5; i++) posted.push((await post(i % 2 ? A : B, roomId, { senderId: 'h', body: `m${i}` })).body);
      const seqs = (r: HttpAnswer) => r.body.messages.map((m: any) => m.seq);
      const get = (query: string) => call(B, 'GET', `/v1/rooms/${roomId}/messages${query}`);

      const all = await get('');
      assert.deepEqual([all.status, all.body], [200, { messages: posted, hasMore: false }]);
      const newest = await get('?limit=2');
      assert.deepEqual([seqs(newest), newest.body.hasMore], [[4, 5], true]);
      const before = await get('?beforeSeq=4&limit=2');
      assert.deepEqual([seqs(before), before.body.hasMore], [[2, 3], true]);
      const afterSeq = await get('?afterSeq=3&limit=5');
      assert.deepEqual([seqs(afterSeq), afterSeq.body.hasMore], [[4, 5], false]);
      assert.deepEqual((await call(A, 'GET', '/v1/rooms/never-used/messages')).body, { messages: [], hasMore: false });

      for (const [query, fields] of [
        ['?beforeSeq=3&afterSeq=1', ['beforeSeq']],
        ['?limit=0', ['limit']],
        ['?limit=101', ['limit']],
        ['?limit=ten', ['limit']],
        ['?beforeSeq=-1', ['beforeSeq']],
        ['?afterSeq=1.5', ['afterSeq']],
      ] as const) {
        assertError(await get(query), 400, 'VALIDATION_FAILED', query, [...fields]);
      }
      assertError(await call(A, 'GET', '/v1/rooms/bad%20room/messages'), 400, 'VALIDATION_FAILED', 'bad roomId', ['roomId']);
    });

    it('a message posted over HTTP on one instance reaches a ws and a socket.io client on the other exactly once', async () => {
      const roomId = 'http-live';
      const watchers = [
        cluster.track(await connect('ws', B.url, await tokenFor('live-ws'))),
        cluster.track(await connect('io', B.url, await tokenFor('live-io'))),
      ];
      for (const w of watchers) await w.ok('room.join', { roomId });
      const posted = await post(A, roomId, { senderId: 'live-svc', body: 'over HTTP, to B' });
      assert.equal(posted.status, 201, posted.text);
      for (const w of watchers) assert.deepEqual(await w.waitFor('message.new', (m) => m.id === posted.body.id), posted.body, w.kind);

      // A repeat is answered 200 and not delivered again.
      const repeat = await post(A, roomId, { senderId: 'live-svc', body: 'twice' }, { 'Idempotency-Key': 'live-1' });
      assert.equal((await post(B, roomId, { senderId: 'live-svc', body: 'twice' }, { 'Idempotency-Key': 'live-1' })).status, 200);
      for (const w of watchers) await w.waitFor('message.new', (m) => m.id === repeat.body.id);
      await sleep(SETTLE_MS);
      for (const w of watchers) {
        assert.deepEqual(
          w.messagesIn(roomId).map((m) => m.id),
          [posted.body.id, repeat.body.id],
          `${w.kind}: each message exactly once`,
        );
      }
    });
  });

  describe('message changes', () => {
    const message = (roomId: string, seq: number | string) => `/v1/rooms/${roomId}/messages/${seq}`;
    const edit = (inst: Instance, roomId: string, seq: number | string, body: unknown) =>
      call(inst, 'PATCH', message(roomId, seq), { body });
    const changes = (inst: Instance, roomId: string, query: string) => call(inst, 'GET', `/v1/rooms/${roomId}/changes${query}`);
    const BAD_SEQS = ['abc', '-1', '1.5', '1e2', '1234567890123456'];

    it('PATCH .../messages/{seq}: 200 latest Message (any sender, version + 1), pushed once as message.updated on the other instance; 409 CONFLICT with currentVersion; 404 NOT_FOUND; 400 for a bad seq or body', async () => {
      const roomId = 'edit-room';
      await createRoom(roomId, 'private', ['edit-watcher']);
      const original = (await post(A, roomId, { senderId: 'edit-author', body: 'first', mentions: ['m1'] })).body;
      const watchers = [
        cluster.track(await connect('ws', B.url, await tokenFor('edit-watcher'))),
        cluster.track(await connect('io', B.url, await tokenFor('edit-watcher'))),
      ];
      for (const w of watchers) await w.ok('room.join', { roomId });

      const edited = await edit(A, roomId, 1, { body: 'second' });
      assert.equal(edited.status, 200, edited.text);
      assert.deepEqual(Object.keys(edited.body).sort(), MESSAGE_KEYS);
      assert.deepEqual(
        { ...edited.body, editedAt: 'x' },
        { ...original, body: 'second', version: 2, modSeq: 2, editedAt: 'x', mentions: ['m1'] },
        'omitted mentions stay; seq, id, sender and createdAt stay',
      );
      assert.ok(Date.parse(edited.body.editedAt) >= Date.parse(original.createdAt), 'editedAt is an ISO time');
      for (const w of watchers) assert.deepEqual(await w.waitFor('message.updated', (m) => m.modSeq === 2), edited.body, w.kind);

      const again = await edit(B, roomId, 1, { body: 'second', mentions: ['m2', 'm2', 'm3'], expectedVersion: 2 });
      assert.equal(again.status, 200, again.text);
      assert.deepEqual([again.body.version, again.body.modSeq, again.body.mentions], [3, 3, ['m2', 'm3']], 'the same body is a change too');

      const stale = await edit(A, roomId, 1, { body: 'lost update', expectedVersion: 2 });
      assert.equal(stale.status, 409, stale.text);
      assert.equal(stale.body.error.code, 'CONFLICT');
      assert.deepEqual(stale.body.error.details, { currentVersion: 3 });

      for (const [what, r] of [
        ['seq 0', await edit(A, roomId, 0, { body: 'x' })],
        ['seq above lastSeq', await edit(A, roomId, 2, { body: 'x' })],
        ['missing room', await edit(A, 'edit-no-room', 1, { body: 'x' })],
      ] as const) {
        assertError(r, 404, 'NOT_FOUND', what);
      }
      for (const seq of BAD_SEQS) assertError(await edit(A, roomId, seq, { body: 'x' }), 400, 'VALIDATION_FAILED', `seq ${seq}`, ['seq']);
      assertError(await edit(A, roomId, 1, { body: '  ' }), 400, 'VALIDATION_FAILED', 'empty body', ['body']);
      assertError(await edit(A, roomId, 1, { body: 'x', expectedVersion: 0 }), 400, 'VALIDATION_FAILED', 'expectedVersion 0', [
        'expectedVersion',
      ]);
      assertError(await edit(A, roomId, 1, { body: 'x', mentions: 'm1' }), 400, 'VALIDATION_FAILED', 'mentions not an array', ['mentions']);
      assertError(await call(A, 'PATCH', message(roomId, 1), { body: [1] }), 400, 'VALIDATION_FAILED', 'array body', []);
      assertError(await call(A, 'PATCH', message(roomId, 1), { raw: '{"body":' }), 400, 'BAD_REQUEST', 'broken JSON');
      assertError(await edit(A, roomId, 1, { body: 'x'.repeat(70 * 1024) }), 413, 'PAYLOAD_TOO_LARGE', 'oversized');
      assertError(await edit(A, 'bad%20room', 1, { body: 'x' }), 400, 'VALIDATION_FAILED', 'bad roomId', ['roomId']);

      await call(A, 'DELETE', message(roomId, 1));
      assertError(await edit(A, roomId, 1, { body: 'x' }), 404, 'NOT_FOUND', 'a deleted message');
      assert.equal((await call(A, 'GET', '/v1/rooms/edit-no-room')).status, 404, 'an edit creates no room');

      await sleep(SETTLE_MS);
      for (const w of watchers) {
        assert.deepEqual(
          w.pushesOf('message.updated').map((m) => m.modSeq),
          [2, 3, 4],
          `${w.kind}: each change once, nothing for the refusals`,
        );
      }
      const [stored] = (await call(B, 'GET', `/v1/rooms/${roomId}/messages`)).body.messages;
      assert.deepEqual([stored.version, stored.modSeq], [4, 4]);
    });

    it('DELETE .../messages/{seq}: 200 tombstone, again 200 unchanged; 404 NOT_FOUND for a missing room or message; 400 for a bad seq', async () => {
      const roomId = 'delete-room';
      const kept = (await post(A, roomId, { senderId: 'del-author', body: 'gone soon', clientMsgId: 'del-1', mentions: ['x'] })).body;
      const deleted = await call(B, 'DELETE', message(roomId, 1));
      assert.equal(deleted.status, 200, deleted.text);
      assert.deepEqual(Object.keys(deleted.body).sort(), MESSAGE_KEYS);
      assert.deepEqual(
        { ...deleted.body, deletedAt: 'x' },
        { ...kept, body: '', mentions: [], reactions: [], version: 2, modSeq: 2, deletedAt: 'x' },
        'a tombstone keeps id, seq, sender, clientMsgId and createdAt',
      );
      assert.equal(typeof deleted.body.deletedAt, 'string');
      const again = await call(A, 'DELETE', message(roomId, 1));
      assert.deepEqual([again.status, again.body], [200, deleted.body], 'a second delete answers the tombstone, unchanged');

      assertError(await call(A, 'DELETE', message(roomId, 2)), 404, 'NOT_FOUND', 'missing message');
      assertError(await call(A, 'DELETE', message(roomId, 0)), 404, 'NOT_FOUND', 'seq 0');
      assertError(await call(A, 'DELETE', message('delete-no-room', 1)), 404, 'NOT_FOUND', 'missing room');
      for (const seq of BAD_SEQS)
        assertError(await call(A, 'DELETE', message(roomId, seq)), 400, 'VALIDATION_FAILED', `seq ${seq}`, ['seq']);
      assert.equal((await call(A, 'GET', '/v1/rooms/delete-no-room')).status, 404, 'a delete creates no room');
      assert.equal((await changes(A, roomId, '?afterModSeq=0')).body.lastModSeq, 2, 'the repeat took no modSeq');
    });

    it('GET .../messages/{seq}/versions: every version oldest first, [] after a delete; 404 NOT_FOUND; 400 for a bad seq', async () => {
      const roomId = 'versions-room';
      const path = (seq: number | string) => `${message(roomId, seq)}/versions`;
      await post(A, roomId, { senderId: 'v-author', body: 'v1' });
      assert.deepEqual((await call(B, 'GET', path(1))).body, { versions: [{ version: 1, body: 'v1', editedAt: null }] });

      const second = (await edit(A, roomId, 1, { body: 'v2' })).body;
      const third = (await edit(B, roomId, 1, { body: 'v3' })).body;
      const listed = await call(A, 'GET', path(1));
      assert.equal(listed.status, 200, listed.text);
      assert.deepEqual(listed.body, {
        versions: [
          { version: 1, body: 'v1', editedAt: null },
          { version: 2, body: 'v2', editedAt: second.editedAt },
          { version: 3, body: 'v3', editedAt: third.editedAt },
        ],
      });

      await call(A, 'DELETE', message(roomId, 1));
      assert.deepEqual([(await call(B, 'GET', path(1))).status, (await call(B, 'GET', path(1))).body], [200, { versions: [] }]);

      assertError(await call(A, 'GET', path(2)), 404, 'NOT_FOUND', 'missing message');
      assertError(await call(A, 'GET', `/v1/rooms/versions-no-room/messages/1/versions`), 404, 'NOT_FOUND', 'missing room');
      for (const seq of BAD_SEQS) assertError(await call(A, 'GET', path(seq)), 400, 'VALIDATION_FAILED', `seq ${seq}`, ['seq']);
    });

    it('GET .../changes: every change after afterModSeq by modSeq, paged by limit; a missing room answers an empty page; 400 VALIDATION_FAILED without afterModSeq or with a bad one', async () => {
      const roomId = 'changes-room';
      for (let i = 1; i <= 3; i++) await post(A, roomId, { senderId: 'c-author', body: `m${i}` });
      const edited = (await edit(B, roomId, 1, { body: 'm1 edited' })).body;
      const tomb = (await call(A, 'DELETE', message(roomId, 2))).body;
      const third = (await call(A, 'GET', `/v1/rooms/${roomId}/messages?afterSeq=2`)).body.messages[0];

      const all = await changes(B, roomId, '?afterModSeq=0');
      assert.equal(all.status, 200, all.text);
      assert.deepEqual(
        all.body,
        { messages: [third, edited, tomb], hasMore: false, lastModSeq: 5, truncated: false },
        'latest states, by modSeq',
      );
      const first = await changes(A, roomId, '?afterModSeq=0&limit=2');
      assert.deepEqual([first.body.messages.map((m: any) => m.modSeq), first.body.hasMore, first.body.lastModSeq], [[3, 4], true, 5]);
      const rest = await changes(A, roomId, '?afterModSeq=4&limit=2');
      assert.deepEqual(rest.body, { messages: [tomb], hasMore: false, lastModSeq: 5, truncated: false });
      assert.deepEqual((await changes(A, roomId, '?afterModSeq=5')).body, {
        messages: [],
        hasMore: false,
        lastModSeq: 5,
        truncated: false,
      });
      assert.deepEqual((await changes(A, roomId, '?afterModSeq=99')).body, {
        messages: [],
        hasMore: false,
        lastModSeq: 5,
        truncated: false,
      });

      const missing = await changes(B, 'changes-no-room', '?afterModSeq=0');
      assert.deepEqual([missing.status, missing.body], [200, { messages: [], hasMore: false, lastModSeq: 0, truncated: false }]);
      assert.equal((await call(A, 'GET', '/v1/rooms/changes-no-room')).status, 404, 'reading changes creates no room');

      for (const [query, fields] of [
        ['', ['afterModSeq']],
        ['?limit=5', ['afterModSeq']],
        ['?afterModSeq=', ['afterModSeq']],
        ['?afterModSeq=abc', ['afterModSeq']],
        ['?afterModSeq=-1', ['afterModSeq']],
        ['?afterModSeq=1.5', ['afterModSeq']],
        ['?afterModSeq=1&afterModSeq=2', ['afterModSeq']],
        ['?afterModSeq[a]=1', ['afterModSeq']],
        ['?afterModSeq=0&limit=0', ['limit']],
        ['?afterModSeq=0&limit=101', ['limit']],
      ] as const) {
        assertError(await changes(A, roomId, query), 400, 'VALIDATION_FAILED', `changes${query}`, [...fields]);
      }
      assertError(await changes(A, 'bad%20room', '?afterModSeq=0'), 400, 'VALIDATION_FAILED', 'bad roomId', ['roomId']);
    });

    it('threads: POST with parentSeq and mentions, GET .../messages?parentSeq= pages only that thread; a bad parentSeq is VALIDATION_FAILED', async () => {
      const roomId = 'thread-room';
      const root = (await post(A, roomId, { senderId: 't-author', body: 'root' })).body;
      await post(A, roomId, { senderId: 't-author', body: 'not in the thread' });
      const replies: any[] = [];
      for (let i = 1; i <= 3; i++) {
        const r = await post(i % 2 ? A : B, roomId, {
          senderId: `t-replier-${i}`,
          body: `reply ${i}`,
          parentSeq: root.seq,
          mentions: ['a', 'b', 'a'],
        });
        assert.equal(r.status, 201, r.text);
        assert.deepEqual([r.body.parentSeq, r.body.mentions], [root.seq, ['a', 'b']]);
        replies.push(r.body);
      }
      const thread = (query: string) => call(B, 'GET', `/v1/rooms/${roomId}/messages?parentSeq=${root.seq}${query}`);
      const page = await thread('');
      assert.equal(page.status, 200, page.text);
      assert.deepEqual(page.body, { messages: replies, hasMore: false });
      const newest = await thread('&limit=2');
      assert.deepEqual([newest.body.messages.map((m: any) => m.seq), newest.body.hasMore], [[4, 5], true]);
      const older = await thread('&beforeSeq=4&limit=2');
      assert.deepEqual([older.body.messages.map((m: any) => m.seq), older.body.hasMore], [[3], false]);
      const newer = await thread('&afterSeq=3&limit=1');
      assert.deepEqual([newer.body.messages.map((m: any) => m.seq), newer.body.hasMore], [[4], true]);

      const [storedRoot] = (await call(A, 'GET', `/v1/rooms/${roomId}/messages?limit=1&afterSeq=0`)).body.messages;
      assert.deepEqual([storedRoot.replyCount, storedRoot.lastReplySeq], [3, 5]);

      for (const [what, body] of [
        ['a reply as parent', { parentSeq: replies[0].seq }],
        ['a missing parent', { parentSeq: 99 }],
        ['a negative parentSeq', { parentSeq: -1 }],
      ] as const) {
        assertError(await post(A, roomId, { senderId: 't-author', body: 'x', ...body }), 400, 'VALIDATION_FAILED', what, ['parentSeq']);
      }
      assertError(
        await post(A, roomId, { senderId: 't-author', body: 'x', mentions: Array.from({ length: 51 }, (_, i) => `u${i}`) }),
        400,
        'VALIDATION_FAILED',
        '51 mentions',
        ['mentions'],
      );
      for (const bad of ['abc', '-1', '1.5'])
        assertError(await call(A, 'GET', `/v1/rooms/${roomId}/messages?parentSeq=${bad}`), 400, 'VALIDATION_FAILED', `parentSeq ${bad}`, [
          'parentSeq',
        ]);
      assert.equal(await storedIn(roomId), 5, 'no refused reply was stored');
    });
  });

  describe('system messages', () => {
    it('{ body, system: true } posts a system message (senderId "system"), delivered live on both instances and idempotent; with a senderId it is VALIDATION_FAILED', async () => {
      const roomId = 'system-room';
      await createRoom(roomId, 'private', ['sys-member']);
      const watchers = [
        cluster.track(await connect('ws', A.url, await tokenFor('sys-member'))),
        cluster.track(await connect('io', B.url, await tokenFor('sys-member'))),
      ];
      for (const w of watchers) await w.ok('room.join', { roomId });

      const made = await post(A, roomId, { body: 'Maintenance at noon', system: true }, { 'Idempotency-Key': 'notice-1' });
      assert.equal(made.status, 201, made.text);
      assert.deepEqual(
        { ...made.body, id: 'x', createdAt: 'x' },
        {
          id: 'x',
          roomId,
          seq: 1,
          senderId: 'system',
          body: 'Maintenance at noon',
          clientMsgId: 'notice-1',
          createdAt: 'x',
          ...UNCHANGED,
          modSeq: 1,
        },
      );
      for (const w of watchers) assert.deepEqual(await w.waitFor('message.new', (m) => m.id === made.body.id), made.body, w.kind);

      const again = await post(B, roomId, { body: 'Maintenance at noon', system: true, clientMsgId: 'notice-1' });
      assert.deepEqual([again.status, again.body], [200, made.body], 'a repeated clientMsgId returns the stored system message');
      const plain = await post(B, roomId, { body: 'no key', system: true });
      assert.deepEqual([plain.status, plain.body.senderId, plain.body.clientMsgId], [201, 'system', null]);

      assertError(
        await post(A, roomId, { body: 'x', system: true, senderId: 'someone' }),
        400,
        'VALIDATION_FAILED',
        'system with senderId',
        ['senderId'],
      );
      assertError(
        await post(A, roomId, { body: 'x', system: 'yes', senderId: 'someone' }),
        400,
        'VALIDATION_FAILED',
        'system not a boolean',
        ['system'],
      );
      assertError(await post(A, roomId, { body: '', system: true }), 400, 'VALIDATION_FAILED', 'system with an empty body', ['body']);

      await sleep(SETTLE_MS);
      for (const w of watchers) {
        assert.deepEqual(
          w.messagesIn(roomId).map((m) => m.seq),
          [1, 2],
          `${w.kind}: each system message once`,
        );
      }
      const history = await call(A, 'GET', `/v1/rooms/${roomId}/messages`);
      assert.deepEqual(
        history.body.messages.map((m: any) => m.senderId),
        ['system', 'system'],
      );
      assert.deepEqual((await call(A, 'GET', `/v1/rooms/${roomId}/members`)).body.members, [
        { userId: 'sys-member', role: 'member', lastReadSeq: 0 },
      ]);
    });

    it('a token whose sub is "system" is refused at the handshake with UNAUTHORIZED on every transport', async () => {
      const token = await tokenFor('system');
      for (const kind of KINDS) {
        const expected = kind === 'ws' ? 'HTTP 401' : 'UNAUTHORIZED';
        assert.equal(await handshakeRefusal(kind, A.url, token), expected, kind);
      }
      assert.equal(await handshakeRefusal('ws', B.url, token, { queryToken: true }), 'HTTP 401', 'ws, token in the query');
      // Only that exact id is reserved.
      const lookalike = cluster.track(await connect('ws', A.url, await tokenFor('system2')));
      assert.equal(lookalike.session?.userId, 'system2');
    });
  });

  describe('POST /v1/users/{userId}/disconnect', () => {
    /** A socket.io client that would reconnect by itself if allowed to. */
    function reconnectingSocket(url: string, token: string): Socket {
      return io(url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 100, auth: { token } });
    }

    it("closes all of a user's socket.io and ws connections on both instances (io server disconnect; ws 4003) and leaves other users connected", async () => {
      const roomId = 'disconnect-room';
      const doomedToken = await tokenFor('dc-doomed');
      const doomed: TestClient[] = [];
      const others: TestClient[] = [];
      for (const inst of [A, B]) {
        for (const kind of KINDS) {
          doomed.push(cluster.track(await connect(kind, inst.url, doomedToken)));
          others.push(cluster.track(await connect(kind, inst.url, await tokenFor('dc-bystander'))));
        }
      }
      for (const c of [...doomed, ...others]) await c.ok('room.join', { roomId });
      const reconnecting = [A, B].map((inst) => reconnectingSocket(inst.url, doomedToken));
      try {
        let connects = 0;
        await Promise.all(
          reconnecting.map((s) =>
            within(
              new Promise<void>((resolve) =>
                s.on('connect', () => {
                  connects++;
                  resolve();
                }),
              ),
              WAIT_MS,
              'reconnecting socket connects',
            ),
          ),
        );
        const reconnectingEnded = reconnecting.map((s) => new Promise<string>((resolve) => s.once('disconnect', resolve)));
        const endings = doomed.map((c) =>
          c.kind === 'ws'
            ? (c as WsTestClient).closed.then(({ code, reason }) => `${code} ${reason}`)
            : new Promise<string>((resolve) => (c as IoTestClient).socket.once('disconnect', resolve)),
        );

        const r = await call(A, 'POST', '/v1/users/dc-doomed/disconnect');
        assert.deepEqual([r.status, r.body], [202, { userId: 'dc-doomed' }]);

        const how = await within(Promise.all(endings), WAIT_MS, 'every connection of the user closes');
        assert.deepEqual(
          how,
          doomed.map((c) => (c.kind === 'ws' ? '4003 disconnected by the service' : 'io server disconnect')),
        );
        assert.deepEqual(await within(Promise.all(reconnectingEnded), WAIT_MS, 'reconnecting sockets'), [
          'io server disconnect',
          'io server disconnect',
        ]);
        await sleep(SETTLE_MS); // a reconnection attempt (50-100 ms) would have happened by now
        assert.deepEqual(
          reconnecting.map((s) => [s.connected, s.active]),
          [
            [false, false],
            [false, false],
          ],
          'socket.io-client does not reconnect by itself',
        );
        assert.equal(connects, 2);

        for (const c of others) assert.equal(c.isOpen, true, `${c.kind}: another user stays connected`);
        const after = await post(B, roomId, { senderId: 'svc', body: 'still here?' });
        await Promise.all(others.map((c) => c.waitFor('message.new', (m) => m.id === after.body.id)));
        for (const c of doomed) assert.equal(c.isOpen, false, c.kind);

        // Not a ban: the user may connect again with a valid token.
        const back = cluster.track(await connect('ws', B.url, doomedToken));
        assert.equal(back.session?.userId, 'dc-doomed');
        // A user without connections is accepted the same way.
        assert.deepEqual((await call(B, 'POST', '/v1/users/nobody-here/disconnect')).body, { userId: 'nobody-here' });
      } finally {
        for (const s of reconnecting) s.close();
      }
    });

    it('answers 400 VALIDATION_FAILED for a userId over 128 characters', async () => {
      assertError(await call(A, 'POST', `/v1/users/${'u'.repeat(129)}/disconnect`), 400, 'VALIDATION_FAILED', 'long userId', ['userId']);
      assert.equal((await call(A, 'POST', `/v1/users/${'u'.repeat(128)}/disconnect`)).status, 202);
    });
  });

  describe('OpenAPI', () => {
    it('is not served in production unless API_DOCS=true', async () => {
      const prod = await startInstance('P', { ...clusterEnv(cluster.db.url, redisPrefix()), NODE_ENV: 'production' });
      try {
        for (const path of ['/docs', '/docs-json']) assert.equal((await fetch(`${prod.url}${path}`)).status, 404, path);
      } finally {
        await prod.stop();
      }
    });

    /** The routes Nest mapped, from its "Mapped {/path, METHOD} route" log lines, in OpenAPI's path syntax. */
    function mappedRoutes(inst: Instance): string[] {
      const routes = new Set<string>();
      for (const m of inst.output().matchAll(/Mapped \{([^,}]+), (\w+)\} route/g)) {
        routes.add(`${m[2]} ${m[1].replace(/:(\w+)/g, '{$1}')}`);
      }
      return [...routes].sort();
    }

    it('/docs-json (no key) is a valid OpenAPI 3 document listing exactly the routes the app maps', async () => {
      const r = await call(A, 'GET', '/docs-json', { key: null });
      assert.equal(r.status, 200);
      assert.match(r.contentType, /application\/json/);
      const doc = r.body;
      assert.match(doc.openapi, /^3\.\d+\.\d+$/);
      await SwaggerParser.validate(structuredClone(doc));

      const documented = Object.entries(doc.paths as Record<string, object>)
        .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
        .sort();
      const mapped = mappedRoutes(A);
      assert.ok(mapped.length >= V1_ROUTES.length + 3, `found the mapped routes in the log: ${mapped.join(', ')}`);
      assert.deepEqual(documented, mapped);
      for (const route of [...V1_ROUTES, 'GET /health/live', 'GET /health/ready']) assert.ok(documented.includes(route), route);

      // Generated clients name their methods after operationIds: each one unique and plain camelCase.
      const operationIds = Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>).flatMap((ops) =>
        Object.values(ops).map((op) => op.operationId),
      );
      assert.equal(new Set(operationIds).size, operationIds.length, `unique: ${operationIds.join(', ')}`);
      for (const id of operationIds) assert.match(id, /^[a-z][a-zA-Z]+$/);
      assert.equal(doc.paths['/v1/rooms/{roomId}/messages'].post.operationId, 'postMessage');
      assert.equal(doc.paths['/v1/rooms/{roomId}/messages/{seq}'].patch.operationId, 'editMessage');
    });

    it('documents the X-API-Key scheme on every /v1 route, the error body and statuses, the schemas and the Idempotency-Key header', async () => {
      const doc = (await call(B, 'GET', '/docs-json', { key: null })).body;
      const schemes = doc.components.securitySchemes;
      const [schemeName] = Object.keys(schemes);
      assert.deepEqual(schemes[schemeName], { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'One of API_KEYS' });
      const op = (route: string) => {
        const [method, path] = route.split(' ');
        return doc.paths[path][method.toLowerCase()];
      };
      const statuses: Record<string, string[]> = {
        'PUT /v1/rooms/{roomId}': ['200', '201', '400', '401', '403', '413', '503'],
        'GET /v1/rooms/{roomId}': ['200', '400', '401', '404', '503'],
        'PUT /v1/rooms/{roomId}/members/{userId}': ['204', '400', '401', '403', '404', '413', '503'],
        'DELETE /v1/rooms/{roomId}/members/{userId}': ['204', '400', '401', '403', '404', '503'],
        'GET /v1/rooms/{roomId}/members': ['200', '400', '401', '404', '503'],
        'POST /v1/rooms/{roomId}/messages': ['200', '201', '400', '401', '403', '413', '503'],
        'GET /v1/rooms/{roomId}/messages': ['200', '400', '401', '503'],
        'PATCH /v1/rooms/{roomId}/messages/{seq}': ['200', '400', '401', '403', '404', '409', '413', '503'],
        'DELETE /v1/rooms/{roomId}/messages/{seq}': ['200', '400', '401', '403', '404', '503'],
        'GET /v1/rooms/{roomId}/messages/{seq}/versions': ['200', '400', '401', '404', '503'],
        'GET /v1/rooms/{roomId}/changes': ['200', '400', '401', '503'],
        'POST /v1/users/{userId}/disconnect': ['202', '400', '401', '403'],
      };
      assert.deepEqual(Object.keys(statuses), V1_ROUTES);
      const errorRef = '#/components/schemas/ErrorResponse';
      for (const route of V1_ROUTES) {
        const o = op(route);
        assert.deepEqual(o.security, [{ [schemeName]: [] }], `${route}: security`);
        assert.deepEqual(Object.keys(o.responses).sort(), statuses[route], `${route}: statuses`);
        for (const [status, res] of Object.entries<any>(o.responses)) {
          if (Number(status) >= 400) assert.equal(res.content['application/json'].schema.$ref, errorRef, `${route} ${status}`);
        }
        for (const name of route.match(/\{(\w+)\}/g)!.map((p) => p.slice(1, -1))) {
          const param = o.parameters.find((p: any) => p.in === 'path' && p.name === name);
          assert.ok(param?.schema, `${route}: path parameter ${name}`);
        }
      }
      for (const route of ['GET /health/live', 'GET /health/ready']) assert.equal(op(route).security, undefined, `${route} needs no key`);
      assert.deepEqual(Object.keys(op('GET /health/ready').responses).sort(), ['200', '503']);

      const post = op('POST /v1/rooms/{roomId}/messages');
      const idem = post.parameters.find((p: any) => p.in === 'header' && p.name === 'Idempotency-Key');
      assert.equal(idem?.required, false, 'Idempotency-Key header documented, optional');
      const queryParams = (route: string) =>
        op(route)
          .parameters.filter((p: any) => p.in === 'query')
          .map((p: any) => [p.name, p.required])
          .sort();
      assert.deepEqual(queryParams('GET /v1/rooms/{roomId}/messages'), [
        ['afterSeq', false],
        ['beforeSeq', false],
        ['limit', false],
        ['parentSeq', false],
      ]);
      assert.deepEqual(queryParams('GET /v1/rooms/{roomId}/changes'), [
        ['afterModSeq', true],
        ['limit', false],
      ]);
      assert.equal(
        op('PATCH /v1/rooms/{roomId}/messages/{seq}').parameters.find((p: any) => p.name === 'seq').schema.$ref,
        '#/components/schemas/Seq',
      );
      assert.ok(
        op('PATCH /v1/rooms/{roomId}/messages/{seq}').responses['409'].description.includes('currentVersion'),
        'the 409 says where the current version is',
      );

      // The schemas say what the responses really carry.
      const schemas = doc.components.schemas;
      const props = (name: string) => Object.keys(schemas[name].properties).sort();
      assert.deepEqual(props('ErrorResponse'), ['error', 'ok']);
      assert.deepEqual(props('Error'), ['code', 'details', 'message']);
      assert.deepEqual(schemas.Error.required.sort(), ['code', 'message']);
      assert.ok(schemas.Error.properties.code.enum.includes('VALIDATION_FAILED'));
      const message = (await postForSchema(B, { senderId: 'doc-user', body: 'for the schema check' })).body;
      assert.deepEqual(props('Message'), Object.keys(message).sort());
      assert.deepEqual(schemas.Message.required.sort(), Object.keys(message).sort());
      const room = (await call(B, 'GET', '/v1/rooms/doc-room')).body;
      assert.deepEqual(props('Room'), Object.keys(room).sort());
      assert.deepEqual(props('HistoryPage'), ['hasMore', 'messages']);
      assert.deepEqual(props('ChangesPage'), ['hasMore', 'lastModSeq', 'messages', 'truncated']);
      assert.deepEqual(props('MessageVersionList'), ['versions']);
      const versions = (await call(B, 'GET', `/v1/rooms/doc-room/messages/${message.seq}/versions`)).body;
      assert.deepEqual(props('MessageVersion'), Object.keys(versions.versions[0]).sort());
      assert.ok(schemas.Error.properties.code.enum.includes('CONFLICT'));
      assert.deepEqual(props('MemberList'), ['members']);
      assert.deepEqual(props('Member'), ['lastReadSeq', 'role', 'userId']);
      assert.deepEqual(props('DisconnectAccepted'), ['userId']);
      assert.deepEqual(props('MemberSettings'), ['role']);
      assert.deepEqual(schemas.MemberSettings.properties.role.enum, ['owner', 'moderator', 'member']);
      // Request bodies come from the zod schemas that validate them.
      assert.deepEqual(props('RoomSettings'), ['metadata', 'retentionDays', 'slowModeMs', 'title', 'visibility']);
      assert.deepEqual(schemas.RoomSettings.required, ['visibility']);
      assert.deepEqual(props('PostUserMessage'), ['body', 'clientMsgId', 'mentions', 'parentSeq', 'senderId', 'system']);
      assert.deepEqual(schemas.PostUserMessage.required.sort(), ['body', 'senderId']);
      assert.deepEqual(schemas.PostSystemMessage.required.sort(), ['body', 'system']);
      assert.deepEqual(props('EditMessage'), ['body', 'expectedVersion', 'mentions']);
      assert.deepEqual(schemas.EditMessage.required, ['body']);
      assert.deepEqual(op('PATCH /v1/rooms/{roomId}/messages/{seq}').requestBody.content['application/json'].schema, {
        $ref: '#/components/schemas/EditMessage',
      });
      assert.deepEqual([schemas.ChangesLimit.minimum, schemas.ChangesLimit.maximum, schemas.ChangesLimit.default], [1, 100, 100]);
      assert.equal(schemas.ModSeq.minimum, 0);
      assert.equal(schemas.RoomId.pattern, '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$');
      assert.deepEqual([schemas.PageLimit.minimum, schemas.PageLimit.maximum, schemas.PageLimit.default], [1, 100, 50]);
      assert.deepEqual(post.requestBody.content['application/json'].schema, { $ref: '#/components/schemas/PostMessage' });
    });

    async function postForSchema(inst: Instance, body: object): Promise<HttpAnswer> {
      await call(inst, 'PUT', '/v1/rooms/doc-room', { body: { visibility: 'public' } });
      return call(inst, 'POST', '/v1/rooms/doc-room/messages', { body });
    }

    it('/docs serves Swagger UI (no key) whose scripts and styles load', async () => {
      const page = await call(A, 'GET', '/docs', { key: null });
      assert.equal(page.status, 200);
      assert.match(page.contentType, /text\/html/);
      assert.match(page.text, /swagger-ui/i);
      const assets = [...page.text.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => m[1]);
      assert.ok(assets.length >= 2, `assets referenced: ${assets.join(', ')}`);
      for (const asset of assets) {
        const res = await fetch(new URL(asset, `${A.url}/docs`), { signal: AbortSignal.timeout(WAIT_MS) });
        assert.equal(res.status, 200, asset);
        await res.arrayBuffer();
      }
    });
  });
});
