import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, sleep, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { EventsStreamReader } from './support/events-stream.js';
import { apiCall } from './support/http-api.js';
import { eventsStreamOf, redisPrefix, UNLIMITED_RATES } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'moderation-api-key-0123456789';
const READ_KEY = 'moderation-read-key-0123456789';

/** The error a refused socket request answered with. */
async function refusal(client: TestClient, event: string, data: unknown) {
  const reply = await client.request(event, data);
  assert.equal(reply.ok, false, `${event} was not refused: ${JSON.stringify(reply)}`);
  return reply.error!;
}

describe('moderation: mute, ban, kick over sockets and HTTP (two instances)', () => {
  let cluster: Cluster;
  const prefix = redisPrefix();

  before(async () => {
    cluster = await startCluster(2, { API_KEYS: `${API_KEY},${READ_KEY}:read`, REDIS_PREFIX: prefix, ...UNLIMITED_RATES });
  });
  after(() => cluster?.stop());

  /** A public room with an owner (olga) and a moderator (mo); the others are plain users. */
  async function roomWithRoles(roomId: string): Promise<void> {
    const [A] = cluster.instances;
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${roomId}`, { key: API_KEY, body: { visibility: 'public' } })).status, 201);
    for (const [userId, role] of [
      ['olga', 'owner'],
      ['mo', 'moderator'],
    ])
      assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${roomId}/members/${userId}`, { key: API_KEY, body: { role } })).status, 204);
  }

  it('mutes: refused only for non-moderators and owners; in force on the other instance at once; lifted by unmute or by time', async () => {
    const [A, B] = cluster.instances;
    const roomId = 'mute-room';
    await roomWithRoles(roomId);
    const mo = cluster.track(await connect('ws', A.url, await tokenFor('mo')));
    const ann = cluster.track(await connect('io', B.url, await tokenFor('ann')));
    const ben = cluster.track(await connect('ws', B.url, await tokenFor('ben')));
    for (const c of [mo, ann, ben]) await c.ok('room.join', { roomId });
    const said = await ann.ok('message.send', { roomId, body: 'before the mute' });
    await ann.ok('reaction.add', { roomId, seq: said.seq, key: 'wave' });

    assert.equal((await refusal(ben, 'moderation.mute', { roomId, userId: 'ann' })).code, 'FORBIDDEN');
    assert.equal((await refusal(mo, 'moderation.mute', { roomId, userId: 'olga' })).code, 'FORBIDDEN');
    assert.equal((await refusal(mo, 'moderation.mute', { roomId: 'no-such-room', userId: 'ann' })).code, 'FORBIDDEN');
    const bad = await refusal(mo, 'moderation.mute', { roomId, userId: 'ann', durationMs: 0 });
    assert.deepEqual([bad.code, bad.details.fields], ['VALIDATION_FAILED', ['durationMs']]);
    await ann.ok('message.send', { roomId, body: 'nobody muted me yet' });

    assert.deepEqual(await mo.ok('moderation.mute', { roomId, userId: 'ann' }), { roomId, userId: 'ann' });
    // ann is on the other instance: the mute was in force there before mo's reply.
    for (const [event, data] of [
      ['message.send', { roomId, body: 'muted?' }],
      ['message.edit', { roomId, seq: said.seq, body: 'edited while muted' }],
      ['reaction.add', { roomId, seq: said.seq, key: 'heart' }],
    ] as const) {
      const error = await refusal(ann, event, data);
      assert.deepEqual([error.code, error.details], ['FORBIDDEN', { reason: 'muted', until: null }], event);
    }
    // Reading, and taking a reaction back, are not speaking.
    await ann.ok('reaction.remove', { roomId, seq: said.seq, key: 'wave' });
    await ann.ok('message.read', { roomId, seq: said.seq });
    await ann.ok('message.history', { roomId });
    await ben.ok('message.send', { roomId, body: 'ben is not muted' });
    const listed = await apiCall(B, 'GET', `/v1/rooms/${roomId}/mutes`, { key: READ_KEY });
    assert.deepEqual([listed.status, listed.body], [200, { mutes: [{ userId: 'ann', until: null, reason: null }] }]);

    assert.deepEqual(await mo.ok('moderation.unmute', { roomId, userId: 'ann' }), { roomId, userId: 'ann' });
    await ann.ok('message.send', { roomId, body: 'unmuted' });
    assert.deepEqual((await apiCall(B, 'GET', `/v1/rooms/${roomId}/mutes`, { key: API_KEY })).body, { mutes: [] });

    // Over HTTP, with an end: `until` in the refusal, and sending works again once it passed.
    assert.equal((await apiCall(B, 'POST', `/v1/rooms/${roomId}/mutes/ann`, { key: API_KEY, body: { durationMs: 1500 } })).status, 204);
    const timed = await refusal(ann, 'message.send', { roomId, body: 'muted for a while' });
    assert.equal(timed.details.reason, 'muted');
    const until = Date.parse(timed.details.until);
    assert.ok(until > Date.now() && until <= Date.now() + 1500, timed.details.until);
    await sleep(until - Date.now() + 50);
    await ann.ok('message.send', { roomId, body: 'the mute ran out' });
    assert.deepEqual((await apiCall(A, 'GET', `/v1/rooms/${roomId}/mutes`, { key: API_KEY })).body, { mutes: [] });
    // Nothing the muted ann tried was stored.
    const history = await apiCall(A, 'GET', `/v1/rooms/${roomId}/messages?afterSeq=0`, { key: API_KEY });
    assert.deepEqual(
      history.body.messages.map((m: any) => m.body),
      ['before the mute', 'nobody muted me yet', 'ben is not muted', 'unmuted', 'the mute ran out'],
    );
    assert.equal(history.body.messages[0].body, 'before the mute');
  });

  it('bans: every connection of the user leaves the room on both instances before the reply, every room request is refused, unban lets them back', async () => {
    const [A, B] = cluster.instances;
    const roomId = 'ban-room';
    await roomWithRoles(roomId);
    const mo = cluster.track(await connect('io', A.url, await tokenFor('mo')));
    const bens = [
      cluster.track(await connect('ws', A.url, await tokenFor('ben'))),
      cluster.track(await connect('io', B.url, await tokenFor('ben'))),
      cluster.track(await connect('io-polling', B.url, await tokenFor('ben'))),
    ];
    const ann = cluster.track(await connect('ws', B.url, await tokenFor('ann')));
    for (const c of [mo, ann, ...bens]) await c.ok('room.join', { roomId });
    const posted = await bens[0]!.ok('message.send', { roomId, body: 'ben was here' });

    assert.deepEqual(await mo.ok('moderation.ban', { roomId, userId: 'ben', reason: 'spam' }), { roomId, userId: 'ben' });
    for (const ben of bens) {
      const removed = await ben.waitFor('room.removed', (d) => d.roomId === roomId);
      assert.deepEqual(removed, { roomId, reason: 'banned' });
    }
    const after = await ann.ok('message.send', { roomId, body: 'after the ban' });
    await ann.waitFor('message.new', (m) => m.seq === after.seq);
    await sleep(200);
    for (const ben of bens)
      assert.deepEqual(
        ben.messagesIn(roomId).filter((m) => m.seq === after.seq),
        [],
        ben.kind,
      );

    const [ben] = bens as [TestClient];
    for (const [event, data] of [
      ['room.join', { roomId }],
      ['room.leave', { roomId }],
      ['message.send', { roomId, body: 'let me back' }],
      ['message.edit', { roomId, seq: posted.seq, body: 'edited while banned' }],
      ['reaction.add', { roomId, seq: posted.seq, key: 'x' }],
      ['typing.stop', { roomId }],
      ['message.history', { roomId }],
      ['message.changes', { roomId, afterModSeq: 0 }],
      ['message.delete', { roomId, seq: posted.seq }],
      ['message.read', { roomId, seq: 1 }],
      ['reaction.remove', { roomId, seq: 1, key: 'x' }],
      ['typing.start', { roomId }],
      ['presence.list', { roomId }],
    ] as const) {
      const error = await refusal(ben, event, data);
      assert.deepEqual([error.code, error.details], ['FORBIDDEN', { reason: 'banned', until: null }], event);
    }
    // Another room is none of this ban's business.
    await ben.ok('room.join', { roomId: 'ban-elsewhere' });
    const bans = await apiCall(B, 'GET', `/v1/rooms/${roomId}/bans`, { key: API_KEY });
    assert.deepEqual(bans.body, { bans: [{ userId: 'ben', until: null, reason: 'spam' }] });

    // A moderator may delete anyone's message; an owner cannot be banned, not even by a moderator.
    await mo.ok('message.delete', { roomId, seq: posted.seq });
    assert.equal((await refusal(mo, 'moderation.ban', { roomId, userId: 'olga' })).code, 'FORBIDDEN');

    assert.equal((await apiCall(A, 'DELETE', `/v1/rooms/${roomId}/bans/ben`, { key: API_KEY })).status, 204);
    assert.equal((await apiCall(A, 'DELETE', `/v1/rooms/${roomId}/bans/ben`, { key: API_KEY })).status, 204);
    for (const c of bens) await c.ok('room.join', { roomId });
    await bens[1]!.ok('message.send', { roomId, body: 'back again' });
    assert.deepEqual((await apiCall(B, 'GET', `/v1/rooms/${roomId}/bans`, { key: API_KEY })).body, { bans: [] });
  });

  it('kicks: the user leaves the room everywhere and may join again; every action is an event out with who did it', async () => {
    const [A, B] = cluster.instances;
    const roomId = 'kick-room';
    await roomWithRoles(roomId);
    const stream = new EventsStreamReader(eventsStreamOf(prefix));
    const mo = cluster.track(await connect('ws', B.url, await tokenFor('mo')));
    const kims = [
      cluster.track(await connect('io', A.url, await tokenFor('kim'))),
      cluster.track(await connect('ws', B.url, await tokenFor('kim'))),
    ];
    for (const c of [mo, ...kims]) await c.ok('room.join', { roomId });

    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${roomId}/kicks/kim`, { key: API_KEY })).status, 204);
    for (const kim of kims) assert.deepEqual(await kim.waitFor('room.removed', (d) => d.roomId === roomId), { roomId, reason: 'kicked' });
    for (const kim of kims) await kim.ok('room.join', { roomId });
    assert.deepEqual(await mo.ok('moderation.kick', { roomId, userId: 'kim' }), { roomId, userId: 'kim' });
    await kims[0]!.waitFor('room.removed', (d) => d.roomId === roomId && kims[0]!.pushesOf('room.removed').length === 2);
    await mo.ok('moderation.ban', { roomId, userId: 'kim', durationMs: 60_000 });
    await mo.ok('moderation.unban', { roomId, userId: 'kim' });
    await mo.ok('moderation.mute', { roomId, userId: 'kim' });
    await mo.ok('moderation.unmute', { roomId, userId: 'kim' });

    const ours = (all: { type: string; roomId: string }[]) => all.filter((e) => e.roomId === roomId && e.type.startsWith('moderation.'));
    const events = await stream.waitUntil('moderation events', (all) => ours(all).length >= 6);
    await stream.close();
    const seen = (ours(events) as typeof events).map((e) => ({ type: e.type, ...(e.data as object) }));
    const banned = seen.find((e: any) => e.type === 'moderation.banned') as any;
    assert.ok(Date.parse(banned.until) > Date.now());
    assert.deepEqual(
      seen.map((e: any) => (e.type === 'moderation.banned' ? { ...e, until: 'set' } : e)),
      [
        { type: 'moderation.kicked', roomId, userId: 'kim', by: 'api' },
        { type: 'moderation.kicked', roomId, userId: 'kim', by: 'mo' },
        { type: 'moderation.banned', roomId, userId: 'kim', by: 'mo', until: 'set', reason: null },
        { type: 'moderation.unbanned', roomId, userId: 'kim', by: 'mo' },
        { type: 'moderation.muted', roomId, userId: 'kim', by: 'mo', until: null },
        { type: 'moderation.unmuted', roomId, userId: 'kim', by: 'mo' },
      ],
    );
  });

  it('HTTP: 404 for a missing room, 400 for bad input, 401 without a key, 403 for a read-only key; nothing stored', async () => {
    const [A] = cluster.instances;
    const roomId = 'mod-http-room';
    await roomWithRoles(roomId);
    assert.equal((await apiCall(A, 'POST', '/v1/rooms/no-such-room/mutes/ann', { key: API_KEY })).status, 404);
    assert.equal((await apiCall(A, 'GET', '/v1/rooms/no-such-room/bans', { key: API_KEY })).status, 404);
    for (const body of [
      { durationMs: 0 },
      { durationMs: -5 },
      { durationMs: 'soon' },
      { durationMs: 1.5 },
      { reason: 7 },
      { reason: 'x'.repeat(1001) },
    ]) {
      const res = await apiCall(A, 'POST', `/v1/rooms/${roomId}/bans/ann`, { key: API_KEY, body });
      assert.deepEqual([res.status, res.body?.error?.code], [400, 'VALIDATION_FAILED'], JSON.stringify(body));
    }
    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${roomId}/bans/${'u'.repeat(129)}`, { key: API_KEY })).status, 400);
    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${roomId}/bans/ann`, { key: null })).status, 401);
    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${roomId}/bans/ann`, { key: READ_KEY })).status, 403);
    assert.deepEqual((await apiCall(A, 'GET', `/v1/rooms/${roomId}/bans`, { key: READ_KEY })).body, { bans: [] });
  });

  it('moderation.list: the mutes and bans in force, as the HTTP lists say, on either instance and transport; moderators only; bad input changes nothing', async () => {
    const [A, B] = cluster.instances;
    const roomId = 'list-room';
    await roomWithRoles(roomId);
    const moWs = cluster.track(await connect('ws', A.url, await tokenFor('mo')));
    const olgaIo = cluster.track(await connect('io', B.url, await tokenFor('olga')));
    const moderators = [moWs, olgaIo];
    // Neither moderator joined the room: listing needs no join.
    for (const c of moderators) assert.deepEqual(await c.ok('moderation.list', { roomId }), { roomId, mutes: [], bans: [] }, c.kind);

    const started = Date.now();
    await moWs.ok('moderation.mute', { roomId, userId: 'ann' });
    await moWs.ok('moderation.mute', { roomId, userId: 'cat', durationMs: 60_000 });
    await moWs.ok('moderation.mute', { roomId, userId: 'eve', durationMs: 3000 });
    await moWs.ok('moderation.ban', { roomId, userId: 'ben', reason: 'spam' });
    await moWs.ok('moderation.ban', { roomId, userId: 'dan', durationMs: 60_000 });
    /** Both HTTP lists, read on the other instance: what moderation.list must answer. */
    const overHttp = async () => ({
      roomId,
      mutes: (await apiCall(B, 'GET', `/v1/rooms/${roomId}/mutes`, { key: READ_KEY })).body.mutes,
      bans: (await apiCall(B, 'GET', `/v1/rooms/${roomId}/bans`, { key: READ_KEY })).body.bans,
    });
    const http = await overHttp();
    // The mutes and bans were made on A; olga asks on B, over socket.io.
    for (const c of moderators) assert.deepEqual(await c.ok('moderation.list', { roomId }), http, c.kind);
    const summary = (list: { userId: string; until: string | null; reason: string | null }[]) =>
      list.map((s) => [
        s.userId,
        s.until === null ? 'until lifted' : Date.parse(s.until) - started > 55_000 ? 'a minute' : 'seconds',
        s.reason,
      ]);
    assert.deepEqual(summary(http.mutes), [
      ['ann', 'until lifted', null],
      ['cat', 'a minute', null],
      ['eve', 'seconds', null],
    ]);
    assert.deepEqual(summary(http.bans), [
      ['ben', 'until lifted', 'spam'],
      ['dan', 'a minute', null],
    ]);

    // Once eve's timed mute ran out it is not listed, by the service's clock, on either instance.
    await sleep(Math.max(0, Date.parse(http.mutes[2].until) - Date.now()) + 50);
    const later = await overHttp();
    assert.deepEqual(summary(later.mutes), summary(http.mutes).slice(0, 2));
    for (const c of moderators) assert.deepEqual(await c.ok('moderation.list', { roomId }), later, c.kind);

    // Not a moderator (either transport), a banned moderator, or a room that does not exist: FORBIDDEN.
    for (const kind of ['ws', 'io'] as const) {
      const pat = cluster.track(await connect(kind, kind === 'ws' ? B.url : A.url, await tokenFor('pat')));
      assert.equal((await refusal(pat, 'moderation.list', { roomId })).code, 'FORBIDDEN', kind);
    }
    assert.equal((await refusal(moWs, 'moderation.list', { roomId: 'no-such-room' })).code, 'FORBIDDEN');
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${roomId}/members/ben`, { key: API_KEY, body: { role: 'moderator' } })).status, 204);
    const ben = cluster.track(await connect('ws', B.url, await tokenFor('ben')));
    const banned = await refusal(ben, 'moderation.list', { roomId });
    assert.deepEqual([banned.code, banned.details], ['FORBIDDEN', { reason: 'banned', until: null }], 'a banned moderator');

    // Bad input, on both transports: the code moderation.mute answers it with, and nothing changes.
    for (const c of moderators)
      for (const [data, fields] of [
        [{}, ['roomId']],
        [{ roomId: '' }, ['roomId']],
        [{ roomId: 'no spaces' }, ['roomId']],
        [{ roomId: 7 }, ['roomId']],
        [{ roomId: 'r'.repeat(129) }, ['roomId']],
        [undefined, []],
        [null, []],
        [roomId, []],
        [[roomId], []],
      ] as const) {
        const bad = await refusal(c, 'moderation.list', data);
        assert.deepEqual([bad.code, bad.details], ['VALIDATION_FAILED', { fields }], `${c.kind} ${JSON.stringify(data)}`);
        assert.equal((await refusal(c, 'moderation.mute', data)).code, bad.code, `moderation.mute refuses ${JSON.stringify(data)} alike`);
      }
    assert.deepEqual(await overHttp(), later, 'nothing refused changed the lists');

    // An unmute and an unban on B are gone from what A answers at once.
    await olgaIo.ok('moderation.unmute', { roomId, userId: 'ann' });
    await olgaIo.ok('moderation.unban', { roomId, userId: 'ben' });
    const lifted = await moWs.ok('moderation.list', { roomId });
    assert.deepEqual([summary(lifted.mutes), summary(lifted.bans)], [[['cat', 'a minute', null]], [['dan', 'a minute', null]]]);
    assert.deepEqual(lifted, await overHttp());
  });

  it('slow mode: one message per slowModeMs per user across instances and transports; moderators and the HTTP API are not slowed; a resend is answered', async () => {
    const [A, B] = cluster.instances;
    const roomId = 'slow-room';
    await roomWithRoles(roomId);
    for (const slowModeMs of [-1, 3_600_001, 1.5, '500'])
      assert.equal(
        (await apiCall(A, 'PUT', `/v1/rooms/${roomId}`, { key: API_KEY, body: { visibility: 'public', slowModeMs } })).status,
        400,
        `slowModeMs ${slowModeMs}`,
      );
    const put = await apiCall(A, 'PUT', `/v1/rooms/${roomId}`, { key: API_KEY, body: { visibility: 'public', slowModeMs: 2000 } });
    assert.deepEqual([put.status, put.body.slowModeMs], [200, 2000]);
    assert.equal((await apiCall(B, 'GET', `/v1/rooms/${roomId}`, { key: READ_KEY })).body.slowModeMs, 2000);

    const annIo = cluster.track(await connect('io', A.url, await tokenFor('ann')));
    const annWs = cluster.track(await connect('ws', B.url, await tokenFor('ann')));
    const mo = cluster.track(await connect('io', B.url, await tokenFor('mo')));
    for (const c of [annIo, annWs, mo]) await c.ok('room.join', { roomId });

    const first = await annIo.ok('message.send', { roomId, body: 'first', clientMsgId: 'slow-1' });
    const slowed = await refusal(annWs, 'message.send', { roomId, body: 'too soon', clientMsgId: 'slow-2' });
    assert.equal(slowed.code, 'RATE_LIMITED');
    assert.ok(slowed.details.retryAfterMs > 0 && slowed.details.retryAfterMs <= 2000, JSON.stringify(slowed.details));
    // The first message's ack was lost, say: its resend, on the other instance, gets the stored message.
    const resent = await annWs.ok('message.send', { roomId, body: 'first', clientMsgId: 'slow-1' });
    assert.deepEqual([resent.id, resent.seq], [first.id, first.seq]);
    // Slow mode is per user: others are not held up by ann's slot, moderators not at all.
    for (let i = 0; i < 3; i++) await mo.ok('message.send', { roomId, body: `moderator ${i}` });
    assert.equal(
      (await apiCall(B, 'POST', `/v1/rooms/${roomId}/messages`, { key: API_KEY, body: { senderId: 'ann', body: 'via the API' } })).status,
      201,
    );

    await sleep(slowed.details.retryAfterMs + 50);
    await annWs.ok('message.send', { roomId, body: 'after the wait', clientMsgId: 'slow-2' });
    assert.equal((await refusal(annIo, 'message.send', { roomId, body: 'too soon again' })).code, 'RATE_LIMITED');

    // Turned off on one instance, off on both at once.
    assert.equal((await apiCall(B, 'PUT', `/v1/rooms/${roomId}`, { key: API_KEY, body: { visibility: 'public' } })).body.slowModeMs, 0);
    await annIo.ok('message.send', { roomId, body: 'slow mode is off' });
    await annWs.ok('message.send', { roomId, body: 'and off here too' });

    const history = await apiCall(A, 'GET', `/v1/rooms/${roomId}/messages?afterSeq=0`, { key: API_KEY });
    assert.deepEqual(
      history.body.messages.map((m: any) => m.body),
      ['first', 'moderator 0', 'moderator 1', 'moderator 2', 'via the API', 'after the wait', 'slow mode is off', 'and off here too'],
      'nothing refused was stored',
    );
  });

  it("erasure lifts the user's mutes and bans, each in force an event out", async () => {
    const [A, B] = cluster.instances;
    const roomId = 'mod-erase-room';
    const lapsedRoom = 'mod-erase-lapsed';
    await roomWithRoles(roomId);
    await roomWithRoles(lapsedRoom);
    const stream = new EventsStreamReader(eventsStreamOf(prefix));
    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${roomId}/bans/zed`, { key: API_KEY, body: { reason: 'gone' } })).status, 204);
    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${roomId}/mutes/zed`, { key: API_KEY })).status, 204);
    assert.equal((await apiCall(A, 'POST', `/v1/rooms/${lapsedRoom}/mutes/zed`, { key: API_KEY, body: { durationMs: 1 } })).status, 204);
    await sleep(20);
    const zed = cluster.track(await connect('ws', B.url, await tokenFor('zed')));
    assert.equal((await refusal(zed, 'room.join', { roomId })).details.reason, 'banned');
    assert.equal((await apiCall(A, 'POST', '/v1/users/zed/erase', { key: API_KEY })).status, 200);
    assert.deepEqual((await apiCall(B, 'GET', `/v1/rooms/${roomId}/bans`, { key: API_KEY })).body, { bans: [] });
    assert.deepEqual((await apiCall(B, 'GET', `/v1/rooms/${roomId}/mutes`, { key: API_KEY })).body, { mutes: [] });
    const lifts = (all: { type: string; roomId: string }[]) =>
      all.filter((e) => [roomId, lapsedRoom].includes(e.roomId) && ['moderation.unmuted', 'moderation.unbanned'].includes(e.type));
    await stream.waitUntil('lifted by erasure', (all) => lifts(all).length >= 2);
    await sleep(200);
    // Events out are at least once: one per id.
    const once = new Map(lifts(await stream.read()).map((e) => [(e as { id?: string }).id, e]));
    await stream.close();
    assert.deepEqual(
      [...once.values()]
        .map((e) => ({ type: e.type, roomId: e.roomId, ...((e as any).data as object) }))
        .sort((a, b) => a.type.localeCompare(b.type)),
      [
        { type: 'moderation.unbanned', roomId, userId: 'zed', by: 'api' },
        { type: 'moderation.unmuted', roomId, userId: 'zed', by: 'api' },
      ],
      'the lapsed mute is not announced again',
    );
    // Erasure closed zed's connection; a new one is let in at once on the instance that had refused.
    const again = cluster.track(await connect('ws', B.url, await tokenFor('zed')));
    await again.ok('room.join', { roomId });
    await again.ok('message.send', { roomId, body: 'a fresh start' });
  });
});
