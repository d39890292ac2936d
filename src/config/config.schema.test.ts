import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEV_JWT_SECRET, loadConfig, publicKeyAlgorithm } from './config.schema.js';

const SECRET = 'a-very-long-production-secret-123';
const KEY_A = 'key-aaaaaaaaaaaaaaaa';
const KEY_B = 'key-bbbbbbbbbbbbbbbb';
const JWKS = 'https://idp.example.com/.well-known/jwks.json';
/** Production as deployed: with its own database (without one it refuses to start, tested below). */
const PRODUCTION = { NODE_ENV: 'production', DATABASE_URL: 'postgres://chat@db.example/chat' };

function spkiPem(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

const RSA_PEM = spkiPem(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
const P256_PEM = spkiPem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
const P384_PEM = spkiPem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
const ED25519_PEM = spkiPem(generateKeyPairSync('ed25519').publicKey);

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
      jwt: { key: { kind: 'secret', secret: DEV_JWT_SECRET, isDevSecret: true }, issuer: null, audience: null },
      apiKeys: [],
      apiDocs: true,
      devSignIn: false,
      events: { stream: 'chat.events', maxLen: 1_000_000 },
      webhooks: null,
      presendHook: null,
      allowedOrigins: null,
      limits: {
        maxMessageLength: 4000,
        maxPayloadBytes: 65536,
        maxBufferedBytes: 1048576,
        maxConnectionsPerUser: 20,
        maxRoomsPerConnection: 100,
        maxHistoryPage: 100,
      },
      rateLimits: {
        perConnection: { perSecond: 20, burst: 100 },
        perUser: { messages: 300, windowMs: 10000 },
        disconnectAfter: 50,
        roomCreations: { perUser: 20, windowMs: 60000 },
      },
      db: { poolSize: 10, timeoutMs: 2000, appendLingerMs: 0 },
      heartbeat: { intervalMs: 25000, timeoutMs: 20000 },
      retention: { intervalMs: 3_600_000 },
      presence: { leaseMs: 15000 },
      shutdown: { drainMs: 1000, timeoutMs: 10000 },
      http: { headersTimeoutMs: 10000, requestTimeoutMs: 30000, maxConnections: 20000 },
      handshakes: { connectTimeoutMs: 5000, maxUnauthenticated: 1000, perSecond: 100, burst: 1000 },
      trustedProxies: [],
      tracing: null,
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
      'REDIS_CLUSTER_NODES',
      'REDIS_PREFIX',
      'JWT_SECRET',
      'JWT_PUBLIC_KEY',
      'JWKS_URL',
      'JWT_ISSUER',
      'JWT_AUDIENCE',
      'API_KEYS',
      'ALLOWED_ORIGINS',
      'MAX_MESSAGE_LENGTH',
      'MAX_PAYLOAD_BYTES',
      'LOG_LEVEL',
      'DB_POOL_SIZE',
      'DB_TIMEOUT_MS',
      'DB_APPEND_LINGER_MS',
      'SHUTDOWN_TIMEOUT_MS',
      'SHUTDOWN_DRAIN_MS',
      'HEARTBEAT_INTERVAL_MS',
      'HEARTBEAT_TIMEOUT_MS',
      'RETENTION_INTERVAL_MS',
      'PRESENCE_LEASE_MS',
      'MAX_BUFFERED_BYTES',
      'RATE_LIMIT_PER_SECOND',
      'RATE_LIMIT_BURST',
      'RATE_LIMIT_USER_MESSAGES',
      'RATE_LIMIT_USER_WINDOW_MS',
      'RATE_LIMIT_DISCONNECT_AFTER',
      'ROOM_CREATE_LIMIT',
      'ROOM_CREATE_WINDOW_MS',
      'MAX_CONNECTIONS_PER_USER',
      'MAX_ROOMS_PER_CONNECTION',
      'MAX_HISTORY_PAGE',
      'HTTP_HEADERS_TIMEOUT_MS',
      'HTTP_REQUEST_TIMEOUT_MS',
      'HTTP_MAX_CONNECTIONS',
      'HANDSHAKE_CONNECT_TIMEOUT_MS',
      'MAX_UNAUTHENTICATED_SESSIONS',
      'HANDSHAKE_RATE_PER_SECOND',
      'HANDSHAKE_BURST',
      'TRUSTED_PROXIES',
    ]) {
      env[key] = '';
    }
    assert.deepEqual(loadConfig(env), loadConfig({}));
  });

  it('ignores variables it does not know', () => {
    assert.deepEqual(loadConfig({ HOME: '/root', PATH: '/bin', SOMETHING_ELSE: '!!' }), loadConfig({}));
  });

  it('uses an explicit JWT_SECRET and does not flag it', () => {
    assert.deepEqual(loadConfig({ JWT_SECRET: SECRET }).jwt, {
      key: { kind: 'secret', secret: SECRET, isDevSecret: false },
      issuer: null,
      audience: null,
    });
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
  it('requires a key source in production, naming JWT_SECRET and the alternatives', () => {
    const err = configError({ ...PRODUCTION });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
    assert.match(err.message, /JWT_SECRET: required when NODE_ENV=production/);
    assert.match(err.message, /JWT_PUBLIC_KEY/);
    assert.match(err.message, /JWKS_URL/);
  });

  it('treats an empty JWT_SECRET as missing in production', () => {
    const err = configError({ ...PRODUCTION, JWT_SECRET: '' });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
  });

  it('accepts production with a JWT_SECRET', () => {
    const config = loadConfig({ ...PRODUCTION, JWT_SECRET: SECRET });
    assert.equal(config.env, 'production');
    assert.deepEqual(config.jwt.key, { kind: 'secret', secret: SECRET, isDevSecret: false });
  });

  it('refuses a JWT_SECRET shorter than 16 characters, naming it', () => {
    const err = configError({ JWT_SECRET: '123456789012345' });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
    assert.match(err.message, /JWT_SECRET: must be at least 16 characters/);
    assert.deepEqual(loadConfig({ JWT_SECRET: '1234567890123456' }).jwt.key, {
      kind: 'secret',
      secret: '1234567890123456',
      isDevSecret: false,
    });
  });

  it('refuses an unknown NODE_ENV, naming it', () => {
    assert.deepEqual(namedVariables(configError({ NODE_ENV: 'staging' })), ['NODE_ENV']);
  });

  it('refuses the published development secret in production', () => {
    // config.schema.ts: DEV_JWT_SECRET is "Never accepted in production".
    const err = configError({ ...PRODUCTION, JWT_SECRET: DEV_JWT_SECRET });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
  });

  it('flags the development secret even when it is set explicitly', () => {
    // config.schema.ts: "the log warns whenever it is in use"; main.ts warns only when isDevSecret.
    assert.deepEqual(loadConfig({ JWT_SECRET: DEV_JWT_SECRET }).jwt.key, { kind: 'secret', secret: DEV_JWT_SECRET, isDevSecret: true });
  });
});

describe('JWT_PUBLIC_KEY', () => {
  it('accepts an RSA public key in SPKI PEM', () => {
    assert.deepEqual(loadConfig({ JWT_PUBLIC_KEY: RSA_PEM }).jwt, {
      key: { kind: 'publicKey', pem: RSA_PEM },
      issuer: null,
      audience: null,
    });
  });

  it('accepts a P-256 EC public key in SPKI PEM', () => {
    assert.deepEqual(loadConfig({ JWT_PUBLIC_KEY: P256_PEM }).jwt.key, { kind: 'publicKey', pem: P256_PEM });
  });

  it('accepts a PEM written on one line with literal "\\n" sequences and restores the line breaks', () => {
    const oneLine = RSA_PEM.trimEnd().split('\n').join('\\n');
    assert.equal(oneLine.includes('\n'), false);
    assert.ok(oneLine.includes('\\n'));
    const key = loadConfig({ JWT_PUBLIC_KEY: oneLine }).jwt.key;
    assert.deepEqual(key, { kind: 'publicKey', pem: RSA_PEM.trimEnd() });
  });

  const refused: [string, string][] = [
    ['garbage', 'not a key at all'],
    ['a PEM with a damaged body', RSA_PEM.replace(/[A-Za-z]{8}/, '!!!!!!!!')],
    ['an Ed25519 key', ED25519_PEM],
    ['a P-384 EC key', P384_PEM],
  ];
  for (const [name, value] of refused) {
    it(`refuses ${name}, naming JWT_PUBLIC_KEY`, () => {
      const err = configError({ JWT_PUBLIC_KEY: value });
      assert.deepEqual(namedVariables(err), ['JWT_PUBLIC_KEY']);
      assert.match(err.message, /JWT_PUBLIC_KEY: must be an RSA or P-256 EC public key/);
    });
  }

  it('does not print the refused value', () => {
    const err = configError({ JWT_PUBLIC_KEY: P384_PEM });
    assert.equal(err.message.includes(P384_PEM.split('\n')[1] ?? '!'), false);
  });
});

describe('JWKS_URL', () => {
  it('accepts an https:// and an http:// URL', () => {
    assert.deepEqual(loadConfig({ JWKS_URL: JWKS }).jwt.key, { kind: 'jwks', url: JWKS });
    assert.deepEqual(loadConfig({ JWKS_URL: 'http://idp:8080/jwks' }).jwt.key, { kind: 'jwks', url: 'http://idp:8080/jwks' });
  });

  for (const url of ['ftp://idp.example.com/jwks', 'ws://idp/jwks', 'file:///etc/jwks.json', 'idp.example.com/jwks', 'not a url']) {
    it(`refuses ${JSON.stringify(url)}, naming JWKS_URL`, () => {
      const err = configError({ JWKS_URL: url });
      assert.deepEqual(namedVariables(err), ['JWKS_URL']);
      assert.match(err.message, /JWKS_URL: must be a URL starting with https:\/\/ or http:\/\//);
    });
  }
});

describe('JWT_ISSUER and JWT_AUDIENCE', () => {
  it('are read with any key source', () => {
    assert.deepEqual(loadConfig({ JWT_ISSUER: 'https://idp.example.com/', JWT_AUDIENCE: 'chat' }).jwt, {
      key: { kind: 'secret', secret: DEV_JWT_SECRET, isDevSecret: true },
      issuer: 'https://idp.example.com/',
      audience: 'chat',
    });
    assert.deepEqual(loadConfig({ JWKS_URL: JWKS, JWT_ISSUER: 'idp', JWT_AUDIENCE: 'chat' }).jwt, {
      key: { kind: 'jwks', url: JWKS },
      issuer: 'idp',
      audience: 'chat',
    });
  });
});

describe('one key source', () => {
  const pairs: { env: NodeJS.ProcessEnv; named: string }[] = [
    { env: { JWT_SECRET: SECRET, JWT_PUBLIC_KEY: RSA_PEM }, named: 'JWT_PUBLIC_KEY' },
    { env: { JWT_SECRET: SECRET, JWKS_URL: JWKS }, named: 'JWKS_URL' },
    { env: { JWT_PUBLIC_KEY: P256_PEM, JWKS_URL: JWKS }, named: 'JWKS_URL' },
    { env: { JWT_SECRET: SECRET, JWT_PUBLIC_KEY: RSA_PEM, JWKS_URL: JWKS }, named: 'JWT_PUBLIC_KEY' },
  ];
  for (const { env, named } of pairs) {
    const given = Object.keys(env).join(' + ');
    it(`refuses ${given}, naming ${named}`, () => {
      const err = configError(env);
      assert.deepEqual(namedVariables(err), [named]);
      assert.match(err.message, new RegExp(`${named}: set only one of ${Object.keys(env).join(', ')}`));
    });
  }

  it('refuses two key sources in production too', () => {
    const err = configError({ ...PRODUCTION, JWT_SECRET: SECRET, JWKS_URL: JWKS });
    assert.deepEqual(namedVariables(err), ['JWKS_URL']);
  });

  it('ignores an empty second key source', () => {
    assert.deepEqual(loadConfig({ JWT_SECRET: SECRET, JWT_PUBLIC_KEY: '', JWKS_URL: '' }).jwt.key, {
      kind: 'secret',
      secret: SECRET,
      isDevSecret: false,
    });
  });
});

describe('key sources in production', () => {
  it('starts with only JWT_PUBLIC_KEY', () => {
    const config = loadConfig({ ...PRODUCTION, JWT_PUBLIC_KEY: RSA_PEM });
    assert.equal(config.env, 'production');
    assert.deepEqual(config.jwt.key, { kind: 'publicKey', pem: RSA_PEM });
  });

  it('starts with only JWKS_URL', () => {
    const config = loadConfig({ ...PRODUCTION, JWKS_URL: JWKS });
    assert.equal(config.env, 'production');
    assert.deepEqual(config.jwt.key, { kind: 'jwks', url: JWKS });
  });

  it('names JWT_SECRET when none is set, also when the others are empty strings', () => {
    const err = configError({ ...PRODUCTION, JWT_SECRET: '', JWT_PUBLIC_KEY: '', JWKS_URL: '' });
    assert.deepEqual(namedVariables(err), ['JWT_SECRET']);
  });
});

describe('publicKeyAlgorithm', () => {
  it('returns RS256 for an RSA key and ES256 for a P-256 key', () => {
    assert.equal(publicKeyAlgorithm(RSA_PEM), 'RS256');
    assert.equal(publicKeyAlgorithm(P256_PEM), 'ES256');
  });

  it('returns null for other curves, other key types and anything that is not a key', () => {
    assert.equal(publicKeyAlgorithm(P384_PEM), null);
    assert.equal(publicKeyAlgorithm(ED25519_PEM), null);
    assert.equal(publicKeyAlgorithm('garbage'), null);
    assert.equal(publicKeyAlgorithm(''), null);
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

describe('PRESENCE_LEASE_MS', () => {
  it("defaults to 15 s, so a dead instance's users leave within 20 s", () => {
    assert.deepEqual(loadConfig({}).presence, { leaseMs: 15000 });
  });

  it('reads a shorter lease', () => {
    assert.deepEqual(loadConfig({ PRESENCE_LEASE_MS: '1500' }).presence, { leaseMs: 1500 });
  });

  it('refuses a lease outside 1000-20000 ms (longer would break the 30 s bound), naming it', () => {
    for (const value of ['999', '20001', 'soon', '1.5'])
      assert.deepEqual(namedVariables(configError({ PRESENCE_LEASE_MS: value })), ['PRESENCE_LEASE_MS'], value);
  });
});

describe('REDIS_URL and REDIS_PREFIX', () => {
  it('parses REDIS_URL with the default prefix "chat"', () => {
    assert.deepEqual(loadConfig({ REDIS_URL: 'redis://cache:6379/0' }).redis, {
      url: 'redis://cache:6379/0',
      prefix: 'chat',
      barePatterns: false,
    });
  });

  it('accepts rediss:// and a custom prefix', () => {
    assert.deepEqual(loadConfig({ REDIS_URL: 'rediss://cache:6380', REDIS_PREFIX: 'chat.eu-1:' }).redis, {
      url: 'rediss://cache:6380',
      prefix: 'chat.eu-1:',
      barePatterns: false,
    });
  });

  it('names the events stream after the prefix unless EVENTS_STREAM says otherwise (issue 13)', () => {
    assert.equal(loadConfig({ REDIS_PREFIX: 'eu-1' }).events.stream, 'eu-1.events');
    assert.equal(loadConfig({}).events.stream, 'chat.events');
    assert.equal(loadConfig({ REDIS_PREFIX: 'eu-1', EVENTS_STREAM: 'shared.events' }).events.stream, 'shared.events');
  });

  it('serves the bare chat.* command patterns only with COMMANDS_BARE_PATTERNS=true', () => {
    assert.equal(
      loadConfig({ REDIS_URL: 'redis://cache', REDIS_PREFIX: 'eu-1', COMMANDS_BARE_PATTERNS: 'true' }).redis?.barePatterns,
      true,
    );
    assert.deepEqual(namedVariables(configError({ COMMANDS_BARE_PATTERNS: '1' })), ['COMMANDS_BARE_PATTERNS']);
  });

  it('refuses a non-Redis scheme, naming REDIS_URL', () => {
    assert.deepEqual(namedVariables(configError({ REDIS_URL: 'http://cache:6379' })), ['REDIS_URL']);
  });

  it('refuses a bad REDIS_PREFIX, naming it', () => {
    assert.deepEqual(namedVariables(configError({ REDIS_URL: 'redis://cache', REDIS_PREFIX: 'has space' })), ['REDIS_PREFIX']);
    assert.deepEqual(namedVariables(configError({ REDIS_PREFIX: 'p'.repeat(65) })), ['REDIS_PREFIX']);
  });
});

describe('REDIS_CLUSTER_NODES (issue 16)', () => {
  it('parses comma-separated seed URLs, with the prefix and passwords as for REDIS_URL', () => {
    assert.deepEqual(loadConfig({ REDIS_CLUSTER_NODES: ' rediss://:pw@r1:7000 , rediss://:pw@r2:7001,', REDIS_PREFIX: 'eu-1' }).redis, {
      clusterNodes: ['rediss://:pw@r1:7000', 'rediss://:pw@r2:7001'],
      prefix: 'eu-1',
      barePatterns: false,
    });
  });

  it('leaves the single-server configuration exactly as it was', () => {
    assert.deepEqual(loadConfig({ REDIS_URL: 'redis://cache:6379' }).redis, {
      url: 'redis://cache:6379',
      prefix: 'chat',
      barePatterns: false,
    });
    assert.equal(loadConfig({}).redis, null);
  });

  it('refuses REDIS_URL and REDIS_CLUSTER_NODES together, naming REDIS_CLUSTER_NODES', () => {
    const err = configError({ REDIS_URL: 'redis://cache', REDIS_CLUSTER_NODES: 'redis://r1:7000' });
    assert.deepEqual(namedVariables(err), ['REDIS_CLUSTER_NODES']);
    assert.match(err.problems[0], /either REDIS_URL .* or REDIS_CLUSTER_NODES .*not both/);
  });

  it('refuses a node that is not a redis:// or rediss:// URL', () => {
    assert.deepEqual(namedVariables(configError({ REDIS_CLUSTER_NODES: 'redis://r1:7000,r2:7001' })), ['REDIS_CLUSTER_NODES']);
    assert.deepEqual(namedVariables(configError({ REDIS_CLUSTER_NODES: 'http://r1:7000' })), ['REDIS_CLUSTER_NODES']);
    assert.deepEqual(namedVariables(configError({ REDIS_CLUSTER_NODES: ' , ' })), ['REDIS_CLUSTER_NODES']);
  });

  it('refuses seeds that disagree on scheme or credentials (one client speaks one way to every node)', () => {
    for (const nodes of ['redis://r1:7000,rediss://r2:7000', 'redis://:a@r1:7000,redis://:b@r2:7000']) {
      const err = configError({ REDIS_CLUSTER_NODES: nodes });
      assert.deepEqual(namedVariables(err), ['REDIS_CLUSTER_NODES'], nodes);
      assert.match(err.problems[0], /same scheme .* and credentials/);
    }
  });

  it('refuses a database other than 0 (a cluster has no others)', () => {
    assert.match(
      configError({ REDIS_CLUSTER_NODES: 'redis://r1:7000/2' }).problems[0],
      /^REDIS_CLUSTER_NODES: a cluster has only database 0/,
    );
    assert.deepEqual(loadConfig({ REDIS_CLUSTER_NODES: 'redis://r1:7000/0' }).redis?.clusterNodes, ['redis://r1:7000/0']);
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
    assert.deepEqual(loadConfig({ API_KEYS: `${KEY_A}, ${KEY_B}` }).apiKeys, [
      { key: KEY_A, readOnly: false },
      { key: KEY_B, readOnly: false },
    ]);
    assert.deepEqual(loadConfig({ API_KEYS: `${KEY_A}:read` }).apiKeys, [{ key: KEY_A, readOnly: true }]);
    assert.throws(() => loadConfig({ API_KEYS: 'short:read' }), /API_KEYS/);
  });

  it('trusts the proxies listed in TRUSTED_PROXIES (addresses or subnets) and refuses anything else', () => {
    assert.deepEqual(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.1,::1' }).trustedProxies, ['10.0.0.0/8', '192.168.1.1', '::1']);
    assert.throws(() => loadConfig({ TRUSTED_PROXIES: 'haproxy' }), /TRUSTED_PROXIES/);
    assert.throws(() => loadConfig({ TRUSTED_PROXIES: '10.0.0.0/40' }), /TRUSTED_PROXIES/);
  });

  it('webhooks need a secret, and get the configured attempts and timeout', () => {
    assert.throws(() => loadConfig({ WEBHOOK_URLS: 'http://127.0.0.1:9/hook' }), /WEBHOOK_SECRET/);
    assert.throws(() => loadConfig({ WEBHOOK_URLS: 'ftp://example.com/x', WEBHOOK_SECRET: 'w'.repeat(16) }), /WEBHOOK_URLS/);
    assert.deepEqual(
      loadConfig({ WEBHOOK_URLS: 'http://127.0.0.1:9/a, https://example.com/b', WEBHOOK_SECRET: 'w'.repeat(16), WEBHOOK_MAX_ATTEMPTS: '3' })
        .webhooks,
      {
        urls: ['http://127.0.0.1:9/a', 'https://example.com/b'],
        secret: 'w'.repeat(16),
        maxAttempts: 3,
        timeoutMs: 5000,
        retryBaseMs: 5000,
        circuit: { perUrl: 8, failures: 5, cooldownMs: 30_000 },
      },
    );
    assert.deepEqual(loadConfig({ EVENTS_STREAM: 'my.events', EVENTS_STREAM_MAXLEN: '5000' }).events, {
      stream: 'my.events',
      maxLen: 5000,
    });
    assert.throws(() => loadConfig({ EVENTS_STREAM: 'has space' }), /EVENTS_STREAM/);
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
    assert.deepEqual(config.limits, {
      maxMessageLength: 500,
      maxPayloadBytes: 1024,
      maxBufferedBytes: 1048576,
      maxConnectionsPerUser: 20,
      maxRoomsPerConnection: 100,
      maxHistoryPage: 100,
    });
    assert.equal(config.logLevel, 'debug');
  });

  it('runs retention hourly unless RETENTION_INTERVAL_MS says otherwise', () => {
    assert.deepEqual(loadConfig({}).retention, { intervalMs: 3_600_000 });
    assert.deepEqual(loadConfig({ RETENTION_INTERVAL_MS: '500' }).retention, { intervalMs: 500 });
  });

  it('reads the storage, heartbeat and shutdown bounds', () => {
    const config = loadConfig({
      DB_POOL_SIZE: '4',
      DB_TIMEOUT_MS: '1500',
      DB_APPEND_LINGER_MS: '5',
      HEARTBEAT_INTERVAL_MS: '1000',
      HEARTBEAT_TIMEOUT_MS: '500',
      SHUTDOWN_DRAIN_MS: '0',
      SHUTDOWN_TIMEOUT_MS: '5000',
      MAX_BUFFERED_BYTES: '65536',
    });
    assert.deepEqual(
      [config.db, config.heartbeat, config.shutdown, config.limits.maxBufferedBytes],
      [{ poolSize: 4, timeoutMs: 1500, appendLingerMs: 5 }, { intervalMs: 1000, timeoutMs: 500 }, { drainMs: 0, timeoutMs: 5000 }, 65536],
    );
  });

  it('refuses a drain period that does not fit in the shutdown bound', () => {
    const err = configError({ SHUTDOWN_DRAIN_MS: '10000', SHUTDOWN_TIMEOUT_MS: '10000' });
    assert.deepEqual(namedVariables(err), ['SHUTDOWN_DRAIN_MS']);
  });

  it('refuses a request timeout shorter than the headers timeout', () => {
    const err = configError({ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' });
    assert.deepEqual(namedVariables(err), ['HTTP_REQUEST_TIMEOUT_MS']);
  });

  it('refuses out-of-range limits and unknown log levels', () => {
    const err = configError({ MAX_MESSAGE_LENGTH: '0', MAX_PAYLOAD_BYTES: '1023', LOG_LEVEL: 'verbose' });
    assert.deepEqual(namedVariables(err), ['MAX_MESSAGE_LENGTH', 'MAX_PAYLOAD_BYTES', 'LOG_LEVEL']);
  });

  for (const value of ['-1', '21', '2.5', 'soon']) {
    it(`refuses DB_APPEND_LINGER_MS=${value} (0-20 ms), naming it`, () => {
      assert.deepEqual(namedVariables(configError({ DB_APPEND_LINGER_MS: value })), ['DB_APPEND_LINGER_MS']);
    });
  }
});

describe('rate limits and connection caps', () => {
  it('reads every RATE_LIMIT_* and ROOM_CREATE_* variable', () => {
    const config = loadConfig({
      RATE_LIMIT_PER_SECOND: '5',
      RATE_LIMIT_BURST: '10',
      RATE_LIMIT_USER_MESSAGES: '1000',
      RATE_LIMIT_USER_WINDOW_MS: '60000',
      RATE_LIMIT_DISCONNECT_AFTER: '3',
      ROOM_CREATE_LIMIT: '4',
      ROOM_CREATE_WINDOW_MS: '1000',
    });
    assert.deepEqual(config.rateLimits, {
      perConnection: { perSecond: 5, burst: 10 },
      perUser: { messages: 1000, windowMs: 60000 },
      disconnectAfter: 3,
      roomCreations: { perUser: 4, windowMs: 1000 },
    });
  });

  it('reads MAX_CONNECTIONS_PER_USER, MAX_ROOMS_PER_CONNECTION and MAX_HISTORY_PAGE', () => {
    const config = loadConfig({ MAX_CONNECTIONS_PER_USER: '2', MAX_ROOMS_PER_CONNECTION: '7', MAX_HISTORY_PAGE: '25' });
    assert.deepEqual([config.limits.maxConnectionsPerUser, config.limits.maxRoomsPerConnection, config.limits.maxHistoryPage], [2, 7, 25]);
  });

  it('accepts MAX_HISTORY_PAGE from 1 to 100, the protocol’s bounds', () => {
    assert.equal(loadConfig({ MAX_HISTORY_PAGE: '1' }).limits.maxHistoryPage, 1);
    assert.equal(loadConfig({ MAX_HISTORY_PAGE: '100' }).limits.maxHistoryPage, 100);
  });

  const refused: [string, string][] = [
    ['RATE_LIMIT_PER_SECOND', '0'],
    ['RATE_LIMIT_BURST', '0'],
    ['RATE_LIMIT_USER_MESSAGES', '0'],
    ['RATE_LIMIT_USER_WINDOW_MS', '99'],
    ['RATE_LIMIT_DISCONNECT_AFTER', '0'],
    ['ROOM_CREATE_LIMIT', '0'],
    ['ROOM_CREATE_LIMIT', 'many'],
    ['ROOM_CREATE_WINDOW_MS', '999'],
    ['ROOM_CREATE_WINDOW_MS', '86400001'],
    ['MAX_CONNECTIONS_PER_USER', '0'],
    ['MAX_ROOMS_PER_CONNECTION', '0'],
    ['MAX_HISTORY_PAGE', '0'],
    ['MAX_HISTORY_PAGE', '101'],
    ['RATE_LIMIT_PER_SECOND', 'fast'],
    ['MAX_CONNECTIONS_PER_USER', '-1'],
    ['MAX_ROOMS_PER_CONNECTION', '2.5'],
  ];
  for (const [name, value] of refused) {
    it(`refuses ${name}=${value}, naming it`, () => {
      assert.deepEqual(namedVariables(configError({ [name]: value })), [name]);
    });
  }
});

describe('WEBHOOK_*', () => {
  const URLS = 'https://hooks.example.com/chat, http://127.0.0.1:9000/in';
  const WEBHOOK_SECRET = 'webhook-secret-0123456789';

  it('reads the URLs, the secret and the retry settings, with defaults', () => {
    assert.deepEqual(loadConfig({ WEBHOOK_URLS: URLS, WEBHOOK_SECRET }).webhooks, {
      urls: ['https://hooks.example.com/chat', 'http://127.0.0.1:9000/in'],
      secret: WEBHOOK_SECRET,
      maxAttempts: 8,
      timeoutMs: 5000,
      retryBaseMs: 5000,
      circuit: { perUrl: 8, failures: 5, cooldownMs: 30_000 },
    });
    const tuned = loadConfig({
      WEBHOOK_URLS: URLS,
      WEBHOOK_SECRET,
      WEBHOOK_MAX_ATTEMPTS: '3',
      WEBHOOK_RETRY_BASE_MS: '10',
      WEBHOOK_CONCURRENCY_PER_URL: '2',
      WEBHOOK_CIRCUIT_FAILURES: '1',
      WEBHOOK_CIRCUIT_COOLDOWN_MS: '500',
    }).webhooks;
    assert.equal(tuned?.maxAttempts, 3);
    assert.equal(tuned?.retryBaseMs, 10);
    assert.deepEqual(tuned?.circuit, { perUrl: 2, failures: 1, cooldownMs: 500 });
  });

  for (const [name, value] of [
    ['WEBHOOK_CONCURRENCY_PER_URL', '0'],
    ['WEBHOOK_CONCURRENCY_PER_URL', '33'],
    ['WEBHOOK_CIRCUIT_FAILURES', '0'],
    ['WEBHOOK_CIRCUIT_COOLDOWN_MS', '99'],
  ]) {
    it(`refuses ${name}=${value}, naming it`, () => {
      assert.deepEqual(namedVariables(configError({ WEBHOOK_URLS: URLS, WEBHOOK_SECRET, [name]: value })), [name]);
    });
  }

  for (const value of ['9', '3600001', 'soon', '1.5']) {
    it(`refuses WEBHOOK_RETRY_BASE_MS=${value}, naming it`, () => {
      assert.deepEqual(namedVariables(configError({ WEBHOOK_URLS: URLS, WEBHOOK_SECRET, WEBHOOK_RETRY_BASE_MS: value })), [
        'WEBHOOK_RETRY_BASE_MS',
      ]);
    });
  }
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
    const err = configError({ ...PRODUCTION, PORT: 'not-a-port' });
    assert.deepEqual(namedVariables(err).sort(), ['JWT_SECRET', 'PORT']);
  });
});

describe('production fails closed (issue 13)', () => {
  const DB = 'postgres://chat@db.example/chat';

  it('refuses production without DATABASE_URL, naming it and the opt-in', () => {
    const err = configError({ NODE_ENV: 'production', JWT_SECRET: SECRET });
    assert.deepEqual(namedVariables(err), ['DATABASE_URL']);
    assert.match(err.message, /DATABASE_URL: required when NODE_ENV=production \(EMBEDDED_DATABASE=true/);
  });

  it('runs production on the embedded database only with EMBEDDED_DATABASE=true', () => {
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET, EMBEDDED_DATABASE: 'true' });
    assert.deepEqual(config.database, { mode: 'embedded', dataDir: './data' });
    assert.deepEqual(namedVariables(configError({ EMBEDDED_DATABASE: 'yes' })), ['EMBEDDED_DATABASE']);
  });

  it('refuses an http: JWKS_URL in production, accepts it in development and test', () => {
    for (const url of ['http://idp.internal/jwks.json', 'HTTP://idp.internal/jwks.json']) {
      const err = configError({ NODE_ENV: 'production', DATABASE_URL: DB, JWKS_URL: url });
      assert.deepEqual(namedVariables(err), ['JWKS_URL']);
      assert.match(err.message, /JWKS_URL: must be https:\/\/ when NODE_ENV=production/);
    }
    for (const NODE_ENV of ['development', 'test'])
      assert.equal(loadConfig({ NODE_ENV, JWKS_URL: 'http://idp.internal/jwks.json' }).jwt.key.kind, 'jwks');
    assert.equal(loadConfig({ NODE_ENV: 'production', DATABASE_URL: DB, JWKS_URL: JWKS }).jwt.key.kind, 'jwks');
  });
});

describe('API_DOCS', () => {
  it('serves /docs by default outside production, not in production unless asked for', () => {
    assert.equal(loadConfig({}).apiDocs, true);
    assert.equal(loadConfig({ NODE_ENV: 'test' }).apiDocs, true);
    assert.equal(loadConfig({ API_DOCS: 'false' }).apiDocs, false);
    assert.equal(loadConfig({ ...PRODUCTION, JWT_SECRET: SECRET }).apiDocs, false);
    assert.equal(loadConfig({ ...PRODUCTION, JWT_SECRET: SECRET, API_DOCS: 'true' }).apiDocs, true);
  });

  it('accepts only true or false', () => {
    assert.deepEqual(namedVariables(configError({ API_DOCS: 'yes' })), ['API_DOCS']);
  });
});

describe('DEV_SIGN_IN (issue 13)', () => {
  it('is off unless asked for', () => {
    assert.equal(loadConfig({}).devSignIn, false);
    assert.equal(loadConfig({ DEV_SIGN_IN: 'true' }).devSignIn, true);
    assert.equal(loadConfig({ DEV_SIGN_IN: 'true', JWT_SECRET: DEV_JWT_SECRET, NODE_ENV: 'test' }).devSignIn, true);
  });

  it('is refused in production', () => {
    const err = configError({ NODE_ENV: 'production', DATABASE_URL: 'postgres://x@h/x', JWT_SECRET: SECRET, DEV_SIGN_IN: 'true' });
    assert.deepEqual(namedVariables(err), ['DEV_SIGN_IN']);
    assert.match(err.message, /DEV_SIGN_IN: refused when NODE_ENV=production/);
  });

  it("is refused with a real key source: it would mint tokens that key's verifiers accept", () => {
    for (const env of [{ JWT_SECRET: SECRET }, { JWKS_URL: JWKS }, { JWT_PUBLIC_KEY: RSA_PEM }]) {
      const err = configError({ DEV_SIGN_IN: 'true', ...env });
      assert.deepEqual(namedVariables(err), ['DEV_SIGN_IN'], Object.keys(env)[0]);
      assert.match(
        err.message,
        /signs with the published development secret only: unset (JWT_SECRET|JWKS_URL|JWT_PUBLIC_KEY) or DEV_SIGN_IN/,
      );
    }
  });
});

describe('PRESEND_HOOK_*', () => {
  const PRESEND_HOOK_URL = 'https://moderation.example.com/presend';
  const WEBHOOK_SECRET = 'webhook-secret-0123456789';

  it('is off without PRESEND_HOOK_URL', () => {
    assert.equal(loadConfig({}).presendHook, null);
  });

  it('reads the URL and the secret, with defaults: 1000 ms, fail closed, 64 in flight and 4 waiting per slot', () => {
    assert.deepEqual(loadConfig({ PRESEND_HOOK_URL, WEBHOOK_SECRET }).presendHook, {
      url: PRESEND_HOOK_URL,
      secret: WEBHOOK_SECRET,
      timeoutMs: 1000,
      failOpen: false,
      concurrency: 64,
      queue: 256,
    });
    const tuned = loadConfig({
      PRESEND_HOOK_URL,
      PRESEND_HOOK_TIMEOUT_MS: '250',
      PRESEND_HOOK_FAIL_OPEN: 'true',
      PRESEND_HOOK_CONCURRENCY: '2',
    }).presendHook;
    assert.deepEqual(tuned, { url: PRESEND_HOOK_URL, secret: null, timeoutMs: 250, failOpen: true, concurrency: 2, queue: 8 });
  });

  it('refuses to start in production with the hook and no WEBHOOK_SECRET (its requests would be unsigned)', () => {
    assert.deepEqual(namedVariables(configError({ ...PRODUCTION, JWT_SECRET: SECRET, PRESEND_HOOK_URL })), ['WEBHOOK_SECRET']);
    assert.equal(loadConfig({ ...PRODUCTION, JWT_SECRET: SECRET, PRESEND_HOOK_URL, WEBHOOK_SECRET }).presendHook?.secret, WEBHOOK_SECRET);
  });

  for (const [name, value] of [
    ['PRESEND_HOOK_URL', 'ftp://example.com/x'],
    ['PRESEND_HOOK_URL', 'not a url'],
    ['PRESEND_HOOK_TIMEOUT_MS', '9'],
    ['PRESEND_HOOK_TIMEOUT_MS', '60001'],
    ['PRESEND_HOOK_FAIL_OPEN', 'yes'],
    ['PRESEND_HOOK_CONCURRENCY', '0'],
    ['PRESEND_HOOK_CONCURRENCY', '10001'],
  ]) {
    it(`refuses ${name}=${value}, naming it`, () => {
      assert.deepEqual(namedVariables(configError({ PRESEND_HOOK_URL, [name]: value })), [name]);
    });
  }
});

describe('tracing (OTEL_*)', () => {
  it('is off without an endpoint, whatever else is set', () => {
    assert.equal(loadConfig({ OTEL_SERVICE_NAME: 'chat-eu' }).tracing, null);
  });

  it('appends v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT, after its path and without doubling a slash', () => {
    assert.deepEqual(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing, {
      tracesUrl: 'http://collector:4318/v1/traces',
      serviceName: 'chat',
    });
    assert.equal(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example/ingest/' }).tracing?.tracesUrl,
      'https://otel.example/ingest/v1/traces',
    );
  });

  it('uses OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, in preference to the general endpoint', () => {
    const tracing = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
      OTEL_SERVICE_NAME: 'chat-eu',
    }).tracing;
    assert.deepEqual(tracing, { tracesUrl: 'http://traces:9999/custom', serviceName: 'chat-eu' });
  });

  it('is off with OTEL_SDK_DISABLED=true even with an endpoint', () => {
    assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing, null);
    assert.notEqual(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'false' }).tracing, null);
  });

  it('refuses an endpoint that is no http(s) URL and an OTEL_SDK_DISABLED that is no boolean, naming them', () => {
    const err = configError({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'grpc://x',
      OTEL_SDK_DISABLED: 'yes',
    });
    assert.deepEqual(namedVariables(err).sort(), [
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
      'OTEL_SDK_DISABLED',
    ]);
  });
});
