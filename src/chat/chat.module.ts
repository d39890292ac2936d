import { Module, type DynamicModule, type ModuleMetadata } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { ChatService } from './chat.service.js';
import { ChatLimits } from './chat.ports.js';
import { ModerationService } from './moderation.service.js';
import { PresenceService } from './presence.service.js';
import { RoomSanctionsModule } from './room-sanctions.module.js';

export interface ChatModuleOptions {
  /**
   * The modules that implement the domain's ports (chat.ports.ts) beyond the global ones (ChatStore, the
   * counters): RoomBroadcaster, PresenceStore and PresendHook. The composition root names them, so the
   * domain imports no layer above it.
   */
  adapters: NonNullable<ModuleMetadata['imports']>;
}

/**
 * The chat domain: messages, rooms, members, moderation and presence, for every transport. Global, because
 * the gateway, the HTTP API and the commands all serve it and it is built once from its adapters.
 */
@Module({})
export class ChatModule {
  static forRoot({ adapters }: ChatModuleOptions): DynamicModule {
    return {
      module: ChatModule,
      global: true,
      imports: [RoomSanctionsModule, ...adapters],
      providers: [
        ChatService,
        ModerationService,
        PresenceService,
        {
          provide: ChatLimits,
          inject: [APP_CONFIG],
          useFactory: (config: AppConfig): ChatLimits => ({ ...config.limits, roomCreations: config.rateLimits.roomCreations }),
        },
      ],
      exports: [ChatService, ModerationService, PresenceService],
    };
  }
}
