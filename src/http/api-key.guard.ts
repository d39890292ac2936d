import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, SetMetadata, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { ChatError } from '../chat/chat.errors.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Methods a read-only key (`key:read` in API_KEYS) may call. */
const READ_METHODS = new Set(['GET', 'HEAD']);

const FULL_KEY_ONLY = 'chat:full-key-only';

/** A GET a read-only key may not call either: the export of a user's data (the contract's "not key:read"). */
export const FullKeyOnly = () => SetMetadata(FULL_KEY_ONLY, true);

/**
 * `X-API-Key` must be one of API_KEYS. Keys are compared as SHA-256 digests with timingSafeEqual,
 * every key every time, so neither the length nor the position of a match shows in the timing.
 * A read-only key gets FORBIDDEN on anything but GET, and on a GET marked FullKeyOnly. Without API_KEYS the HTTP API refuses everything.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: { digest: Buffer; readOnly: boolean }[];

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly reflector: Reflector,
  ) {
    this.keys = config.apiKeys.map((k) => ({ digest: digest(k.key), readOnly: k.readOnly }));
  }

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<Request>();
    const presented = req.header('x-api-key');
    if (!presented) throw new ChatError('UNAUTHORIZED', 'X-API-Key header required');
    const candidate = digest(presented);
    let match: { readOnly: boolean } | null = null;
    for (const key of this.keys) if (timingSafeEqual(key.digest, candidate)) match = key;
    if (!match) throw new ChatError('UNAUTHORIZED', 'unknown API key');
    if (match.readOnly && !READ_METHODS.has(req.method)) throw new ChatError('FORBIDDEN', 'this API key may only read');
    if (match.readOnly && this.reflector.get<boolean>(FULL_KEY_ONLY, context.getHandler()))
      throw new ChatError('FORBIDDEN', 'a read-only API key may not export user data');
    return true;
  }
}
