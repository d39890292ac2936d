import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, KINDS, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import type { Instance } from './support/instance.js';
import { apiCall, type Method } from './support/http-api.js';
import { tokenFor } from './support/tokens.js';
import { EMPTY_ROOM, ROOM_KEYS } from './support/message-shape.js';

const API_KEY = 'private-rooms-e2e-key-0123456789';
const SECOND_API_KEY = 'private-rooms-e2e-key-second-abcdef';
/** Long enough for a push that was going to come, after the one we waited for already did. */
const SETTLE_MS = 300;

/** One HTTP API call; `key: null` sends no X-API-Key. Bounded by 5 s. */
const api = (inst: Instance, method: Method, path: string, { body, key = API_KEY }: { body?: unknown; key?: string | null } = {}) =>
  apiCall(inst, method, path, { body, key });

const isIso = (v: unknown) => typeof v === 'string' && new Date(v).toISOString() === v;

/** A connection with a name for assertion messages: `user@instance/kind`. */
interface Placed {
  label: string;
  user: string;
  client: TestClient;
}

describe('private rooms and membership', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;

  before(async () => {
    cluster = await startCluster(2, { API_KEYS: `${API_KEY},${SECOND_API_KEY}` });
    [A, B] = cluster.instances;
  });
  after(() => cluster.stop());

  const storedIn = async (roomId: string) =>
    Number((await cluster.db.query<{ n: string }>('SELECT count(*) AS n FROM messages WHERE room_id = $1', [roomId]))[0].n);

  async function createRoom(roomId: string, visibility: 'public' | 'private', members: string[] = []): Promise<void> {
    const r = await api(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    for (const m of members) assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}/members/${m}`)).status, 204);
  }

  /** Connects `user` on each instance with each client kind (or those given), joined to `rooms`. */
  async function placeEverywhere(user: string, rooms: string[], kinds: Kind[] = KINDS): Promise<Placed[]> {
    const placed: Placed[] = [];
    for (const inst of cluster.instances) {
      for (const kind of kinds) {
        const client = cluster.track(await connect(kind, inst.url, await tokenFor(user)));
        for (const roomId of rooms) await client.ok('room.join', { roomId });
        placed.push({ label: `${user}@${inst.name}/${kind}`, user, client });
      }
    }
    return placed;
  }

  const waitForMessage = (placed: Placed[], id: string) =>
    Promise.all(placed.map((p) => p.client.waitFor('message.new', (m) => m.id === id)));

  /** After the pushes we waited for came, gives stray ones a moment, then asserts none of `ids` reached `placed`. */
  async function assertNeverGot(placed: Placed[], roomId: string, ids: string[]): Promise<void> {
    await sleep(SETTLE_MS);
    for (const p of placed) {
      const leaked = p.client.messagesIn(roomId).filter((m) => ids.includes(m.id));
      assert.deepEqual(leaked, [], `${p.label} received messages of ${roomId}`);
    }
  }

  async function postMessage(inst: Instance, roomId: string, senderId: string, body: string): Promise<any> {
    const r = await api(inst, 'POST', `/v1/rooms/${roomId}/messages`, { body: { body, senderId } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  }

  describe('HTTP API', () => {
    it('PUT /v1/rooms/{roomId} creates (201) then replaces (200); omitted title and metadata become null; GET reads it back', async () => {
      const roomId = 'http-room';
      const metadata = { team: 'core', level: 3, nested: { tags: ['a', 'b'], flag: true } };
      const created = await api(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private', title: 'Design review', metadata } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(Object.keys(created.body).sort(), ROOM_KEYS);
      const { createdAt, ...rest } = created.body;
      assert.deepEqual(rest, {
        roomId,
        visibility: 'private',
        title: 'Design review',
        metadata,
        ...EMPTY_ROOM,
      });
      assert.ok(isIso(createdAt), `createdAt ${createdAt}`);

      const again = await api(B, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private', title: 'Design review', metadata } });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.deepEqual(again.body, created.body);

      const replaced = await api(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'public' } });
      assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
      assert.deepEqual(replaced.body, {
        roomId,
        visibility: 'public',
        title: null,
        metadata: null,
        ...EMPTY_ROOM,
        createdAt,
      });

      const read = await api(B, 'GET', `/v1/rooms/${roomId}`);
      assert.equal(read.status, 200);
      assert.deepEqual(read.body, replaced.body);

      await postMessage(A, roomId, 'someone', 'counts in lastSeq');
      assert.equal((await api(A, 'GET', `/v1/rooms/${roomId}`)).body.lastSeq, 1);

      const explicitNulls = await api(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private', title: null, metadata: null } });
      assert.equal(explicitNulls.status, 200, JSON.stringify(explicitNulls.body));
      assert.deepEqual([explicitNulls.body.title, explicitNulls.body.metadata, explicitNulls.body.lastSeq], [null, null, 1]);
    });

    it('GET /v1/rooms/{roomId} answers 404 NOT_FOUND for a room that does not exist', async () => {
      const r = await api(A, 'GET', '/v1/rooms/no-such-room');
      assert.equal(r.status, 404);
      assert.equal(r.body.ok, false);
      assert.equal(r.body.error.code, 'NOT_FOUND');
    });

    it('member PUT and DELETE answer 204 and are idempotent; GET members lists { userId, role, lastReadSeq }', async () => {
      const roomId = 'membership-room';
      await createRoom(roomId, 'private');
      assert.deepEqual((await api(A, 'GET', `/v1/rooms/${roomId}/members`)).body, { members: [] });
      for (const [inst, user] of [
        [A, 'alice'],
        [B, 'alice'],
        [B, 'bob'],
      ] as const) {
        const r = await api(inst, 'PUT', `/v1/rooms/${roomId}/members/${user}`);
        assert.equal(r.status, 204);
        assert.equal(r.body, null, 'no body with 204');
      }
      const listed = await api(B, 'GET', `/v1/rooms/${roomId}/members`);
      assert.equal(listed.status, 200);
      assert.deepEqual(
        [...listed.body.members].sort((x: any, y: any) => x.userId.localeCompare(y.userId)),
        [
          { userId: 'alice', role: 'member', lastReadSeq: 0 },
          { userId: 'bob', role: 'member', lastReadSeq: 0 },
        ],
      );
      for (const [inst, user] of [
        [A, 'alice'],
        [B, 'alice'],
        [A, 'never-a-member'],
      ] as const) {
        const r = await api(inst, 'DELETE', `/v1/rooms/${roomId}/members/${user}`);
        assert.equal(r.status, 204, `DELETE ${user}`);
        assert.equal(r.body, null);
      }
      assert.deepEqual((await api(A, 'GET', `/v1/rooms/${roomId}/members`)).body, {
        members: [{ userId: 'bob', role: 'member', lastReadSeq: 0 }],
      });
    });

    it('member routes on a room that does not exist answer 404 NOT_FOUND and create nothing', async () => {
      const roomId = 'missing-room';
      for (const [method, path] of [
        ['PUT', `/v1/rooms/${roomId}/members/alice`],
        ['DELETE', `/v1/rooms/${roomId}/members/alice`],
        ['GET', `/v1/rooms/${roomId}/members`],
      ] as const) {
        const r = await api(B, method, path);
        assert.equal(r.status, 404, `${method} ${path}`);
        assert.equal(r.body.ok, false);
        assert.equal(r.body.error.code, 'NOT_FOUND', `${method} ${path}: ${JSON.stringify(r.body)}`);
        assert.equal(typeof r.body.error.message, 'string');
      }
      assert.equal((await api(A, 'GET', `/v1/rooms/${roomId}`)).status, 404, 'the room was not created');
    });

    it('401 UNAUTHORIZED without X-API-Key or with a wrong one, on every route; any configured key works', async () => {
      const roomId = 'guarded-room';
      const routes: ['GET' | 'PUT' | 'DELETE' | 'POST', string, unknown][] = [
        ['PUT', `/v1/rooms/${roomId}`, { visibility: 'private' }],
        ['GET', `/v1/rooms/${roomId}`, undefined],
        ['PUT', `/v1/rooms/${roomId}/members/alice`, undefined],
        ['DELETE', `/v1/rooms/${roomId}/members/alice`, undefined],
        ['GET', `/v1/rooms/${roomId}/members`, undefined],
        ['POST', `/v1/rooms/${roomId}/messages`, { body: 'hi', senderId: 'svc' }],
      ];
      for (const key of [null, 'wrong-key-0123456789abcdef', `${API_KEY}x`, '']) {
        for (const [method, path, body] of routes) {
          const r = await api(A, method, path, { body, key });
          assert.equal(r.status, 401, `${method} ${path} with key ${JSON.stringify(key)}`);
          assert.equal(r.body.ok, false);
          assert.equal(r.body.error.code, 'UNAUTHORIZED');
        }
      }
      assert.equal((await api(A, 'GET', `/v1/rooms/${roomId}`)).status, 404, 'refused requests changed nothing');
      assert.equal(await storedIn(roomId), 0);
      const withSecond = await api(B, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private' }, key: SECOND_API_KEY });
      assert.equal(withSecond.status, 201, JSON.stringify(withSecond.body));
    });

    it('400 VALIDATION_FAILED for a bad title, metadata or visibility, naming the field; nothing is created', async () => {
      const atLimit = { pad: 'x'.repeat(16 * 1024 - '{"pad":""}'.length) };
      assert.equal(JSON.stringify(atLimit).length, 16 * 1024);
      const overLimit = { pad: `${atLimit.pad}x` };
      const bad: [string, unknown, string | null][] = [
        ['title over 200 characters', { visibility: 'private', title: 't'.repeat(201) }, 'title'],
        ['title not a string', { visibility: 'private', title: 42 }, 'title'],
        ['metadata an array', { visibility: 'private', metadata: [1, 2] }, 'metadata'],
        ['metadata a string', { visibility: 'private', metadata: '{"a":1}' }, 'metadata'],
        ['metadata a number', { visibility: 'private', metadata: 7 }, 'metadata'],
        ['metadata over 16 KiB', { visibility: 'private', metadata: overLimit }, 'metadata'],
        ['visibility unknown', { visibility: 'secret' }, 'visibility'],
        ['visibility missing', { title: 'no visibility' }, 'visibility'],
        ['body not an object', [{ visibility: 'private' }], null],
      ];
      for (const [i, [label, body, field]] of bad.entries()) {
        const roomId = `invalid-room-${i}`;
        const r = await api(A, 'PUT', `/v1/rooms/${roomId}`, { body });
        assert.equal(r.status, 400, `${label}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.ok, false);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED', label);
        if (field) assert.ok(r.body.error.details?.fields?.includes(field), `${label}: ${JSON.stringify(r.body.error)}`);
        assert.equal((await api(B, 'GET', `/v1/rooms/${roomId}`)).status, 404, `${label}: nothing created`);
      }
      const edge = await api(A, 'PUT', '/v1/rooms/edge-room', {
        body: { visibility: 'private', title: 't'.repeat(200), metadata: atLimit },
      });
      assert.equal(edge.status, 201, `200-character title and exactly 16 KiB of metadata are allowed: ${JSON.stringify(edge.body)}`);
      assert.deepEqual(edge.body.metadata, atLimit);
    });
  });

  describe('membership checks on sockets', () => {
    it('non-members get FORBIDDEN on room.join, message.send and message.history over socket.io and ws; nothing is stored', async () => {
      const roomId = 'secret-room';
      await createRoom(roomId, 'private', ['insider']);
      const first = await postMessage(A, roomId, 'insider', 'before the outsiders come');
      const outsiders = await placeEverywhere('outsider', [], ['io', 'ws']);
      for (const { label, client } of outsiders) {
        const requests: [string, object][] = [
          ['room.join', { roomId }],
          ['room.join', { roomId, sinceSeq: 0 }],
          ['message.send', { roomId, body: 'let me in', clientMsgId: `outsider-${label.replace(/\W/g, '-')}` }],
          ['message.send', { roomId, body: 'no clientMsgId' }],
          ['message.history', { roomId }],
          ['message.history', { roomId, afterSeq: 0 }],
        ];
        for (const [event, data] of requests) {
          const r = await client.request(event, data);
          assert.equal(r.ok, false, `${label} ${event}: ${JSON.stringify(r)}`);
          assert.equal(r.error?.code, 'FORBIDDEN', `${label} ${event}: ${JSON.stringify(r)}`);
        }
        assert.equal(client.isOpen, true, `${label} stays connected`);
      }
      assert.equal(await storedIn(roomId), 1, 'refused sends stored nothing');
      assert.equal((await api(B, 'GET', `/v1/rooms/${roomId}`)).body.lastSeq, 1, 'and used up no seq');

      // A refused join subscribed nothing: the room's next message does not reach the outsiders.
      const insiders = await placeEverywhere('insider', [roomId], ['io', 'ws']);
      const next = await postMessage(B, roomId, 'insider', 'insiders only');
      assert.equal(next.seq, 2);
      await waitForMessage(insiders, next.id);
      await assertNeverGot(outsiders, roomId, [next.id]);
      assert.deepEqual(
        (await api(A, 'GET', `/v1/rooms/${roomId}/messages`)).body.messages.map((m: any) => m.id),
        [first.id, next.id],
      );
    });

    it('members join, send and read history over socket.io and ws, and receive each other’s messages', async () => {
      const roomId = 'members-only';
      await createRoom(roomId, 'private', ['carol', 'dave']);
      const members = [...(await placeEverywhere('carol', [], ['io', 'ws'])), ...(await placeEverywhere('dave', [], ['io', 'ws']))];
      for (const { label, client } of members) {
        const joined = await client.request('room.join', { roomId, sinceSeq: 0 });
        assert.equal(joined.ok, true, `${label}: ${JSON.stringify(joined)}`);
        assert.equal(joined.data.roomId, roomId);
      }
      const sent: any[] = [];
      for (const { label, client } of members) {
        const r = await client.request('message.send', { roomId, body: `from ${label}` });
        assert.equal(r.ok, true, `${label}: ${JSON.stringify(r)}`);
        assert.equal(r.data.senderId, label.split('@')[0]);
        sent.push(r.data);
      }
      assert.deepEqual(
        sent.map((m) => m.seq),
        members.map((_, i) => i + 1),
      );
      await Promise.all(sent.map((m) => waitForMessage(members, m.id)));
      for (const { label, client } of members) {
        const h = await client.request('message.history', { roomId });
        assert.equal(h.ok, true, `${label}: ${JSON.stringify(h)}`);
        assert.deepEqual(
          h.data.messages.map((m: any) => m.id),
          sent.map((m) => m.id),
        );
      }
    });

    it('messages posted over HTTP by a trusted service skip membership and reach the members live', async () => {
      const roomId = 'service-posts';
      await createRoom(roomId, 'private', ['erin']);
      const members = await placeEverywhere('erin', [roomId], ['io', 'ws']);
      const posted = await api(B, 'POST', `/v1/rooms/${roomId}/messages`, {
        body: { body: 'from the billing service', senderId: 'billing-bot' },
      });
      assert.equal(posted.status, 201, JSON.stringify(posted.body));
      assert.equal(posted.body.senderId, 'billing-bot');
      assert.equal(posted.body.seq, 1);
      await waitForMessage(members, posted.body.id);
      assert.equal(await storedIn(roomId), 1);
      const listed = await api(A, 'GET', `/v1/rooms/${roomId}/members`);
      assert.deepEqual(listed.body.members, [{ userId: 'erin', role: 'member', lastReadSeq: 0 }], 'posting made nobody a member');
    });
  });

  describe('room names', () => {
    it('a room named exactly like another connection’s socket id does not reach that connection; its members get each message once', async () => {
      // socket.io puts each socket in a room named by its id; only ids a roomId may equal are of use.
      let victim: TestClient;
      do victim = cluster.track(await connect('io', A.url, await tokenFor('socket-id-victim')));
      while (!/^[A-Za-z0-9]/.test(victim.session?.connectionId ?? ''));
      const roomId = victim.session!.connectionId;
      const members = [...(await placeEverywhere('socket-id-namer', [roomId], ['io', 'ws']))];
      const r = await members[0].client.request('message.send', { roomId, body: 'to the room, not to the socket' });
      assert.ok(r.ok, JSON.stringify(r));
      const id = (r.data as { id: string }).id;
      await waitForMessage(members, id);
      await sleep(SETTLE_MS);
      assert.deepEqual(victim.pushesOf('message.new'), [], 'the socket named like the room got its message');
      for (const m of members) assert.equal(m.client.messagesIn(roomId).length, 1, m.label);
    });
  });

  describe('losing access while connected', () => {
    it('making a public room private takes non-members’ connections on both instances and all transports out of it', async () => {
      const roomId = 'going-private';
      const lobby = 'going-private-lobby';
      await createRoom(roomId, 'public', ['gp-member']);
      const members = await placeEverywhere('gp-member', [roomId, lobby]);
      const outsiders = await placeEverywhere('gp-outsider', [roomId, lobby]);
      const everyone = [...members, ...outsiders];

      const whilePublic = await postMessage(A, roomId, 'gp-member', 'still public');
      await waitForMessage(everyone, whilePublic.id);

      const turned = await api(B, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private', title: 'now private' } });
      assert.equal(turned.status, 200, JSON.stringify(turned.body));
      await Promise.all(outsiders.map((p) => p.client.waitFor('room.removed', (d) => d.roomId === roomId)));
      // Already private: replacing its settings again takes nobody else out.
      assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}`, { body: { visibility: 'private', title: 'renamed' } })).status, 200);

      // From a member's socket on one instance and over HTTP on the other.
      const bySocket = await members[KINDS.length].client.ok('message.send', { roomId, body: 'members only, by socket' });
      const byHttp = await postMessage(A, roomId, 'gp-member', 'members only, over HTTP');
      await Promise.all([waitForMessage(members, bySocket.id), waitForMessage(members, byHttp.id)]);
      await assertNeverGot(outsiders, roomId, [bySocket.id, byHttp.id]);
      for (const p of members) assert.deepEqual(p.client.pushesOf('room.removed'), [], `${p.label} keeps the room`);
      for (const p of outsiders) assert.deepEqual(p.client.pushesOf('room.removed'), [{ roomId }], `${p.label}: exactly one room.removed`);

      // Out of that room only: still connected, still in the lobby.
      const inLobby = await postMessage(B, lobby, 'gp-member', 'lobby is public');
      await waitForMessage(everyone, inLobby.id);
      for (const p of outsiders) {
        assert.equal(p.client.isOpen, true, p.label);
        const again = await p.client.request('room.join', { roomId });
        assert.equal(again.error?.code, 'FORBIDDEN', `${p.label} rejoin: ${JSON.stringify(again)}`);
      }
    });

    it('DELETE of a member takes that user’s connections out on every instance; other members are unaffected; rejoin is FORBIDDEN', async () => {
      const roomId = 'losing-a-member';
      await createRoom(roomId, 'private', ['lm-stays', 'lm-removed']);
      const stays = await placeEverywhere('lm-stays', [roomId]);
      const removed = await placeEverywhere('lm-removed', [roomId]);

      const earlier = await postMessage(A, roomId, 'lm-stays', 'both members here');
      await waitForMessage([...stays, ...removed], earlier.id);

      // Removed through B: A's connections learn it through the relay.
      assert.equal((await api(B, 'DELETE', `/v1/rooms/${roomId}/members/lm-removed`)).status, 204);
      await Promise.all(removed.map((p) => p.client.waitFor('room.removed', (d) => d.roomId === roomId)));

      const afterRemoval = await stays[0].client.ok('message.send', { roomId, body: 'after the removal' });
      await waitForMessage(stays, afterRemoval.id);
      await assertNeverGot(removed, roomId, [afterRemoval.id]);
      for (const p of stays) assert.deepEqual(p.client.pushesOf('room.removed'), [], `${p.label} unaffected`);

      for (const p of removed) {
        assert.deepEqual(p.client.pushesOf('room.removed'), [{ roomId }], p.label);
        assert.equal(p.client.isOpen, true, `${p.label} stays connected`);
        for (const [event, data] of [
          ['room.join', { roomId }],
          ['message.send', { roomId, body: 'am I still here?' }],
          ['message.history', { roomId }],
        ] as const) {
          const r = await p.client.request(event, data);
          assert.equal(r.error?.code, 'FORBIDDEN', `${p.label} ${event}: ${JSON.stringify(r)}`);
        }
      }
      assert.equal(await storedIn(roomId), 2);

      // Idempotent: a second DELETE changes nothing and pushes nothing more.
      assert.equal((await api(A, 'DELETE', `/v1/rooms/${roomId}/members/lm-removed`)).status, 204);
      await sleep(SETTLE_MS);
      for (const p of removed) assert.equal(p.client.pushesOf('room.removed').length, 1, p.label);

      // Added back, the user may join again.
      assert.equal((await api(A, 'PUT', `/v1/rooms/${roomId}/members/lm-removed`)).status, 204);
      const rejoined = await removed[0].client.request('room.join', { roomId });
      assert.equal(rejoined.ok, true, JSON.stringify(rejoined));
    });
  });
});
