import assert from 'node:assert/strict';
import type { Server } from 'socket.io';
import { InstanceRelay } from './instance-relay.js';

/**
 * An InstanceRelay over a stand-in for the socket.io server that records what is listened to and
 * sent: `listeners` plays another instance's messages arriving, `emitted` is what went out.
 */
export function fakeRelay() {
  const listeners = new Map<string, (...args: unknown[]) => void>();
  const emitted: unknown[][] = [];
  const fake = {
    on(event: string, listener: (...args: unknown[]) => void) {
      assert.equal(listeners.has(event), false, `one listener per relay event (${event})`);
      listeners.set(event, listener);
      return fake;
    },
    serverSideEmit(...args: unknown[]) {
      emitted.push(args);
      return true;
    },
  };
  const relay = new InstanceRelay();
  relay.attach(fake as unknown as Server);
  return { relay, listeners, emitted };
}
