import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refusal } from './chat-error.test-support.js';
import type { Role } from './chat.events.js';
import type { ChatStore, RoomBroadcaster, RoomSanctionList, SlowModeSlots } from './chat.ports.js';
import { ModerationService } from './moderation.service.js';
import { RoomSanctions } from './room-sanctions.js';

const ROOM = 'r1';

/**
 * ModerationService over a store holding one room, ROOM, with these roles (anyone else a member)
 * and the sanctions in `stored`, as the store would answer at the moment it is read.
 */
function serviceWith(roles: Record<string, Role>) {
  const stored: RoomSanctionList = { mutes: [], bans: [], slowModeMs: 0, moderators: [] };
  let reads = 0;
  const store = {
    sanctions: async (roomIds: string[]) => {
      reads++;
      return new Map(roomIds.filter((id) => id === ROOM).map((id) => [id, structuredClone(stored)]));
    },
    roomAccess: async (roomId: string, userId: string) => (roomId === ROOM ? { role: roles[userId] ?? 'member' } : null),
  } as unknown as ChatStore;
  // Listing neither broadcasts nor takes slow-mode slots.
  const sanctions = new RoomSanctions(store, {} as SlowModeSlots);
  const limits = {
    maxMessageLength: 4000,
    maxHistoryPage: 100,
    maxBufferedBytes: 1024 * 1024,
    roomCreations: { perUser: 20, windowMs: 60_000 },
  };
  return { moderation: new ModerationService(store, {} as RoomBroadcaster, sanctions, limits), stored, reads: () => reads };
}

describe('ModerationService.list (moderation.list and GET …/mutes, …/bans)', () => {
  it("answers a moderator or owner the room's mutes and bans, read from the store on every ask", async () => {
    const { moderation, stored } = serviceWith({ mo: 'moderator', olga: 'owner' });
    const until = new Date(Date.now() + 60_000).toISOString();
    stored.mutes.push({ userId: 'ann', until: null, reason: null });
    stored.bans.push({ userId: 'ben', until, reason: 'spam' });
    for (const actor of ['mo', 'olga', null])
      assert.deepEqual(
        await moderation.list(actor, { roomId: ROOM }),
        { roomId: ROOM, mutes: [{ userId: 'ann', until: null, reason: null }], bans: [{ userId: 'ben', until, reason: 'spam' }] },
        String(actor),
      );
    // Lifted elsewhere (another instance): the next answer says so, not what this instance read before.
    stored.mutes.length = 0;
    assert.deepEqual((await moderation.list('mo', { roomId: ROOM })).mutes, []);
  });

  it('refuses anyone else with FORBIDDEN, a banned moderator with the ban; a missing room is FORBIDDEN to a user, NOT_FOUND to a service', async () => {
    const { moderation, stored } = serviceWith({ mo: 'moderator', banned: 'moderator' });
    stored.bans.push({ userId: 'banned', until: null, reason: null });
    assert.equal((await refusal(moderation.list('pat', { roomId: ROOM }))).code, 'FORBIDDEN');
    const ban = await refusal(moderation.list('banned', { roomId: ROOM }));
    assert.deepEqual([ban.code, ban.details], ['FORBIDDEN', { reason: 'banned', until: null }]);
    assert.equal((await refusal(moderation.list('mo', { roomId: 'gone' }))).code, 'FORBIDDEN');
    assert.equal((await refusal(moderation.list(null, { roomId: 'gone' }))).code, 'NOT_FOUND');
  });

  it('refuses bad input with VALIDATION_FAILED before anything is read', async () => {
    const { moderation, reads } = serviceWith({ mo: 'moderator' });
    for (const [data, fields] of [
      [{}, ['roomId']],
      [{ roomId: 'no spaces' }, ['roomId']],
      [{ roomId: 7 }, ['roomId']],
      [null, []],
      [[ROOM], []],
      [ROOM, []],
    ] as const) {
      const err = await refusal(moderation.list('mo', data));
      assert.deepEqual([err.code, err.details], ['VALIDATION_FAILED', { fields }], JSON.stringify(data));
    }
    assert.equal(reads(), 0);
  });
});
