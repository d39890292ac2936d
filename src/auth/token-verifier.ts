import { createHash, createPublicKey } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { ChatError } from '../chat/chat.errors.js';
import { SYSTEM_SENDER_ID } from '../chat/chat.events.js';
import { storableTextIssue } from '../common/safe-text.js';
import { APP_CONFIG } from '../config/config.module.js';
import { publicKeyAlgorithm, type AppConfig } from '../config/config.schema.js';
import type { Identity } from './identity.js';

const MAX_TOKEN_LENGTH = 8192;
/**
 * Tokens remembered as verified: a reconnect storm presents the same tokens again within seconds.
 * Bounded so that a flood of distinct valid tokens costs memory once (about 2 MB), not without end.
 */
const VERIFIED_CACHE = 10_000;

/**
 * Verifies client tokens with one key source: an HS256 secret, an RS256/ES256 public key, or an
 * identity provider's JWKS. The accepted algorithms are pinned to that source, so `alg: none` and
 * key confusion (an HS256 token signed with a public key) are refused. `exp` and `sub` are
 * required; `iss` and `aud` are checked when configured. The `sub` of system messages is reserved.
 *
 * A token that verified is remembered by its SHA-256 digest until its `exp`, so presenting it again
 * (a reconnect) costs a hash instead of a signature check. What the check decided cannot change
 * before `exp` — except that a JWKS key withdrawn meanwhile still admits its tokens until they
 * expire, as it does for the connections they already opened.
 */
@Injectable()
export class TokenVerifier {
  private readonly check: (token: string) => Promise<JWTPayload>;
  /** Digest → identity, least recently used first. */
  private readonly verified = new Map<string, Identity>();

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    const { key, issuer, audience } = config.jwt;
    const options = (algorithms: string[]): JWTVerifyOptions => ({
      algorithms,
      requiredClaims: ['exp', 'sub'],
      issuer: issuer ?? undefined,
      audience: audience ?? undefined,
    });
    if (key.kind === 'secret') {
      // Imported once: given the raw bytes, jose imports the key again for every token (about a quarter of a check).
      const secret = crypto.subtle.importKey('raw', new TextEncoder().encode(key.secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
        'verify',
      ]);
      this.check = async (token) => (await jwtVerify(token, await secret, options(['HS256']))).payload;
    } else if (key.kind === 'publicKey') {
      const publicKey = createPublicKey(key.pem);
      const algorithm = publicKeyAlgorithm(key.pem) ?? 'RS256';
      this.check = async (token) => (await jwtVerify(token, publicKey, options([algorithm]))).payload;
    } else {
      // jose caches the key set and refetches it when a token names an unknown key id.
      const jwks = createRemoteJWKSet(new URL(key.url));
      this.check = async (token) => (await jwtVerify(token, jwks, options(['RS256', 'ES256']))).payload;
    }
  }

  async verify(token: unknown): Promise<Identity> {
    if (typeof token !== 'string' || token.length === 0) throw new ChatError('UNAUTHORIZED', 'a token is required');
    if (token.length > MAX_TOKEN_LENGTH) throw new ChatError('UNAUTHORIZED', 'token too long');
    const digest = createHash('sha256').update(token).digest('base64');
    const known = this.verified.get(digest);
    this.verified.delete(digest);
    if (known && known.expiresAt > Date.now()) {
      this.verified.set(digest, known);
      return known;
    }
    const identity = Object.freeze(await this.verifySignedToken(token));
    this.verified.set(digest, identity);
    if (this.verified.size > VERIFIED_CACHE) this.verified.delete(this.verified.keys().next().value!);
    return identity;
  }

  private async verifySignedToken(token: string): Promise<Identity> {
    let payload: JWTPayload;
    try {
      payload = await this.check(token);
    } catch {
      throw new ChatError('UNAUTHORIZED', 'invalid or expired token');
    }
    const { sub, name, exp } = payload;
    if (typeof sub !== 'string' || sub.length < 1 || sub.length > 128) {
      throw new ChatError('UNAUTHORIZED', 'token sub must be a string of 1-128 characters');
    }
    // The sub is stored as senderId and read positions: the same rule as every stored string.
    const issue = storableTextIssue(sub);
    if (issue) throw new ChatError('UNAUTHORIZED', `token sub ${issue}`);
    // System messages carry this senderId; a user holding it could pass for the system.
    if (sub === SYSTEM_SENDER_ID) throw new ChatError('UNAUTHORIZED', `the user id "${SYSTEM_SENDER_ID}" is reserved`);
    return { userId: sub, name: typeof name === 'string' ? name.slice(0, 128) : null, expiresAt: (exp ?? 0) * 1000 };
  }

  /** `auth.refresh`: a new token for the same user replaces the connection's identity; a failure keeps the old one. */
  async refresh(current: Identity, data: unknown): Promise<Identity> {
    const token = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as { token?: unknown }).token : undefined;
    if (typeof token !== 'string') throw new ChatError('VALIDATION_FAILED', 'token must be a string', { fields: ['token'] });
    const next = await this.verify(token);
    if (next.userId !== current.userId) throw new ChatError('UNAUTHORIZED', 'the new token belongs to another user');
    return next;
  }
}
