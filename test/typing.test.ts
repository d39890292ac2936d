import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, KINDS, sleep, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import type { Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'typing-e2e-key-0123456789abcdef';
/** Long enough for a push that was going to come, after the one we waited for already did. */
const SETTLE_MS = 300;
/** The protocol's expiry: 5 s ± 1 s. */
const TTL_MIN_MS = 4000;
const TTL_MAX_MS = 6000;

interface Placed {
  label: string;
  client: TestClient;
}

const typingIn = (c: TestClient, roomId: string) => c.pushesOf('typing').filter((t) => t.roomId === roomId);

describe('typing', () => {
  let cluster: Cluster;
  let A: Instance;
  let B: Instance;

  before(async () => {
    cluster = await startCluster(2, { API_KEYS: API_KEY });
    [A, B] = cluster.instances;
  });
  after(() => cluster.stop());

  async function client(inst: Instance, kind: Kind, user: string, rooms: string[] = []): Promise<TestClient> {
    const c = cluster.track(await connect(kind, inst.url, await tokenFor(user)));
    for (const roomId of rooms) await c.ok('room.join', { roomId });
    return c;
  }

  /** `user` on every instance with every client kind, joined to `rooms`. */
  async function everywhere(user: string, rooms: string[]): Promise<Placed[]> {
    const placed: Placed[] = [];
    for (const inst of cluster.instances)
      for (const kind of KINDS) placed.push({ label: `${user}@${inst.name}/${kind}`, client: await client(inst, kind, user, rooms) });
    return placed;
  }

  for (const kind of ['io', 'ws'] as const) {
    it(`${kind}: start and stop reach the other users' joined connections on both instances, never the typer's own`, async () => {
      const roomId = `typing-basic-${kind}`;
      const typer = await client(A, kind, 'alice', [roomId]);
      const typerElsewhere = await everywhere('alice', [roomId]);
      const others = await everywhere('bob', [roomId]);
      const notJoined = await client(B, 'ws', 'carol', ['some-other-room']);

      assert.deepEqual(await typer.ok('typing.start', { roomId }), { roomId });
      await Promise.all(others.map((o) => o.client.waitFor('typing', (t) => t.roomId === roomId && t.typing === true)));
      assert.deepEqual(await typer.ok('typing.stop', { roomId }), { roomId });
      await Promise.all(others.map((o) => o.client.waitFor('typing', (t) => t.roomId === roomId && t.typing === false)));
      await sleep(SETTLE_MS);

      for (const o of others)
        assert.deepEqual(
          typingIn(o.client, roomId),
          [
            { roomId, userId: 'alice', typing: true },
            { roomId, userId: 'alice', typing: false },
          ],
          o.label,
        );
      for (const own of [typer, ...typerElsewhere.map((p) => p.client)]) assert.deepEqual(typingIn(own, roomId), [], 'the typer’s own');
      assert.deepEqual(notJoined.pushesOf('typing'), [], 'a connection that did not join the room');
    });
  }

  it('a start without a stop expires after 5 s (±1 s) with typing:false; a repeated start renews it without a new push', async () => {
    const renewed = 'typing-renewed';
    const plain = 'typing-expires';
    const watcherB = await client(B, 'io', 'bob', [renewed, plain]);
    const watcherA = await client(A, 'ws', 'bob', [renewed, plain]);
    const ioTyper = await client(A, 'io', 'dave', [renewed]);
    const wsTyper = await client(B, 'ws', 'erin', [plain]);

    const started = Date.now();
    await Promise.all([ioTyper.ok('typing.start', { roomId: renewed }), wsTyper.ok('typing.start', { roomId: plain })]);
    await sleep(2500);
    await ioTyper.ok('typing.start', { roomId: renewed });
    const renewedAt = Date.now();

    const plainStop = await watcherB.waitFor('typing', (t) => t.roomId === plain && !t.typing, 8000);
    const plainElapsed = Date.now() - started;
    assert.deepEqual(plainStop, { roomId: plain, userId: 'erin', typing: false });
    assert.ok(plainElapsed >= TTL_MIN_MS && plainElapsed <= TTL_MAX_MS + 300, `expired after ${plainElapsed} ms`);

    await watcherB.waitFor('typing', (t) => t.roomId === renewed && !t.typing, 8000);
    const renewedElapsed = Date.now() - renewedAt;
    assert.ok(renewedElapsed >= TTL_MIN_MS && renewedElapsed <= TTL_MAX_MS + 300, `expired ${renewedElapsed} ms after the renewal`);
    await watcherA.waitFor('typing', (t) => t.roomId === renewed && !t.typing, 2000);
    await sleep(SETTLE_MS);
    for (const w of [watcherA, watcherB]) {
      assert.deepEqual(
        typingIn(w, renewed).map((t) => t.typing),
        [true, false],
        'one start push for two starts, one stop',
      );
      assert.deepEqual(
        typingIn(w, plain).map((t) => t.typing),
        [true, false],
      );
    }
  });

  for (const kind of ['io', 'ws'] as const) {
    it(`${kind}: leaving the room and disconnecting stop typing with typing:false`, async () => {
      const roomId = `typing-ends-${kind}`;
      const watcher = await client(B, kind === 'io' ? 'ws' : 'io', 'bob', [roomId]);
      const leaver = await client(A, kind, 'frank', [roomId]);
      const closer = await client(A, kind, 'grace', [roomId]);
      await leaver.ok('typing.start', { roomId });
      await closer.ok('typing.start', { roomId });
      await watcher.waitFor('typing', (t) => t.userId === 'frank' && t.typing);
      await watcher.waitFor('typing', (t) => t.userId === 'grace' && t.typing);

      const t0 = Date.now();
      await leaver.ok('room.leave', { roomId });
      closer.close();
      await watcher.waitFor('typing', (t) => t.userId === 'frank' && !t.typing, 2000);
      await watcher.waitFor('typing', (t) => t.userId === 'grace' && !t.typing, 2000);
      assert.ok(Date.now() - t0 < 2000, 'well before the expiry');
      await sleep(SETTLE_MS);
      assert.equal(typingIn(watcher, roomId).length, 4);
    });
  }

  it('a user typing on two connections stays typing until the last one stops', async () => {
    const roomId = 'typing-two-connections';
    const watcher = await client(B, 'io', 'bob', [roomId]);
    const first = await client(A, 'io', 'heidi', [roomId]);
    const second = await client(A, 'ws', 'heidi', [roomId]);
    await first.ok('typing.start', { roomId });
    await second.ok('typing.start', { roomId });
    await watcher.waitFor('typing', (t) => t.roomId === roomId && t.typing);
    await first.ok('typing.stop', { roomId });
    await sleep(SETTLE_MS);
    assert.deepEqual(
      typingIn(watcher, roomId).map((t) => t.typing),
      [true],
    );
    await second.ok('typing.stop', { roomId });
    await watcher.waitFor('typing', (t) => t.roomId === roomId && !t.typing);
  });

  it('answers FORBIDDEN on typing.start and typing.stop to non-members of a private room, on both transports; members may type', async () => {
    const roomId = 'typing-private';
    const put = await fetch(`${A.url}/v1/rooms/${roomId}`, {
      method: 'PUT',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ visibility: 'private' }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(put.status, 201);
    for (const m of ['ivan', 'judy']) {
      const r = await fetch(`${A.url}/v1/rooms/${roomId}/members/${m}`, {
        method: 'PUT',
        headers: { 'x-api-key': API_KEY },
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(r.status, 204);
    }
    const member = await client(B, 'io', 'judy', [roomId]);
    for (const [inst, kind] of [
      [A, 'io'],
      [B, 'ws'],
    ] as const) {
      const outsider = await client(inst, kind, 'mallory');
      for (const event of ['typing.start', 'typing.stop']) {
        const r = await outsider.request(event, { roomId });
        assert.equal(r.ok, false, `${kind} ${event}`);
        assert.equal(r.error?.code, 'FORBIDDEN', `${kind} ${event}`);
      }
    }
    const typer = await client(A, 'ws', 'ivan');
    await typer.ok('typing.start', { roomId });
    assert.deepEqual(await member.waitFor('typing', (t) => t.roomId === roomId), { roomId, userId: 'ivan', typing: true });
    await typer.ok('typing.stop', { roomId });
    await sleep(SETTLE_MS);
    assert.ok(!member.pushesOf('typing').some((t) => t.userId === 'mallory'));
  });

  it('a member removed while typing gets FORBIDDEN on the next renewal, which ends the typing; nothing starts again', async () => {
    const roomId = 'typing-removed';
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${A.url}/v1/rooms/${roomId}${path}`, {
        method,
        headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(5000),
      });
    assert.equal((await call('PUT', '', { visibility: 'private' })).status, 201);
    for (const m of ['kate', 'leo']) assert.equal((await call('PUT', `/members/${m}`)).status, 204);
    const member = await client(B, 'io', 'leo', [roomId]);
    // Not joined: typing needs no join, so the removal has no connection to evict.
    const typer = await client(A, 'ws', 'kate');
    await typer.ok('typing.start', { roomId });
    await member.waitFor('typing', (t) => t.roomId === roomId && t.typing === true);
    assert.equal((await call('DELETE', '/members/kate')).status, 204);
    for (let i = 0; i < 2; i++) {
      const r = await typer.request('typing.start', { roomId });
      assert.equal(r.error?.code, 'FORBIDDEN', JSON.stringify(r));
    }
    await member.waitFor('typing', (t) => t.roomId === roomId && t.typing === false, 1000);
    await sleep(SETTLE_MS);
    assert.deepEqual(
      typingIn(member, roomId).map((t) => t.typing),
      [true, false],
    );
  });

  it('refuses a typing request without a valid roomId with VALIDATION_FAILED', async () => {
    const c = await client(A, 'ws', 'oscar');
    for (const data of [{}, { roomId: '' }, { roomId: 'bad room' }]) {
      const r = await c.request('typing.start', data);
      assert.equal(r.error?.code, 'VALIDATION_FAILED', JSON.stringify(data));
      assert.deepEqual(r.error?.details, { fields: ['roomId'] });
    }
  });
});
