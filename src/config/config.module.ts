import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { AppConfig } from './config.schema.js';

/** DI token for the validated configuration. */
export const APP_CONFIG = Symbol('APP_CONFIG');

/** Provides the configuration validated once in main.ts; nothing else reads process.env. */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: AppConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: APP_CONFIG, useValue: config }], exports: [APP_CONFIG] };
  }
}
