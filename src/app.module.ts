import { Module, type DynamicModule } from '@nestjs/common';
import { ChatModule } from './chat/chat.module.js';
import { CommandsModule } from './commands/commands.module.js';
import { ConfigModule } from './config/config.module.js';
import type { AppConfig } from './config/config.schema.js';
import { EventsModule } from './events/events.module.js';
import { HealthModule } from './health/health.module.js';
import { HooksModule } from './hooks/hooks.module.js';
import { HttpApiModule } from './http/http.module.js';
import { LifecycleModule } from './lifecycle/lifecycle.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { DatabaseModule } from './persistence/database.module.js';
import { PresenceModule } from './presence/presence.module.js';
import { FanoutModule } from './realtime/fanout.module.js';
import { RealtimeModule } from './realtime/realtime.module.js';
import { RedisModule } from './redis/redis.module.js';
import { RetentionModule } from './retention/retention.module.js';
import { TracingModule } from './tracing/tracing.module.js';
import { DevSignInModule } from './web/dev-sign-in.module.js';

@Module({})
export class AppModule {
  /** `databaseUrl` is the configured server or the embedded one main.ts started. */
  static forRoot(config: AppConfig, databaseUrl: string): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LifecycleModule,
        TracingModule,
        RedisModule,
        MetricsModule,
        DatabaseModule.forRoot({
          url: databaseUrl,
          poolSize: config.database.mode === 'embedded' ? 1 : config.db.poolSize,
          timeoutMs: config.db.timeoutMs,
          appendLingerMs: config.db.appendLingerMs,
        }),
        ChatModule.forRoot({ adapters: [FanoutModule, PresenceModule, HooksModule] }),
        RealtimeModule,
        EventsModule,
        RetentionModule,
        HttpApiModule,
        HealthModule,
        // Commands in over Nest's Redis transport need Redis; main.ts connects their server.
        ...(config.redis ? [CommandsModule] : []),
        // POST /dev/token for the chat page's sign-in with a name: DEV_SIGN_IN=true, development secret only.
        ...(DevSignInModule.enabled(config) ? [DevSignInModule] : []),
      ],
    };
  }
}
