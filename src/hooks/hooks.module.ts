import { Logger, Module } from '@nestjs/common';
import { PresendHook } from '../chat/chat.ports.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import { HttpPresendHook } from './presend-hook.client.js';

/** Room for the answer's JSON around the body: a modified body of the longest allowed length, fully escaped, still fits. */
const ANSWER_OVERHEAD_BYTES = 16 * 1024;
const BYTES_PER_ESCAPED_CHARACTER = 12;

/** The pre-send hook client (PRESEND_HOOK_URL), or null when none is configured. */
@Module({
  providers: [
    {
      provide: PresendHook,
      inject: [APP_CONFIG, ChatMetrics],
      useFactory: (config: AppConfig, metrics: ChatMetrics): PresendHook | null => {
        const hook = config.presendHook;
        if (!hook) return null;
        if (!hook.secret) new Logger('PresendHook').warn('PRESEND_HOOK_URL is set without WEBHOOK_SECRET: hook requests are unsigned');
        return new HttpPresendHook(
          hook,
          ANSWER_OVERHEAD_BYTES + BYTES_PER_ESCAPED_CHARACTER * config.limits.maxMessageLength,
          (outcome, seconds) => metrics.presendHookCalls.observe({ outcome }, seconds),
        );
      },
    },
  ],
  exports: [PresendHook],
})
export class HooksModule {}
