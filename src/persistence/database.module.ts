import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MessageStore } from '../chat/chat.ports.js';
import { entities } from './entities/index.js';
import { MigrationRunner } from './migration-runner.js';
import { migrations } from './migrations/index.js';
import { TypeOrmMessageStore } from './typeorm-message.store.js';

export interface DatabaseOptions {
  url: string;
  /** The embedded database serves one connection at a time; a larger pool breaks its connections. */
  poolSize: number;
}

@Module({})
export class DatabaseModule {
  static forRoot({ url, poolSize }: DatabaseOptions): DynamicModule {
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
          connectTimeoutMS: 5000,
          retryAttempts: 5,
          retryDelay: 1000,
        }),
      ],
      providers: [MigrationRunner, { provide: MessageStore, useClass: TypeOrmMessageStore }],
      exports: [MigrationRunner, MessageStore],
    };
  }
}
