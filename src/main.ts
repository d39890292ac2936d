import 'reflect-metadata';
import type { Server } from 'node:http';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { CustomStrategy } from '@nestjs/microservices';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Logger as Pino } from 'pino';
import { AppModule } from './app.module.js';
import { ConfigError, loadConfig, type AppConfig } from './config/config.schema.js';
import { ShutdownGate } from './lifecycle/shutdown-gate.js';
import { httpLogger } from './logging/http-logger.js';
import { TrustedProxies } from './common/trusted-proxies.js';
import { createLogger, PinoNestLogger } from './logging/pino-logger.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './persistence/embedded-postgres.js';
import { applyMigrations, MigrationState } from './persistence/migration-runner.js';
import { TransportAdapterFactory } from './realtime/transport-adapter.factory.js';
import { serveApiDocs } from './http/api-docs.js';
import { HttpErrorFilter } from './http/http-error.filter.js';
import { ChatMetrics } from './metrics/chat-metrics.js';
import { ClaimingRedisServer } from './commands/claiming-redis.server.js';
import { servePage } from './web/serve-page.js';
import type { TracingSdk } from './tracing/tracing-sdk.js';

function readConfig(): AppConfig {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  // First of all: spans need the global provider (and its context manager) before anything is built.
  // Loaded only when configured, so a service without tracing does not even load the SDK.
  const tracing: TracingSdk | null = config.tracing ? (await import('./tracing/tracing-sdk.js')).startTracing(config.tracing) : null;
  const log = createLogger(config.logLevel, config.env);
  const nestLogger = new PinoNestLogger(log);
  // Before Nest starts too (embedded database, migrations): one JSON log from the first line.
  Logger.overrideLogger(nestLogger);
  if (config.jwt.key.kind === 'secret' && config.jwt.key.isDevSecret)
    log.warn('JWT_SECRET is not set: using the insecure development secret (never do this in production)');
  if (config.devSignIn)
    log.warn('DEV_SIGN_IN=true: POST /dev/token gives anyone a token for any name, signed with the published development secret');

  // The host only: a URL may carry credentials.
  if (config.tracing)
    log.info(
      { collector: new URL(config.tracing.tracesUrl).host, serviceName: config.tracing.serviceName },
      'tracing: exporting spans over OTLP/HTTP',
    );

  let embedded: EmbeddedPostgres | null = null;
  if (config.database.mode === 'embedded') {
    embedded = await startEmbeddedPostgres(config.database.dataDir);
    // In production only with EMBEDDED_DATABASE=true (config.schema.ts); worth a warning there.
    log[config.env === 'production' ? 'warn' : 'info'](
      { dataDir: embedded.dataDir },
      'DATABASE_URL is not set: using the embedded Postgres (single instance, development only)',
    );
  }
  const databaseUrl = embedded?.url ?? (config.database as { url: string }).url;
  await applyMigrations(databaseUrl);

  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, databaseUrl), {
    logger: nestLogger,
    // Registered below with the payload limit, so an oversized body is a 413 like an oversized frame.
    bodyParser: false,
  });
  const gate = app.get(ShutdownGate);
  app.useWebSocketAdapter(app.get(TransportAdapterFactory).create(app));
  app.use(httpLogger(log, new TrustedProxies(config.trustedProxies)));
  app.useGlobalFilters(new HttpErrorFilter(app.get(ChatMetrics)));
  app.useBodyParser('json', { limit: config.limits.maxPayloadBytes });
  if (config.apiDocs) serveApiDocs(app, config);
  servePage(app);

  if (config.redis) {
    // Commands from other Nest services over Redis (src/commands); app.close() closes it after the drain.
    const strategy = new ClaimingRedisServer({
      ...config.redis,
      gate,
      maxPayloadBytes: config.limits.maxPayloadBytes,
      metrics: app.get(ChatMetrics),
    });
    app.connectMicroservice<CustomStrategy>({ strategy }, { inheritAppConfig: true });
    await app.startAllMicroservices();
  }

  app.get(MigrationState).markApplied();
  limitHttpServer(app.getHttpServer() as Server, config.http);
  await app.listen(config.port);
  log.info(
    {
      port: config.port,
      database: config.database.mode,
      fanout: config.redis ? (config.redis.clusterNodes ? 'redis-cluster' : 'redis') : 'in-process',
    },
    config.redis
      ? 'chat service listening; fan-out through Redis'
      : 'chat service listening; REDIS_URL is not set: in-process fan-out (single instance)',
  );

  const shutdown = onceOnly(async (signal: string) => {
    const { drainMs, timeoutMs } = config.shutdown;
    const started = Date.now();
    forceExitAfter(timeoutMs, log);
    log.info({ signal, drainMs, timeoutMs }, 'draining: readiness fails and new connections are refused');
    gate.beginDraining();
    await sleep(drainMs);
    gate.beginClosing();
    // Leave a share of the bound for closing connections, the database pool and Redis.
    const idle = await gate.whenIdle(Math.max(timeoutMs - drainMs - 2000, 500));
    if (!idle) log.warn('requests still in flight at the drain deadline; closing anyway');
    await app.close();
    // After the close, so the spans of the requests drained above are exported too.
    await tracing?.shutdown().catch((err: unknown) => log.warn(`tracing: the last spans could not be exported: ${String(err)}`));
    await embedded?.stop();
    log.info({ ms: Date.now() - started }, 'stopped');
    process.exit(0);
  });
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * Slow or idle clients must not hold sockets: headers within headersTimeoutMs (408, then closed),
 * checked every second instead of Node's 30 s so the bound holds; a cap on open sockets (Node
 * drops the ones above it). Held polls and ws upgrades are answers, not requests, so they are not cut.
 */
function limitHttpServer(server: Server, limits: AppConfig['http']): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  // A public property of Node's http.Server (read when it starts listening) that @types/node lacks.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = 1000;
  server.maxConnections = limits.maxConnections;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function onceOnly<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  let running: Promise<void> | null = null;
  return (...args) => (running ??= fn(...args));
}

/** The bound promised to orchestrators: whatever hangs, the process is gone by then. */
function forceExitAfter(ms: number, log: Pino): void {
  setTimeout(() => {
    log.error({ ms }, 'shutdown did not finish in time; exiting');
    process.exit(0);
  }, ms).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
