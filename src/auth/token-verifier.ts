import { Inject, Injectable } from '@nestjs/common';
import { jwtVerify } from 'jose';
import { ChatError } from '../chat/chat.errors.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import type { Identity } from './identity.js';

const MAX_TOKEN_LENGTH = 8192;

/** Verifies client tokens: HS256 only (pinned, so `alg: none` and key confusion are refused), `exp` required. */
@Injectable()
export class TokenVerifier {
  private readonly key: Uint8Array;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.key = new TextEncoder().encode(config.jwt.secret);
  }

  async verify(token: unknown): Promise<Identity> {
    if (typeof token !== 'string' || token.length === 0) throw new ChatError('UNAUTHORIZED', 'a token is required');
    if (token.length > MAX_TOKEN_LENGTH) throw new ChatError('UNAUTHORIZED', 'token too long');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] }));
    } catch {
      throw new ChatError('UNAUTHORIZED', 'invalid or expired token');
    }
    const { sub, name, exp } = payload;
    if (typeof sub !== 'string' || sub.length < 1 || sub.length > 128) {
      throw new ChatError('UNAUTHORIZED', 'token sub must be a string of 1-128 characters');
    }
    return { userId: sub, name: typeof name === 'string' ? name.slice(0, 128) : null, expiresAt: (exp ?? 0) * 1000 };
  }
}
