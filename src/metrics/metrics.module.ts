import { Global, Module } from '@nestjs/common';
import { ChatMetrics } from './chat-metrics.js';
import { MetricsController } from './metrics.controller.js';

@Global()
@Module({ providers: [ChatMetrics], controllers: [MetricsController], exports: [ChatMetrics] })
export class MetricsModule {}
