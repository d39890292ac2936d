import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import type { Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'presence-e2e-key-0123456789abcdef';
const READ_KEY = 'presence-e2e-read-key-0123456789';
/** Short, so a killed instance's users leave within about 2 s here (4/3 of the lease). */
const LEASE_MS = 1500;
/** Long enough for a push that was going to come, after the one we waited for already did. */
const SETTLE_MS = 500;

async function api(inst: Instance, method: 'GET' | 'PUT' | 'DELETE', path: string, key: string | null = API_KEY) {
  const headers: Record<string, string> = {};
  if (key !== null) headers['x-api-key'] = key;
  if (method === 'PUT') headers['content-type'] = 'application/json';
  const res = await fetch(`${inst.url}${path}`, {
    method,
    headers,
    body: method === 'PUT' && !path.includes('/members/') ? JSON.stringify({ visibility: 'private' }) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const changesOf = (client: TestClient, event: 'presence.joined' | 'presence.left', roomId: string, userId: string) =>
  client.pushesOf(event).filter((d) => d.roomId === roomId && d.userId === userId).length;

const usersOf = (reply: { users: { userId: string }[] }) => reply.users.map((u) => u.userId);

describe('presence across instances and transports', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;
  let C: Instance;

  before(async () => {
    cluster = await startCluster(3, { API_KEYS: `${API_KEY},${READ_KEY}:read`, PRESENCE_LEASE_MS: String(LEASE_MS) });
    [A, B, C] = cluster.instances;
  });
  after(() => cluster.stop());

  async function joined(kind: Kind, inst: Instance, user: string, roomId: string): Promise<TestClient> {
    const client = cluster.track(await connect(kind, inst.url, await tokenFor(user)));
    await client.ok('room.join', { roomId });
    return client;
  }

  it('pushes one presence.joined per user and one presence.left when its last connection goes, on every instance', async () => {
    const room = 'presence-once';
    const watchA = await joined('ws', A, 'watcher-a', room);
    await watchA.waitFor('presence.joined', (d) => d.userId === 'watcher-a');
    const watchB = await joined('io', B, 'watcher-b', room);
    await watchA.waitFor('presence.joined', (d) => d.userId === 'watcher-b');

    const ann = [await joined('io', A, 'ann', room), await joined('ws', B, 'ann', room), await joined('io-polling', B, 'ann', room)];
    for (const w of [watchA, watchB, ann[0]]) await w.waitFor('presence.joined', (d) => d.roomId === room && d.userId === 'ann');
    await sleep(SETTLE_MS);
    for (const w of [watchA, watchB, ann[0]]) assert.equal(changesOf(w, 'presence.joined', room, 'ann'), 1, `${w.kind}: ann joined once`);
    for (const inst of [A, B]) {
      const probe = cluster.track(await connect('ws', inst.url, await tokenFor('prober')));
      assert.deepEqual(usersOf(await probe.ok('presence.list', { roomId: room })), ['ann', 'watcher-a', 'watcher-b'], inst.name);
      probe.close();
    }

    // Two of ann's three connections go (a close and a leave): she is still present.
    ann[1].close();
    await ann[2].ok('room.leave', { roomId: room });
    await sleep(SETTLE_MS);
    assert.equal(changesOf(watchA, 'presence.left', room, 'ann'), 0, 'no left while a connection remains');
    assert.deepEqual(usersOf(await watchB.ok('presence.list', { roomId: room })), ['ann', 'watcher-a', 'watcher-b']);

    ann[0].close();
    for (const w of [watchA, watchB]) await w.waitFor('presence.left', (d) => d.roomId === room && d.userId === 'ann');
    await sleep(SETTLE_MS);
    for (const w of [watchA, watchB]) assert.equal(changesOf(w, 'presence.left', room, 'ann'), 1, `${w.kind}: ann left once`);
    assert.deepEqual(usersOf(await watchA.ok('presence.list', { roomId: room })), ['watcher-a', 'watcher-b']);
  });

  it('answers presence.list without joining, refuses non-members of a private room, and validates', async () => {
    const room = 'presence-private';
    assert.equal((await api(A, 'PUT', `/v1/rooms/${room}`)).status, 201);
    assert.equal((await api(A, 'PUT', `/v1/rooms/${room}/members/mia`)).status, 204);
    await joined('ws', B, 'mia', room);
    for (const kind of ['io', 'ws'] as Kind[]) {
      for (const inst of [A, B]) {
        const member = cluster.track(await connect(kind, inst.url, await tokenFor('mia')));
        assert.deepEqual(await member.ok('presence.list', { roomId: room }), { roomId: room, users: [{ userId: 'mia' }], hasMore: false });
        const stranger = cluster.track(await connect(kind, inst.url, await tokenFor('stranger')));
        assert.equal((await stranger.request('presence.list', { roomId: room })).error?.code, 'FORBIDDEN');
        const bad = await stranger.request('presence.list', { roomId: '' });
        assert.equal(bad.error?.code, 'VALIDATION_FAILED');
        assert.deepEqual(bad.error?.details, { fields: ['roomId'] });
        assert.equal((await stranger.request('presence.list', 'lobby')).error?.code, 'VALIDATION_FAILED');
        assert.deepEqual(await stranger.ok('presence.list', { roomId: 'presence-nobody-here' }), {
          roomId: 'presence-nobody-here',
          users: [],
          hasMore: false,
        });
      }
    }
  });

  it('a member removed from a private room leaves its presence (room.removed), pushed once', async () => {
    const room = 'presence-evict';
    assert.equal((await api(A, 'PUT', `/v1/rooms/${room}`)).status, 201);
    for (const u of ['owner', 'guest']) assert.equal((await api(A, 'PUT', `/v1/rooms/${room}/members/${u}`)).status, 204);
    const owner = await joined('io', A, 'owner', room);
    const guests = [await joined('ws', B, 'guest', room), await joined('io', A, 'guest', room)];
    await owner.waitFor('presence.joined', (d) => d.userId === 'guest');
    assert.equal((await api(B, 'DELETE', `/v1/rooms/${room}/members/guest`)).status, 204);
    for (const g of guests) await g.waitFor('room.removed', (d) => d.roomId === room);
    await owner.waitFor('presence.left', (d) => d.roomId === room && d.userId === 'guest');
    await sleep(SETTLE_MS);
    assert.equal(changesOf(owner, 'presence.left', room, 'guest'), 1);
    assert.deepEqual(usersOf(await owner.ok('presence.list', { roomId: room })), ['owner']);
  });

  it('GET /v1/rooms/{roomId}/presence lists the users present (read-only keys too); 404 for a missing room', async () => {
    const room = 'presence-http';
    await joined('ws', A, 'zoe', room);
    await joined('io', B, 'yan', room);
    for (const inst of [A, B]) {
      for (const key of [API_KEY, READ_KEY]) {
        const r = await api(inst, 'GET', `/v1/rooms/${room}/presence`, key);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.deepEqual(r.body, { roomId: room, users: [{ userId: 'yan' }, { userId: 'zoe' }], hasMore: false });
      }
    }
    assert.equal((await api(A, 'GET', '/v1/rooms/presence-missing/presence')).status, 404);
    assert.equal((await api(A, 'GET', `/v1/rooms/${room}/presence`, null)).status, 401);
    assert.equal((await api(A, 'GET', '/v1/rooms/bad%20id/presence')).status, 400);
    const doc: any = await (await fetch(`${A.url}/docs-json`, { signal: AbortSignal.timeout(5000) })).json();
    const op = doc.paths['/v1/rooms/{roomId}/presence']?.get;
    assert.ok(op, 'the route is in the OpenAPI document');
    assert.deepEqual(Object.keys(op.responses).sort(), ['200', '400', '401', '404', '503']);
  });

  it("an instance killed with SIGKILL: its users' presence.left reach the others within the lease, and no ghost stays", async () => {
    const room = 'presence-kill';
    const watchA = await joined('io', A, 'watch-kill', room);
    const doomed = [await joined('io', C, 'carl', room), await joined('ws', C, 'carl', room), await joined('ws', C, 'cleo', room)];
    const survivor = await joined('ws', B, 'cleo', room);
    for (const u of ['carl', 'cleo']) await watchA.waitFor('presence.joined', (d) => d.userId === u);
    assert.ok(doomed.length);

    const killedAt = Date.now();
    C.proc.kill('SIGKILL');
    await C.exited;
    const left = await watchA.waitFor('presence.left', (d) => d.roomId === room && d.userId === 'carl', 10_000);
    const elapsed = Date.now() - killedAt;
    assert.deepEqual(left, { roomId: room, userId: 'carl' });
    assert.ok(elapsed < 30_000, `left after ${elapsed} ms`);
    assert.ok(elapsed <= (LEASE_MS * 4) / 3 + 1500, `left after ${elapsed} ms, lease ${LEASE_MS} ms`);
    await survivor.waitFor('presence.left', (d) => d.userId === 'carl');
    await sleep(LEASE_MS);
    // cleo still has a connection on B: she stays, with no left pushed for her.
    for (const w of [watchA, survivor]) {
      assert.equal(changesOf(w, 'presence.left', room, 'carl'), 1, 'carl left once');
      assert.equal(changesOf(w, 'presence.left', room, 'cleo'), 0, 'cleo is still here');
      assert.deepEqual(usersOf(await w.ok('presence.list', { roomId: room })), ['cleo', 'watch-kill'], 'no ghosts');
    }
  });
});
