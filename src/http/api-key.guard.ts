import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { ChatError } from '../chat/chat.errors.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * `X-API-Key` must be one of API_KEYS. Keys are compared as SHA-256 digests with timingSafeEqual,
 * every key every time, so neither the length nor the position of a match shows in the timing.
 * Without API_KEYS the HTTP API refuses everything.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: Buffer[];

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.keys = config.apiKeys.map(digest);
  }

  canActivate(context: ExecutionContext): boolean {
    const presented = context.switchToHttp().getRequest<Request>().header('x-api-key');
    if (!presented) throw new ChatError('UNAUTHORIZED', 'X-API-Key header required');
    const candidate = digest(presented);
    let match = false;
    for (const key of this.keys) match = timingSafeEqual(key, candidate) || match;
    if (!match) throw new ChatError('UNAUTHORIZED', 'unknown API key');
    return true;
  }
}
