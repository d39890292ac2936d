import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEV_JWT_SECRET, loadConfig } from './config.schema.js';

const SECRET = 'a-very-long-production-secret-123';
const KEY_A = 'key-aaaaaaaaaaaaaaaa';
const KEY_B = 'key-bbbbbbbbbbbbbbbb';

/** Runs loadConfig expecting a ConfigError and returns it. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  return caught;
}

/** The variable names a ConfigError reports, in order. */
function namedVariables(err: ConfigError): string[] {
  return err.problems.map((p) => p.slice(0, p.indexOf(':')));
}

describe('loadConfig defaults', () => {
  it('starts in development on port 3000 with embedded storage, no Redis and the flagged dev secret', () => {
    assert.deepEqual(loadConfig({}), {
      env: 'development',
      port: 3000,
      database: { mode: 'embedded', dataDir: './data' },
      redis: null,
      jwt: { secret: DEV_JWT_SECRET, isDevSecret: true },
      apiKeys: [],
      allowedOrigins: null,
      limits: { maxMessageLength: 4000, maxPayloadBytes: 65536, maxBufferedBytes: 1048576 },
      db: { poolSize: 10, timeoutMs: 2000 },
      heartbeat: { intervalMs: 25000, timeoutMs: 20000 },
      shutdown: { drainMs: 1000, timeoutMs: 10000 },
      logLevel: 'info',
    });
  });

  it('treats empty strings as unset', () => {
    const env: NodeJS.ProcessEnv = {};
    for (const key of [
      'NODE_ENV',
      'PORT',
      'DATABASE_URL',
      'DATA_DIR',
      'REDIS_URL',
      'REDIS_PREFIX',
      'JWT_SECRET',
      'API_KEYS',
      'ALLOWED_ORIGINS',
      'MAX_MESSAGE_LENGTH',
      'MAX_PAYLOAD_BYTES',
      'LOG_LEVEL',
      'DB_POOL_SIZE',
      'DB_TIMEOUT_MS',
      'SHUTDOWN_TIMEOUT_MS',
      'SHUTDOWN_DRAIN_MS',
      'HEARTBEAT_INTERVAL_MS',
      'HEARTBEAT_TIMEOUT_MS',
      'MAX_BUFFERED_BYTES',
    ]) {
      env[key] = '';
    }
    assert.deepEqual(loadConfig(env), loadConfig({}));
  });

  it('ignores variables it does not know', () => {
    assert.deepEqual(loadConfig({ HOME: '/root', PATH: '/bin', SOMETHING_ELSE: '!!' }), loadConfig({}));
  });

  it('uses an explicit JWT_SECRET and does not flag it', () => {
    assert.deepEqual(loadConfig({ JWT_SECRET: SECRET }).jwt, { secret: SECRET, isDevSecret: false });
  });

  it('uses DATA_DIR for the embedded database', () => {
    assert.deepEqual(loadConfig({ DATA_DIR: '/var/lib/chat' }).database, { mode: 'embedded', dataDir: '/var/lib/chat' });
  });
});

describe('PORT', () => {
  it('accepts 0, 8080 and 65535', () => {
    assert.equal(loadConfig({ PORT: '0' }).port, 0);
    assert.equal(loadConfig({ PORT: '8080' }).port, 8080);
    assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
  });

  for (const port of ['not-a-port', '70000', '65536', '-1', '80.5', '0x50', '1e3']) {
    it(`refuses ${JSON.stringify(port)}, naming PORT`, () => {
      const err = configError({ PORT: port });
      assert.deepEqual(namedVariables(err), ['PORT']);
      assert.match(err.message, /PORT: /);
    });
  }
});

describe('NODE_ENV and JWT_SECRET', () => {
  it('requires JWT_SECRET in production, naming it', () => {
    const err = configError({ NODE_ENV: 'production' });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
    assert.match(err.message, /JWT_SECRET/);
  });

  it('treats an empty JWT_SECRET as missing in production', () => {
    const err = configError({ NODE_ENV: 'production', JWT_SECRET: '' });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
  });

  it('accepts production with a JWT_SECRET', () => {
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET });
    assert.equal(config.env, 'production');
    assert.deepEqual(config.jwt, { secret: SECRET, isDevSecret: false });
  });

  it('refuses a JWT_SECRET shorter than 16 characters, naming it', () => {
    const err = configError({ JWT_SECRET: '123456789012345' });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
    assert.match(err.message, /JWT_SECRET: must be at least 16 characters/);
    assert.equal(loadConfig({ JWT_SECRET: '1234567890123456' }).jwt.secret, '1234567890123456');
  });

  it('refuses an unknown NODE_ENV, naming it', () => {
    assert.deepEqual(namedVariables(configError({ NODE_ENV: 'staging' })), ['NODE_ENV']);
  });

  it('refuses the published development secret in production', () => {
    // config.schema.ts: DEV_JWT_SECRET is "Never accepted in production".
    const err = configError({ NODE_ENV: 'production', JWT_SECRET: DEV_JWT_SECRET });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
  });

  it('flags the development secret even when it is set explicitly', () => {
    // config.schema.ts: "the log warns whenever it is in use"; main.ts warns only when isDevSecret.
    assert.deepEqual(loadConfig({ JWT_SECRET: DEV_JWT_SECRET }).jwt, { secret: DEV_JWT_SECRET, isDevSecret: true });
  });
});

describe('DATABASE_URL', () => {
  it('selects an external database for postgres:// and postgresql://', () => {
    assert.deepEqual(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/chat' }).database, {
      mode: 'external',
      url: 'postgres://u:p@db:5432/chat',
    });
    assert.deepEqual(loadConfig({ DATABASE_URL: 'postgresql://db/chat', DATA_DIR: '/ignored' }).database, {
      mode: 'external',
      url: 'postgresql://db/chat',
    });
  });

  for (const url of ['mysql://u:p@db/chat', 'http://db/chat', 'db:5432/chat', 'not a url']) {
    it(`refuses ${JSON.stringify(url)}, naming DATABASE_URL`, () => {
      const err = configError({ DATABASE_URL: url });
      assert.deepEqual(namedVariables(err), ['DATABASE_URL']);
      assert.match(err.message, /DATABASE_URL: must be a URL starting with postgres:\/\/ or postgresql:\/\//);
    });
  }
});

describe('REDIS_URL and REDIS_PREFIX', () => {
  it('parses REDIS_URL with the default prefix "chat"', () => {
    assert.deepEqual(loadConfig({ REDIS_URL: 'redis://cache:6379/0' }).redis, { url: 'redis://cache:6379/0', prefix: 'chat' });
  });

  it('accepts rediss:// and a custom prefix', () => {
    assert.deepEqual(loadConfig({ REDIS_URL: 'rediss://cache:6380', REDIS_PREFIX: 'chat.eu-1:' }).redis, {
      url: 'rediss://cache:6380',
      prefix: 'chat.eu-1:',
    });
  });

  it('refuses a non-Redis scheme, naming REDIS_URL', () => {
    assert.deepEqual(namedVariables(configError({ REDIS_URL: 'http://cache:6379' })), ['REDIS_URL']);
  });

  it('refuses a bad REDIS_PREFIX, naming it', () => {
    assert.deepEqual(namedVariables(configError({ REDIS_URL: 'redis://cache', REDIS_PREFIX: 'has space' })), ['REDIS_PREFIX']);
    assert.deepEqual(namedVariables(configError({ REDIS_PREFIX: 'p'.repeat(65) })), ['REDIS_PREFIX']);
  });
});

describe('ALLOWED_ORIGINS', () => {
  it('parses a comma-separated list, trimming entries and skipping empty ones', () => {
    assert.deepEqual(loadConfig({ ALLOWED_ORIGINS: ' https://chat.example.com , http://localhost:5173,,' }).allowedOrigins, [
      'https://chat.example.com',
      'http://localhost:5173',
    ]);
  });

  for (const entry of ['not a url', 'https://x.test/path', 'https://x.test?q=1', 'https://user@x.test', 'x.test']) {
    it(`refuses the entry ${JSON.stringify(entry)}, naming ALLOWED_ORIGINS`, () => {
      const err = configError({ ALLOWED_ORIGINS: `https://ok.test,${entry}` });
      assert.deepEqual(namedVariables(err), ['ALLOWED_ORIGINS']);
      assert.match(err.message, /ALLOWED_ORIGINS: each entry must be an origin/);
    });
  }
});

describe('API_KEYS', () => {
  it('parses a comma-separated list of keys', () => {
    assert.deepEqual(loadConfig({ API_KEYS: `${KEY_A}, ${KEY_B}` }).apiKeys, [KEY_A, KEY_B]);
  });

  it('refuses a key shorter than 16 characters, naming API_KEYS', () => {
    const err = configError({ API_KEYS: `${KEY_A},short` });
    assert.deepEqual(namedVariables(err), ['API_KEYS']);
    assert.match(err.message, /API_KEYS: each key must be at least 16 characters/);
  });
});

describe('limits and log level', () => {
  it('reads MAX_MESSAGE_LENGTH, MAX_PAYLOAD_BYTES and LOG_LEVEL', () => {
    const config = loadConfig({ MAX_MESSAGE_LENGTH: '500', MAX_PAYLOAD_BYTES: '1024', LOG_LEVEL: 'debug' });
    assert.deepEqual(config.limits, { maxMessageLength: 500, maxPayloadBytes: 1024, maxBufferedBytes: 1048576 });
    assert.equal(config.logLevel, 'debug');
  });

  it('reads the storage, heartbeat and shutdown bounds', () => {
    const config = loadConfig({
      DB_POOL_SIZE: '4',
      DB_TIMEOUT_MS: '1500',
      HEARTBEAT_INTERVAL_MS: '1000',
      HEARTBEAT_TIMEOUT_MS: '500',
      SHUTDOWN_DRAIN_MS: '0',
      SHUTDOWN_TIMEOUT_MS: '5000',
      MAX_BUFFERED_BYTES: '65536',
    });
    assert.deepEqual(
      [config.db, config.heartbeat, config.shutdown, config.limits.maxBufferedBytes],
      [{ poolSize: 4, timeoutMs: 1500 }, { intervalMs: 1000, timeoutMs: 500 }, { drainMs: 0, timeoutMs: 5000 }, 65536],
    );
  });

  it('refuses a drain period that does not fit in the shutdown bound', () => {
    const err = configError({ SHUTDOWN_DRAIN_MS: '10000', SHUTDOWN_TIMEOUT_MS: '10000' });
    assert.deepEqual(namedVariables(err), ['SHUTDOWN_DRAIN_MS']);
  });

  it('refuses out-of-range limits and unknown log levels', () => {
    const err = configError({ MAX_MESSAGE_LENGTH: '0', MAX_PAYLOAD_BYTES: '1023', LOG_LEVEL: 'verbose' });
    assert.deepEqual(namedVariables(err), ['MAX_MESSAGE_LENGTH', 'MAX_PAYLOAD_BYTES', 'LOG_LEVEL']);
  });
});

describe('several bad variables', () => {
  it('reports every bad variable in one ConfigError', () => {
    const err = configError({
      PORT: '70000',
      DATABASE_URL: 'mysql://db/chat',
      REDIS_URL: 'memcached://cache',
      JWT_SECRET: 'short',
      ALLOWED_ORIGINS: 'https://x.test/path',
    });
    assert.deepEqual(namedVariables(err).sort(), ['ALLOWED_ORIGINS', 'DATABASE_URL', 'JWT_SECRET', 'PORT', 'REDIS_URL']);
    for (const name of ['PORT', 'DATABASE_URL', 'REDIS_URL', 'JWT_SECRET', 'ALLOWED_ORIGINS']) {
      assert.match(err.message, new RegExp(`^  - ${name}: `, 'm'));
    }
    assert.match(err.message, /^Invalid configuration:\n/);
  });

  it('reports a missing production JWT_SECRET together with other bad variables', () => {
    // config.schema.ts: loadConfig "throws ConfigError naming every bad variable".
    const err = configError({ NODE_ENV: 'production', PORT: 'not-a-port' });
    assert.deepEqual(namedVariables(err).sort(), ['JWT_SECRET', 'PORT']);
  });
});
