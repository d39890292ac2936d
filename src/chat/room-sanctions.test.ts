import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refusal } from './chat-error.test-support.js';
import type { ChatStore, RoomSanctionList, SlowModeSlots } from './chat.ports.js';
import { RoomSanctions } from './room-sanctions.js';

const ROOM = 'r1';

/** Slots as a map of holders; every slot stays taken until given back (time is not this test's subject). */
function fakeSlots(): SlowModeSlots & { held: Map<string, string> } {
  const held = new Map<string, string>();
  return {
    held,
    take: async (roomId, userId, intervalMs, holder) => {
      const key = `${roomId}/${userId}`;
      const current = held.get(key);
      if (current === undefined) {
        held.set(key, holder);
        return 'taken';
      }
      return current === holder ? 'held' : intervalMs;
    },
    giveBack: async (roomId, userId, holder) => {
      if (held.get(`${roomId}/${userId}`) === holder) held.delete(`${roomId}/${userId}`);
    },
  };
}

function sanctionsWith(list: Partial<RoomSanctionList>, slots = fakeSlots()) {
  let reads = 0;
  const store = {
    sanctions: async (roomIds: string[]) => {
      reads++;
      return new Map(roomIds.map((id) => [id, { mutes: [], bans: [], slowModeMs: 0, moderators: [], ...list }]));
    },
  } as unknown as ChatStore;
  return { sanctions: new RoomSanctions(store, slots), slots, reads: () => reads };
}

describe('RoomSanctions slow mode', () => {
  it('takes no slot while slow mode is off, and reads the room once for many sends', async () => {
    const { sanctions, slots, reads } = sanctionsWith({ slowModeMs: 0 });
    for (let i = 0; i < 3; i++) assert.equal(await sanctions.takeSlowModeSlot(ROOM, 'u', null), null);
    assert.equal(slots.held.size, 0);
    assert.equal(reads(), 1);
  });

  it('refuses a second message with RATE_LIMITED and retryAfterMs; moderators are not slowed', async () => {
    const { sanctions } = sanctionsWith({ slowModeMs: 5000, moderators: ['mod'] });
    assert.equal(typeof (await sanctions.takeSlowModeSlot(ROOM, 'u', 'a')), 'function');
    const err = await refusal(sanctions.takeSlowModeSlot(ROOM, 'u', 'b'));
    assert.equal(err.code, 'RATE_LIMITED');
    assert.deepEqual(err.details, { retryAfterMs: 5000 });
    for (let i = 0; i < 3; i++) assert.equal(await sanctions.takeSlowModeSlot(ROOM, 'mod', `m${i}`), null);
  });

  it('lets a resend of the message holding the slot through without a slot of its own to give back', async () => {
    const { sanctions, slots } = sanctionsWith({ slowModeMs: 5000 });
    await sanctions.takeSlowModeSlot(ROOM, 'u', 'a');
    assert.equal(await sanctions.takeSlowModeSlot(ROOM, 'u', 'a'), null);
    assert.equal(slots.held.get(`${ROOM}/u`), 'c:a');
  });

  it('gives the slot back when asked, so the next message may be stored', async () => {
    const { sanctions } = sanctionsWith({ slowModeMs: 5000 });
    const giveBack = await sanctions.takeSlowModeSlot(ROOM, 'u', null);
    await giveBack!();
    assert.equal(typeof (await sanctions.takeSlowModeSlot(ROOM, 'u', null)), 'function');
  });

  it('reads the rooms missed in one event-loop turn in one statement; a missing room reads as empty', async () => {
    const calls: string[][] = [];
    const store = {
      sanctions: async (roomIds: string[]) => {
        calls.push(roomIds);
        const banned = { mutes: [], bans: [{ userId: 'u', until: null, reason: null }], slowModeMs: 0, moderators: [] };
        return new Map(roomIds.filter((id) => id !== 'gone').map((id) => [id, id === 'b' ? banned : { ...banned, bans: [] }]));
      },
    } as unknown as ChatStore;
    const sanctions = new RoomSanctions(store, fakeSlots());
    const outcomes = await Promise.allSettled(['a', 'b', 'c', 'gone', 'a'].map((id) => sanctions.assertMaySpeak(id, 'u')));
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
    );
    assert.deepEqual(calls, [['a', 'b', 'c', 'gone']]);
    await sanctions.assertMaySpeak('d', 'u');
    await sanctions.assertMaySpeak('a', 'u');
    assert.deepEqual(calls, [['a', 'b', 'c', 'gone'], ['d']], 'the next turn reads only the new room; the others are kept');
  });

  it('reads the rules again after forget(): slow mode turned on elsewhere applies at once', async () => {
    let slowModeMs = 0;
    const store = {
      sanctions: async (roomIds: string[]) => new Map(roomIds.map((id) => [id, { mutes: [], bans: [], slowModeMs, moderators: [] }])),
    } as unknown as ChatStore;
    const sanctions = new RoomSanctions(store, fakeSlots());
    assert.equal(await sanctions.takeSlowModeSlot(ROOM, 'u', null), null);
    slowModeMs = 5000;
    assert.equal(await sanctions.takeSlowModeSlot(ROOM, 'u', null), null, 'the cached rules still say off');
    sanctions.forget(ROOM);
    assert.equal(typeof (await sanctions.takeSlowModeSlot(ROOM, 'u', null)), 'function');
    assert.equal((await refusal(sanctions.takeSlowModeSlot(ROOM, 'u', null))).code, 'RATE_LIMITED');
  });
});
