import { Global, Module } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { Tracing } from './tracing.js';

/** The one Tracing for the app: on only when tracing is configured (main.ts has started the SDK then). */
@Global()
@Module({
  providers: [
    {
      provide: Tracing,
      useFactory: (config: AppConfig) => (config.tracing ? new Tracing(trace.getTracer('chat')) : Tracing.off),
      inject: [APP_CONFIG],
    },
  ],
  exports: [Tracing],
})
export class TracingModule {}
