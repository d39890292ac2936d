import type { Provider } from '@nestjs/common';
import { PresenceStore } from '../chat/chat.ports.js';
import { RedisClients } from '../redis/redis-clients.js';
import { ConnectionSlots, LocalConnectionSlots, OpenConnections } from './connection-slots.js';
import { RedisConnectionSlots } from './redis-connection-slots.js';
import { RedisPresenceStore } from './redis-presence.store.js';

/** The connection cap over every instance, under the presence lease, when they share a Redis; else this instance's count. */
export const connectionSlotsProvider: Provider = {
  provide: ConnectionSlots,
  inject: [RedisClients, PresenceStore, OpenConnections],
  useFactory: (redis: RedisClients | null, presence: PresenceStore, connections: OpenConnections) =>
    redis && presence instanceof RedisPresenceStore
      ? new RedisConnectionSlots(redis, presence, connections)
      : new LocalConnectionSlots(connections),
};
