import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import { ApiBody, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { SignJWT } from 'jose';
import { z } from 'zod';
import { SYSTEM_SENDER_ID } from '../chat/chat.events.js';
import { parseInput } from '../chat/chat.schemas.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { ApiErrors } from '../http/api-docs.decorators.js';

/** Short enough that a token copied out of a development page is soon useless; the page fetches a new one before it runs out. */
export const DEV_TOKEN_TTL_SECONDS = 15 * 60;

/** The same rule as a token's `sub`: 1-128 characters, and never the reserved sender id of system messages. */
const signIn = z.object({
  name: z
    .string()
    .min(1, 'must be 1-128 characters')
    .max(128, 'must be 1-128 characters')
    .refine((n) => n !== SYSTEM_SENDER_ID, `"${SYSTEM_SENDER_ID}" is reserved`),
});

/**
 * `POST /dev/token { name }` → `{ token, userId, expiresAt }`: lets the chat page sign in with only
 * a name. Mapped only with DEV_SIGN_IN=true outside production and signed only with the published
 * development secret (config.schema.ts refuses anything else), because it hands out a valid token
 * for any user to anyone who asks. The OpenAPI document lists it only where it exists.
 */
@ApiTags('development')
@Controller('dev')
export class DevSignInController {
  private readonly secret: Uint8Array;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    const { key } = config.jwt;
    // The configuration already refuses this; a second check keeps a real secret out if that ever changes.
    if (key.kind !== 'secret' || !key.isDevSecret) throw new Error('the development sign-in signs only with the development secret');
    this.secret = new TextEncoder().encode(key.secret);
  }

  @Post('token')
  @HttpCode(200)
  @ApiOperation({
    summary: 'A short-lived client token for a name (development only)',
    description:
      'For the chat page at `/`: a token whose `sub` and `name` are the given name, valid for 15 minutes, signed with ' +
      'the published development secret. Mapped only with DEV_SIGN_IN=true, which is refused when NODE_ENV=production ' +
      'and together with a real JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL. No API key.',
  })
  @ApiBody({
    schema: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', minLength: 1, maxLength: 128, description: `The user id; not \`${SYSTEM_SENDER_ID}\`` } },
    },
  })
  @ApiOkResponse({
    schema: {
      type: 'object',
      required: ['token', 'userId', 'expiresAt'],
      properties: { token: { type: 'string' }, userId: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } },
    },
  })
  @ApiErrors(400)
  async issueDevToken(@Body() body: unknown) {
    const { name } = parseInput(signIn, body ?? {});
    const expiresAt = Math.floor(Date.now() / 1000) + DEV_TOKEN_TTL_SECONDS;
    let jwt = new SignJWT({ name })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(name)
      .setIssuedAt()
      .setExpirationTime(expiresAt);
    // A configured issuer or audience is checked on every token, so these carry them too.
    if (this.config.jwt.issuer) jwt = jwt.setIssuer(this.config.jwt.issuer);
    if (this.config.jwt.audience) jwt = jwt.setAudience(this.config.jwt.audience);
    return { token: await jwt.sign(this.secret), userId: name, expiresAt: new Date(expiresAt * 1000).toISOString() };
  }
}
