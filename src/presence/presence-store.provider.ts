import type { Provider } from '@nestjs/common';
import { PresenceStore } from '../chat/chat.ports.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { RedisClients } from '../redis/redis-clients.js';
import { MemoryPresenceStore } from './memory-presence.store.js';
import { RedisPresenceStore } from './redis-presence.store.js';

/** Presence in Redis when instances share one, else in this process (a single instance). */
export const presenceStoreProvider: Provider = {
  provide: PresenceStore,
  inject: [RedisClients, APP_CONFIG],
  useFactory: (redis: RedisClients | null, config: AppConfig) =>
    redis ? new RedisPresenceStore(redis, config.presence.leaseMs) : new MemoryPresenceStore(),
};
