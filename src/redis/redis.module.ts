import { Global, Module } from '@nestjs/common';
import { RoomCreationCounter, SlowModeSlots, UserMessageCounter } from '../chat/chat.ports.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { RedisClients } from './redis-clients.js';
import { RedisSlowModeSlots } from './slow-mode-slots.js';
import { RedisRoomCreationCounter, RedisUserMessageCounter } from './user-window-counter.js';

/**
 * Provides RedisClients when REDIS_URL or REDIS_CLUSTER_NODES is set, and null when the service runs on one
 * instance; and the chat's counters, which keep their windows in that Redis or, without one, in this process.
 */
@Global()
@Module({
  providers: [
    {
      provide: RedisClients,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => (config.redis ? new RedisClients(config.redis, config.redis.prefix) : null),
    },
    { provide: UserMessageCounter, useClass: RedisUserMessageCounter },
    { provide: RoomCreationCounter, useClass: RedisRoomCreationCounter },
    { provide: SlowModeSlots, useClass: RedisSlowModeSlots },
  ],
  exports: [RedisClients, UserMessageCounter, RoomCreationCounter, SlowModeSlots],
})
export class RedisModule {}
