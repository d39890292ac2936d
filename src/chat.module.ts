import { Module } from '@nestjs/common';
import { TokenVerifier } from './auth/token-verifier.js';
import { ChatLimits, RoomBroadcaster, RoomCreationCounter, SlowModeSlots, UserMessageCounter } from './chat/chat.ports.js';
import { ChatService } from './chat/chat.service.js';
import { ModerationService } from './chat/moderation.service.js';
import { PresenceService } from './chat/presence.service.js';
import { RoomSanctions } from './chat/room-sanctions.js';
import { HooksModule } from './hooks/hooks.module.js';
import { APP_CONFIG } from './config/config.module.js';
import type { AppConfig } from './config/config.schema.js';
import { ConnectionSlots, OpenConnections } from './presence/connection-slots.js';
import { connectionSlotsProvider } from './presence/connection-slots.provider.js';
import { presenceStoreProvider } from './presence/presence-store.provider.js';
import { RedisSlowModeSlots } from './redis/slow-mode-slots.js';
import { RedisRoomCreationCounter, RedisUserMessageCounter } from './redis/user-window-counter.js';
import { ChatGateway } from './realtime/chat.gateway.js';
import { ConnectionSupervisor } from './realtime/connection-supervisor.js';
import { InstanceRelay } from './realtime/instance-relay.js';
import { LocalConnections } from './realtime/local-connections.js';
import { RoomAccessReconciler } from './realtime/room-access-reconciler.js';
import { RoomFanout } from './realtime/room-fanout.js';
import { TransportAdapterFactory } from './realtime/transport-adapter.factory.js';
import { UserDisconnector } from './realtime/user-disconnector.js';

/** The chat: one service, one gateway for both transports, and the fan-out between them. */
@Module({
  imports: [HooksModule],
  providers: [
    ChatService,
    ModerationService,
    RoomSanctions,
    ChatGateway,
    LocalConnections,
    ConnectionSupervisor,
    InstanceRelay,
    RoomFanout,
    RoomAccessReconciler,
    UserDisconnector,
    TransportAdapterFactory,
    TokenVerifier,
    PresenceService,
    presenceStoreProvider,
    connectionSlotsProvider,
    { provide: RoomBroadcaster, useExisting: RoomFanout },
    { provide: OpenConnections, useExisting: LocalConnections },
    { provide: RoomCreationCounter, useExisting: RedisRoomCreationCounter },
    { provide: UserMessageCounter, useExisting: RedisUserMessageCounter },
    { provide: SlowModeSlots, useExisting: RedisSlowModeSlots },
    {
      provide: ChatLimits,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig): ChatLimits => ({ ...config.limits, roomCreations: config.rateLimits.roomCreations }),
    },
  ],
  exports: [
    ChatService,
    ModerationService,
    PresenceService,
    LocalConnections,
    ConnectionSlots,
    RoomFanout,
    UserDisconnector,
    TokenVerifier,
  ],
})
export class ChatModule {}
