import { Module } from '@nestjs/common';
import type { AppConfig } from '../config/config.schema.js';
import { DevSignInController } from './dev-sign-in.controller.js';

/** `POST /dev/token`: only outside production and only when tokens are signed with a secret this service holds. */
@Module({ controllers: [DevSignInController] })
export class DevSignInModule {
  static enabled(config: AppConfig): boolean {
    return config.env !== 'production' && config.jwt.key.kind === 'secret';
  }
}
