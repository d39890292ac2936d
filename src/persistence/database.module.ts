import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ChatStore } from '../chat/chat.ports.js';
import { entities } from './entities/index.js';
import { MigrationRunner } from './migration-runner.js';
import { migrations } from './migrations/index.js';
import { STORAGE_TIMEOUT_MS } from './storage-timeout.js';
import { TypeOrmChatStore } from './typeorm-chat.store.js';

export interface DatabaseOptions {
  url: string;
  /** The embedded database serves one connection at a time; a larger pool breaks its connections. */
  poolSize: number;
  /** Bound on every storage call; the connection and statement timeouts sit below it. */
  timeoutMs: number;
}

@Module({})
export class DatabaseModule {
  static forRoot({ url, poolSize, timeoutMs }: DatabaseOptions): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url,
          entities,
          migrations,
          synchronize: false,
          migrationsRun: false,
          poolSize,
          // A down or frozen database must turn into a quick UNAVAILABLE, never a hung request:
          // connecting (including waiting for a pooled connection) and each statement are bounded.
          connectTimeoutMS: Math.min(1000, timeoutMs),
          extra: {
            query_timeout: timeoutMs,
            statement_timeout: timeoutMs,
            idle_in_transaction_session_timeout: 10 * timeoutMs,
            keepAlive: true,
          },
          retryAttempts: 5,
          retryDelay: 1000,
        }),
      ],
      providers: [
        MigrationRunner,
        { provide: STORAGE_TIMEOUT_MS, useValue: timeoutMs },
        { provide: ChatStore, useClass: TypeOrmChatStore },
      ],
      exports: [MigrationRunner, ChatStore],
    };
  }
}
