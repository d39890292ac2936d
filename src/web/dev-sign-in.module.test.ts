import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEV_JWT_SECRET, loadConfig } from '../config/config.schema.js';
import { DevSignInModule } from './dev-sign-in.module.js';

const config = (env: Record<string, string>) => loadConfig({ DATABASE_URL: 'postgres://x@127.0.0.1/x', ...env });

describe('DevSignInModule.enabled: POST /dev/token exists only when asked for, with the development secret', () => {
  it('DEV_SIGN_IN=true in development or test with the development secret: enabled', () => {
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'development', DEV_SIGN_IN: 'true' })), true);
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'test', DEV_SIGN_IN: 'true', JWT_SECRET: DEV_JWT_SECRET })), true);
  });

  it('without DEV_SIGN_IN: disabled, even in development with the development secret', () => {
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'development' })), false);
    assert.equal(DevSignInModule.enabled(config({ NODE_ENV: 'test', DEV_SIGN_IN: 'false' })), false);
  });

  it('production, a real JWT_SECRET or JWKS: never enabled (the configuration refuses DEV_SIGN_IN with them)', () => {
    const envs: Record<string, string>[] = [
      { NODE_ENV: 'production', JWT_SECRET: 'unit-test-secret-0123456789abcdef' },
      { NODE_ENV: 'development', JWT_SECRET: 'unit-test-secret-0123456789abcdef' },
      { NODE_ENV: 'development', JWKS_URL: 'https://idp.example/jwks.json' },
    ];
    for (const env of envs) {
      assert.equal(DevSignInModule.enabled(config(env)), false);
      assert.throws(() => config({ ...env, DEV_SIGN_IN: 'true' }), /DEV_SIGN_IN/);
    }
  });
});
