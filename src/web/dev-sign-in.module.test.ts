import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../config/config.schema.js';
import { DevSignInModule } from './dev-sign-in.module.js';

const SECRET = 'unit-test-secret-0123456789abcdef';
const config = (env: Record<string, string>) => loadConfig({ DATABASE_URL: 'postgres://x@127.0.0.1/x', ...env });

describe('DevSignInModule.enabled: POST /dev/token exists only outside production with an HS256 secret', () => {
  it('development and test, with the configured or the development secret: enabled', () => {
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'development' })), true);
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'test', JWT_SECRET: SECRET })), true);
  });

  it('production: disabled', () => {
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'production', JWT_SECRET: SECRET })), false);
  });

  it('tokens from an identity provider (JWKS): disabled, the service holds no signing key', () => {
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'development', JWKS_URL: 'https://idp.example/jwks.json' })), false);
  });
});
