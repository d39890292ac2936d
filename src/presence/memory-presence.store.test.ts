import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PresenceChange } from '../chat/chat.ports.js';
import { MemoryPresenceStore } from './memory-presence.store.js';

function tracked() {
  const store = new MemoryPresenceStore();
  const changes: PresenceChange[] = [];
  store.onChange((c) => changes.push(c));
  return { store, changes };
}

describe('MemoryPresenceStore', () => {
  it("reports a user's first connection in a room as joined and its last one as left, once each", async () => {
    const { store, changes } = tracked();
    store.enter('r', 'ann', 'c1');
    store.enter('r', 'ann', 'c2');
    store.enter('r', 'ann', 'c1');
    store.exit('r', 'c1');
    assert.deepEqual(await store.list('r'), ['ann']);
    store.exit('r', 'c2');
    store.exit('r', 'c2');
    assert.deepEqual(changes, [
      { kind: 'joined', roomId: 'r', userId: 'ann' },
      { kind: 'left', roomId: 'r', userId: 'ann' },
    ]);
    assert.deepEqual(await store.list('r'), []);
  });

  it('keeps rooms apart, ignores exits of connections never entered, and lists users sorted', async () => {
    const { store, changes } = tracked();
    store.exit('r', 'ghost');
    for (const [user, conn] of [
      ['zed', 'c1'],
      ['amy', 'c2'],
      ['Bob', 'c3'],
    ])
      store.enter('r', user, conn);
    store.enter('other', 'amy', 'c2');
    assert.deepEqual(await store.list('r'), ['Bob', 'amy', 'zed']);
    assert.deepEqual(await store.list('other'), ['amy']);
    store.exit('other', 'c2');
    assert.deepEqual(await store.list('r'), ['Bob', 'amy', 'zed']);
    assert.equal(changes.filter((c) => c.kind === 'left').length, 1);
  });
});
