import { Module } from '@nestjs/common';
import type { AppConfig } from '../config/config.schema.js';
import { DevSignInController } from './dev-sign-in.controller.js';

/**
 * `POST /dev/token`: only with DEV_SIGN_IN=true, which the configuration accepts only outside
 * production and with the published development secret, so a token it mints is never one a real
 * deployment accepts.
 */
@Module({ controllers: [DevSignInController] })
export class DevSignInModule {
  static enabled(config: AppConfig): boolean {
    return config.devSignIn;
  }
}
