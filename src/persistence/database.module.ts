import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ChatStore } from '../chat/chat.ports.js';
import { dataSourceOptions, type DatabaseOptions } from './data-source-options.js';
import { MigrationState } from './migration-runner.js';
import { APPEND_LINGER_MS, STORAGE_TIMEOUT_MS } from './storage-timeout.js';
import { TypeOrmChatStore } from './typeorm-chat.store.js';

@Module({})
export class DatabaseModule {
  static forRoot(options: DatabaseOptions & { appendLingerMs: number }): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      imports: [TypeOrmModule.forRoot({ ...dataSourceOptions(options), retryAttempts: 5, retryDelay: 1000 })],
      providers: [
        MigrationState,
        { provide: STORAGE_TIMEOUT_MS, useValue: options.timeoutMs },
        { provide: APPEND_LINGER_MS, useValue: options.appendLingerMs },
        { provide: ChatStore, useClass: TypeOrmChatStore },
      ],
      exports: [MigrationState, ChatStore],
    };
  }
}
