import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { isProxyEntry } from '../common/trusted-proxies.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The development secret; the log warns whenever it is in use. Never accepted in production. */
export const DEV_JWT_SECRET = 'dev-only-insecure-jwt-secret-change-me';

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));

const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0),
);

/** `true` or `false`; anything else is a mistake worth stopping for, not a silent `false`. */
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

const url = (protocols: string[]) =>
  z
    .string()
    .trim()
    .refine(
      (v) => {
        try {
          return protocols.includes(new URL(v).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    );

const origin = z
  .string()
  .refine((v) => {
    try {
      return new URL(v).origin === v.replace(/\/$/, '');
    } catch {
      return false;
    }
  }, 'each entry must be an origin such as https://chat.example.com')
  .transform((v) => new URL(v).origin);

/**
 * Hook calls that may wait for a slot, per slot of PRESEND_HOOK_CONCURRENCY: enough to ride out a
 * burst, while a hook that stopped answering fails sends at once instead of piling them up.
 */
const PRESEND_QUEUE_PER_SLOT = 4;

const READ_ONLY_SUFFIX = ':read';

function apiKey(entry: string): { key: string; readOnly: boolean } {
  const readOnly = entry.endsWith(READ_ONLY_SUFFIX);
  return { key: readOnly ? entry.slice(0, -READ_ONLY_SUFFIX.length) : entry, readOnly };
}

/**
 * Why a list of cluster seed URLs cannot be used, or null. One cluster client speaks one way to
 * every node (ioredis's Cluster takes one set of connection options), so the seeds must agree on
 * scheme and credentials; a cluster has only database 0, so a path selecting another is refused.
 */
function clusterSeedProblem(urls: string[]): string | null {
  const parsed = urls.map((u) => URL.parse(u));
  // A seed that is no redis:// or rediss:// URL is already reported, once, by the list's own check.
  const seeds = parsed.filter((u): u is URL => u !== null && ['redis:', 'rediss:'].includes(u.protocol));
  if (seeds.length < parsed.length) return null;
  const way = (u: URL) => `${u.protocol}${u.username}:${u.password}`;
  if (seeds.some((u) => way(u) !== way(seeds[0]))) return 'every node must use the same scheme (redis:// or rediss://) and credentials';
  if (seeds.some((u) => !['', '/', '/0'].includes(u.pathname))) return 'a cluster has only database 0: leave the path out';
  if (seeds.some((u) => !u.hostname)) return 'every node needs a host';
  return null;
}

/** Every environment variable the service reads. Empty strings count as unset. */
const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: int(0, 65535).default(3000),
    DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
    DATA_DIR: z.string().min(1).default('./data'),
    // Production without DATABASE_URL is almost always a missing secret, not a wish for PGlite.
    EMBEDDED_DATABASE: flag.default(false),
    REDIS_URL: url(['redis:', 'rediss:']).optional(),
    // A Redis Cluster instead of one server: seed nodes, the rest of the cluster is discovered from them.
    REDIS_CLUSTER_NODES: commaList.pipe(z.array(url(['redis:', 'rediss:'])).min(1, 'must list at least one node')).optional(),
    REDIS_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,64}$/, 'must be 1-64 characters of letters, digits, . _ : -')
      .default('chat'),
    // The contract's bare `chat.*` command channels as well as `<REDIS_PREFIX>.*`, for a deployment with another prefix.
    COMMANDS_BARE_PATTERNS: flag.default(false),
    JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    // PEM in an environment variable often arrives with literal "\n" sequences.
    JWT_PUBLIC_KEY: z
      .string()
      .transform((v) => v.replace(/\\n/g, '\n'))
      .refine((pem) => !pem.includes('PRIVATE KEY'), 'must be a public key; never give the service a private key')
      .refine((pem) => publicKeyAlgorithm(pem) !== null, 'must be an RSA or P-256 EC public key in PEM (SPKI) form')
      .optional(),
    JWKS_URL: url(['https:', 'http:']).optional(),
    JWT_ISSUER: z.string().min(1).optional(),
    // POST /dev/token hands a token for any name to anyone: only on request, never by default.
    DEV_SIGN_IN: flag.default(false),
    // The OpenAPI document and Swagger UI describe every route to anyone: in production only on request.
    API_DOCS: flag.optional(),
    JWT_AUDIENCE: z.string().min(1).optional(),
    // `key` may call every route; `key:read` only reads (GET).
    API_KEYS: commaList
      .transform((keys) => keys.map(apiKey))
      .pipe(
        z.array(
          z.object({
            key: z.string().min(16, 'each key must be at least 16 characters (a ":read" suffix not counted)'),
            readOnly: z.boolean(),
          }),
        ),
      )
      .optional(),
    EVENTS_STREAM: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 characters of letters, digits, . _ : -')
      .optional(),
    EVENTS_STREAM_MAXLEN: int(1000, 1_000_000_000).default(1_000_000),
    WEBHOOK_URLS: commaList.pipe(z.array(url(['https:', 'http:']))).optional(),
    WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    WEBHOOK_MAX_ATTEMPTS: int(1, 100).default(8),
    WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(5000),
    WEBHOOK_RETRY_BASE_MS: int(10, 3_600_000).default(5000),
    WEBHOOK_CONCURRENCY_PER_URL: int(1, 32).default(8),
    WEBHOOK_CIRCUIT_FAILURES: int(1, 1000).default(5),
    WEBHOOK_CIRCUIT_COOLDOWN_MS: int(100, 3_600_000).default(30_000),
    PRESEND_HOOK_URL: url(['https:', 'http:']).optional(),
    PRESEND_HOOK_TIMEOUT_MS: int(10, 60_000).default(1000),
    PRESEND_HOOK_FAIL_OPEN: flag.default(false),
    PRESEND_HOOK_CONCURRENCY: int(1, 10_000).default(64),
    ALLOWED_ORIGINS: commaList.pipe(z.array(origin)).optional(),
    MAX_MESSAGE_LENGTH: int(1, 100_000).default(4000),
    MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
    DB_POOL_SIZE: int(1, 200).default(10),
    DB_TIMEOUT_MS: int(100, 60_000).default(2000),
    DB_APPEND_LINGER_MS: int(0, 20).default(0),
    SHUTDOWN_TIMEOUT_MS: int(1000, 300_000).default(10_000),
    SHUTDOWN_DRAIN_MS: int(0, 300_000).default(1000),
    HEARTBEAT_INTERVAL_MS: int(100, 300_000).default(25_000),
    RETENTION_INTERVAL_MS: int(100, 86_400_000).default(3_600_000),
    HEARTBEAT_TIMEOUT_MS: int(100, 300_000).default(20_000),
    // Presence leases (with Redis): a dead instance's users leave within about 4/3 of this, so at most ~27 s.
    PRESENCE_LEASE_MS: int(1000, 20_000).default(15_000),
    MAX_BUFFERED_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024),
    RATE_LIMIT_PER_SECOND: int(1, 100_000).default(20),
    RATE_LIMIT_BURST: int(1, 1_000_000).default(100),
    RATE_LIMIT_USER_MESSAGES: int(1, 10_000_000).default(300),
    RATE_LIMIT_USER_WINDOW_MS: int(100, 3_600_000).default(10_000),
    RATE_LIMIT_DISCONNECT_AFTER: int(1, 1_000_000).default(50),
    // Rooms one user may create by room.join / message.send per window (the HTTP API and commands are not counted).
    ROOM_CREATE_LIMIT: int(1, 10_000_000).default(20),
    ROOM_CREATE_WINDOW_MS: int(1000, 86_400_000).default(60_000),
    MAX_CONNECTIONS_PER_USER: int(1, 100_000).default(20),
    MAX_ROOMS_PER_CONNECTION: int(1, 100_000).default(100),
    MAX_HISTORY_PAGE: int(1, 100).default(100),
    // Transport hardening (issue 13): slow headers, connection and handshake floods.
    HTTP_HEADERS_TIMEOUT_MS: int(1000, 300_000).default(10_000),
    HTTP_REQUEST_TIMEOUT_MS: int(1000, 3_600_000).default(30_000),
    HTTP_MAX_CONNECTIONS: int(1, 10_000_000).default(20_000),
    HANDSHAKE_CONNECT_TIMEOUT_MS: int(100, 60_000).default(5000),
    MAX_UNAUTHENTICATED_SESSIONS: int(1, 1_000_000).default(1000),
    HANDSHAKE_RATE_PER_SECOND: int(1, 1_000_000).default(100),
    HANDSHAKE_BURST: int(1, 10_000_000).default(1000),
    // Tracing (OpenTelemetry, OTLP over HTTP): on only when an endpoint is set; the SDK's standard names.
    OTEL_EXPORTER_OTLP_ENDPOINT: url(['https:', 'http:']).optional(),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url(['https:', 'http:']).optional(),
    OTEL_SDK_DISABLED: flag.default(false),
    OTEL_SERVICE_NAME: z.string().trim().min(1).max(256).default('chat'),
    TRUSTED_PROXIES: commaList
      .pipe(z.array(z.string().refine(isProxyEntry, 'each entry must be an IP address or a CIDR subnet')))
      .optional(),
  })
  .superRefine((env, ctx) => {
    if (env.REDIS_URL && env.REDIS_CLUSTER_NODES)
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_CLUSTER_NODES'],
        message: 'set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both',
      });
    const seedProblem = env.REDIS_CLUSTER_NODES && clusterSeedProblem(env.REDIS_CLUSTER_NODES);
    if (seedProblem) ctx.addIssue({ code: 'custom', path: ['REDIS_CLUSTER_NODES'], message: seedProblem });
    if (env.HTTP_REQUEST_TIMEOUT_MS < env.HTTP_HEADERS_TIMEOUT_MS)
      ctx.addIssue({ code: 'custom', path: ['HTTP_REQUEST_TIMEOUT_MS'], message: 'must not be shorter than HTTP_HEADERS_TIMEOUT_MS' });
    if (env.SHUTDOWN_DRAIN_MS >= env.SHUTDOWN_TIMEOUT_MS)
      ctx.addIssue({ code: 'custom', path: ['SHUTDOWN_DRAIN_MS'], message: 'must be shorter than SHUTDOWN_TIMEOUT_MS' });
    const keySources = (['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL'] as const).filter((k) => env[k] !== undefined);
    if (env.WEBHOOK_URLS?.length && !env.WEBHOOK_SECRET)
      ctx.addIssue({ code: 'custom', path: ['WEBHOOK_SECRET'], message: 'required when WEBHOOK_URLS is set (it signs every delivery)' });
    if (keySources.length > 1) ctx.addIssue({ code: 'custom', path: [keySources[1]], message: `set only one of ${keySources.join(', ')}` });
    const realKeys = keySources.filter((k) => !(k === 'JWT_SECRET' && env.JWT_SECRET === DEV_JWT_SECRET));
    if (env.DEV_SIGN_IN && (env.NODE_ENV === 'production' || realKeys.length > 0))
      ctx.addIssue({
        code: 'custom',
        path: ['DEV_SIGN_IN'],
        message:
          env.NODE_ENV === 'production'
            ? 'refused when NODE_ENV=production'
            : `signs with the published development secret only: unset ${realKeys.join(', ')} or DEV_SIGN_IN`,
      });
    if (env.NODE_ENV !== 'production') return;
    // Fail closed: an unsigned hook request could be forged by anyone who can reach the receiver.
    if (env.PRESEND_HOOK_URL && !env.WEBHOOK_SECRET)
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_SECRET'],
        message: 'required when PRESEND_HOOK_URL is set and NODE_ENV=production (it signs every hook request)',
      });
    if (!env.DATABASE_URL && !env.EMBEDDED_DATABASE)
      ctx.addIssue({
        code: 'custom',
        path: ['DATABASE_URL'],
        message: 'required when NODE_ENV=production (EMBEDDED_DATABASE=true runs on the embedded single-instance database instead)',
      });
    if (env.JWKS_URL && /^http:/i.test(env.JWKS_URL))
      ctx.addIssue({
        code: 'custom',
        path: ['JWKS_URL'],
        message: 'must be https:// when NODE_ENV=production (keys fetched over http can be forged)',
      });
    if (keySources.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_SECRET'],
        message: 'required when NODE_ENV=production (or verify tokens with JWT_PUBLIC_KEY or JWKS_URL)',
      });
    else if (env.JWT_SECRET === DEV_JWT_SECRET)
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'the published development secret is refused in production' });
  });

export type Env = z.infer<typeof envSchema>;

/** Where Redis is: one server, or the seed nodes of a Redis Cluster. */
export type RedisServers = { url: string; clusterNodes?: undefined } | { clusterNodes: string[]; url?: undefined };

export interface AppConfig {
  env: Env['NODE_ENV'];
  port: number;
  database: { mode: 'external'; url: string } | { mode: 'embedded'; dataDir: string };
  /**
   * Every Redis name of the deployment (channels, streams, keys) starts with `prefix`.
   * `barePatterns`: also serve the contract's `chat.*` command channels (COMMANDS_BARE_PATTERNS).
   * One server (`url`, REDIS_URL) or a cluster (`clusterNodes`, REDIS_CLUSTER_NODES' seed URLs).
   */
  redis: (RedisServers & { prefix: string; barePatterns: boolean }) | null;
  jwt: {
    key: { kind: 'secret'; secret: string; isDevSecret: boolean } | { kind: 'publicKey'; pem: string } | { kind: 'jwks'; url: string };
    issuer: string | null;
    audience: string | null;
  };
  /** HTTP API keys; a read-only key may only call GET routes. */
  apiKeys: { key: string; readOnly: boolean }[];
  /** GET /docs (Swagger UI) and /docs-json: API_DOCS, by default on except with NODE_ENV=production. */
  apiDocs: boolean;
  /** POST /dev/token: DEV_SIGN_IN=true outside production, with the development secret only (validated above). */
  devSignIn: boolean;
  /** The outbox relay's Redis Stream (when Redis is configured): EVENTS_STREAM, by default `<REDIS_PREFIX>.events`. */
  events: { stream: string; maxLen: number };
  /**
   * Optional webhook deliveries of the same events, signed with HMAC-SHA256. A failed attempt is
   * retried after about retryBaseMs, doubling each time, up to maxAttempts attempts in all.
   */
  webhooks: {
    urls: string[];
    secret: string;
    maxAttempts: number;
    timeoutMs: number;
    retryBaseMs: number;
    /** How the dispatcher shares requests among the URLs (see events/webhook-circuits.ts). */
    circuit: {
      /** Requests in flight at once to one URL. */
      perUrl: number;
      /** Consecutive failed attempts to a URL that open its circuit. */
      failures: number;
      /** How long an open circuit stays open before one probe is let through. */
      cooldownMs: number;
    };
  } | null;
  /**
   * The pre-send hook (PRESEND_HOOK_URL): every message.send and message.edit from a socket is
   * asked there first. `secret` null: requests go unsigned (refused in production, warned at start).
   * `concurrency` requests in flight at once; up to `queue` more wait for a slot, within the same
   * `timeoutMs`.
   */
  presendHook: { url: string; secret: string | null; timeoutMs: number; failOpen: boolean; concurrency: number; queue: number } | null;
  allowedOrigins: string[] | null;
  limits: {
    maxMessageLength: number;
    maxPayloadBytes: number;
    maxBufferedBytes: number;
    maxConnectionsPerUser: number;
    maxRoomsPerConnection: number;
    maxHistoryPage: number;
  };
  rateLimits: {
    /** Token bucket per connection, over every request. */
    perConnection: { perSecond: number; burst: number };
    /** Messages per user per window, shared by all instances through Redis. */
    perUser: { messages: number; windowMs: number };
    /** Consecutive refused requests after which the connection is closed. */
    disconnectAfter: number;
    /** Rooms one user may create implicitly (room.join, message.send) per window, shared by all instances through Redis. */
    roomCreations: { perUser: number; windowMs: number };
  };
  /** Pool size for an external database; every storage call answers within timeoutMs. */
  db: {
    poolSize: number;
    timeoutMs: number;
    /** Longest a send waits for others to share its transaction (group commit), when sends come that close together. */
    appendLingerMs: number;
  };
  heartbeat: { intervalMs: number; timeoutMs: number };
  /** How often the leader removes messages past their room's retentionDays. */
  retention: { intervalMs: number };
  /** Each instance's presence lease in Redis, renewed every leaseMs/3. */
  presence: { leaseMs: number };
  shutdown: { drainMs: number; timeoutMs: number };
  /**
   * Node's HTTP server: a request's headers must arrive within headersTimeoutMs and the whole
   * request (not the answer, so held polls are unaffected) within requestTimeoutMs.
   */
  http: { headersTimeoutMs: number; requestTimeoutMs: number; maxConnections: number };
  /**
   * Before a client is authenticated: its socket.io CONNECT must come within connectTimeoutMs, at
   * most maxUnauthenticated such engine.io sessions per instance, and new sessions and ws upgrades
   * per remote address in a token bucket (perSecond, burst).
   */
  handshakes: { connectTimeoutMs: number; maxUnauthenticated: number; perSecond: number; burst: number };
  /** Load balancers whose X-Forwarded-For names the client, for limits per address. */
  trustedProxies: string[];
  /**
   * OpenTelemetry spans of each message send, exported over OTLP/HTTP (JSON) to `tracesUrl`; null
   * (the default) when no endpoint is set or OTEL_SDK_DISABLED=true: no SDK is started at all.
   */
  tracing: { tracesUrl: string; serviceName: string } | null;
  logLevel: Env['LOG_LEVEL'];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function redisConfig(env: Env): AppConfig['redis'] {
  const names = { prefix: env.REDIS_PREFIX, barePatterns: env.COMMANDS_BARE_PATTERNS };
  if (env.REDIS_URL) return { url: env.REDIS_URL, ...names };
  if (env.REDIS_CLUSTER_NODES) return { clusterNodes: env.REDIS_CLUSTER_NODES, ...names };
  return null;
}

/** Validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv): AppConfig {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = source[key];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0] ?? 'environment')}: ${i.message}`));
  }
  const env = parsed.data;
  return {
    env: env.NODE_ENV,
    port: env.PORT,
    database: env.DATABASE_URL ? { mode: 'external', url: env.DATABASE_URL } : { mode: 'embedded', dataDir: env.DATA_DIR },
    redis: redisConfig(env),
    jwt: {
      key: env.JWT_PUBLIC_KEY
        ? { kind: 'publicKey', pem: env.JWT_PUBLIC_KEY }
        : env.JWKS_URL
          ? { kind: 'jwks', url: env.JWKS_URL }
          : {
              kind: 'secret',
              secret: env.JWT_SECRET ?? DEV_JWT_SECRET,
              isDevSecret: (env.JWT_SECRET ?? DEV_JWT_SECRET) === DEV_JWT_SECRET,
            },
      issuer: env.JWT_ISSUER ?? null,
      audience: env.JWT_AUDIENCE ?? null,
    },
    apiKeys: env.API_KEYS ?? [],
    devSignIn: env.DEV_SIGN_IN,
    apiDocs: env.API_DOCS ?? env.NODE_ENV !== 'production',
    events: { stream: env.EVENTS_STREAM ?? `${env.REDIS_PREFIX}.events`, maxLen: env.EVENTS_STREAM_MAXLEN },
    webhooks: env.WEBHOOK_URLS?.length
      ? {
          urls: env.WEBHOOK_URLS,
          secret: env.WEBHOOK_SECRET!,
          maxAttempts: env.WEBHOOK_MAX_ATTEMPTS,
          timeoutMs: env.WEBHOOK_TIMEOUT_MS,
          retryBaseMs: env.WEBHOOK_RETRY_BASE_MS,
          circuit: {
            perUrl: env.WEBHOOK_CONCURRENCY_PER_URL,
            failures: env.WEBHOOK_CIRCUIT_FAILURES,
            cooldownMs: env.WEBHOOK_CIRCUIT_COOLDOWN_MS,
          },
        }
      : null,
    presendHook: env.PRESEND_HOOK_URL
      ? {
          url: env.PRESEND_HOOK_URL,
          secret: env.WEBHOOK_SECRET ?? null,
          timeoutMs: env.PRESEND_HOOK_TIMEOUT_MS,
          failOpen: env.PRESEND_HOOK_FAIL_OPEN,
          concurrency: env.PRESEND_HOOK_CONCURRENCY,
          queue: env.PRESEND_HOOK_CONCURRENCY * PRESEND_QUEUE_PER_SLOT,
        }
      : null,
    allowedOrigins: env.ALLOWED_ORIGINS ?? null,
    limits: {
      maxMessageLength: env.MAX_MESSAGE_LENGTH,
      maxPayloadBytes: env.MAX_PAYLOAD_BYTES,
      maxBufferedBytes: env.MAX_BUFFERED_BYTES,
      maxConnectionsPerUser: env.MAX_CONNECTIONS_PER_USER,
      maxRoomsPerConnection: env.MAX_ROOMS_PER_CONNECTION,
      maxHistoryPage: env.MAX_HISTORY_PAGE,
    },
    rateLimits: {
      perConnection: { perSecond: env.RATE_LIMIT_PER_SECOND, burst: env.RATE_LIMIT_BURST },
      perUser: { messages: env.RATE_LIMIT_USER_MESSAGES, windowMs: env.RATE_LIMIT_USER_WINDOW_MS },
      disconnectAfter: env.RATE_LIMIT_DISCONNECT_AFTER,
      roomCreations: { perUser: env.ROOM_CREATE_LIMIT, windowMs: env.ROOM_CREATE_WINDOW_MS },
    },
    db: { poolSize: env.DB_POOL_SIZE, timeoutMs: env.DB_TIMEOUT_MS, appendLingerMs: env.DB_APPEND_LINGER_MS },
    heartbeat: { intervalMs: env.HEARTBEAT_INTERVAL_MS, timeoutMs: env.HEARTBEAT_TIMEOUT_MS },
    retention: { intervalMs: env.RETENTION_INTERVAL_MS },
    presence: { leaseMs: env.PRESENCE_LEASE_MS },
    shutdown: { drainMs: env.SHUTDOWN_DRAIN_MS, timeoutMs: env.SHUTDOWN_TIMEOUT_MS },
    http: {
      headersTimeoutMs: env.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: env.HTTP_REQUEST_TIMEOUT_MS,
      maxConnections: env.HTTP_MAX_CONNECTIONS,
    },
    handshakes: {
      connectTimeoutMs: env.HANDSHAKE_CONNECT_TIMEOUT_MS,
      maxUnauthenticated: env.MAX_UNAUTHENTICATED_SESSIONS,
      perSecond: env.HANDSHAKE_RATE_PER_SECOND,
      burst: env.HANDSHAKE_BURST,
    },
    trustedProxies: env.TRUSTED_PROXIES ?? [],
    tracing: tracingConfig(env),
    logLevel: env.LOG_LEVEL,
  };
}

/**
 * As the OTLP exporter specification has it: the traces endpoint is used as given, the general one
 * gets the signal's path `v1/traces` appended (after its own path, if any).
 */
function tracingConfig(env: Env): AppConfig['tracing'] {
  if (env.OTEL_SDK_DISABLED) return null;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base && `${base.replace(/\/+$/, '')}/v1/traces`);
  return tracesUrl ? { tracesUrl, serviceName: env.OTEL_SERVICE_NAME } : null;
}

/** The one signature algorithm accepted for a public key: RS256 for RSA, ES256 for P-256; null for anything else. */
export function publicKeyAlgorithm(pem: string): 'RS256' | 'ES256' | null {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType === 'rsa') return 'RS256';
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
    return null;
  } catch {
    return null;
  }
}
