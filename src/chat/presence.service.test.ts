import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryPresenceStore } from '../presence/memory-presence.store.js';
import type { ChatStore, RoomBroadcaster, SlowModeSlots } from './chat.ports.js';
import { MAX_PRESENCE_LIST, PresenceService } from './presence.service.js';
import { RoomSanctions } from './room-sanctions.js';

/** A public room for everybody: presence.list's access check passes. */
const store = {
  roomAccess: async () => ({ visibility: 'public', isMember: false, lastSeq: 0, lastReadSeq: 0 }),
  sanctions: async () => new Map(),
} as unknown as ChatStore;
const broadcaster = { publish: () => undefined } as unknown as RoomBroadcaster;

function serviceWith(userCount: number): PresenceService {
  const presence = new MemoryPresenceStore();
  const service = new PresenceService(store, presence, broadcaster, new RoomSanctions(store, {} as SlowModeSlots));
  // Entered in descending order, so the answer's order comes from sorting, not from insertion.
  for (let i = userCount; i > 0; i--) service.enter('crowd', `user-${String(i).padStart(5, '0')}`, `conn-${i}`);
  return service;
}

describe('PresenceService.list', () => {
  it(`answers at most ${MAX_PRESENCE_LIST} users, the first by userId, with hasMore when more are present`, async () => {
    const crowd = await serviceWith(MAX_PRESENCE_LIST * 3).list('viewer', { roomId: 'crowd' });
    assert.equal(crowd.users.length, MAX_PRESENCE_LIST);
    assert.deepEqual([crowd.users[0]?.userId, crowd.users.at(-1)?.userId], ['user-00001', `user-0${MAX_PRESENCE_LIST}`]);
    assert.equal(crowd.hasMore, true);
    assert.ok(Buffer.byteLength(JSON.stringify(crowd)) < 64 * 1024, `${Buffer.byteLength(JSON.stringify(crowd))} bytes`);
  });

  it('lists everybody with hasMore false up to the cap', async () => {
    const full = await serviceWith(MAX_PRESENCE_LIST).list('viewer', { roomId: 'crowd' });
    assert.deepEqual([full.users.length, full.hasMore], [MAX_PRESENCE_LIST, false]);
    assert.deepEqual(await serviceWith(0).list('viewer', { roomId: 'crowd' }), { roomId: 'crowd', users: [], hasMore: false });
  });
});
