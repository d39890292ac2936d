import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';
import { TokenVerifier } from './auth/token-verifier.js';
import { ConfigError, loadConfig, type AppConfig } from './config/config.schema.js';
import { createLogger, PinoNestLogger } from './logging/pino-logger.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './persistence/embedded-postgres.js';
import { MigrationRunner } from './persistence/migration-runner.js';
import { DualTransportAdapter } from './realtime/dual-transport.adapter.js';
import { LocalConnections } from './realtime/local-connections.js';
import { createRedisAdapter, type RedisAdapterHandle } from './realtime/redis-adapter.js';
import { RoomFanout } from './realtime/room-fanout.js';

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
  const log = createLogger(config.logLevel);
  if (config.jwt.isDevSecret) log.warn('JWT_SECRET is not set: using the insecure development secret (never do this in production)');

  let embedded: EmbeddedPostgres | null = null;
  if (config.database.mode === 'embedded') {
    embedded = await startEmbeddedPostgres(config.database.dataDir);
    log.info({ dataDir: embedded.dataDir }, 'DATABASE_URL is not set: using the embedded Postgres (single instance, development only)');
  }
  const databaseUrl = embedded?.url ?? (config.database as { url: string }).url;
  const redis: RedisAdapterHandle | null = config.redis ? createRedisAdapter(config.redis.url, config.redis.prefix) : null;

  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, databaseUrl), {
    logger: new PinoNestLogger(log),
  });
  const fanout = app.get(RoomFanout);
  const tokens = app.get(TokenVerifier);
  app.useWebSocketAdapter(
    new DualTransportAdapter(app, {
      wsPath: '/ws',
      maxPayloadBytes: config.limits.maxPayloadBytes,
      corsAnyOrigin: config.env !== 'production',
      authenticate: (token) => tokens.verify(token),
      connections: app.get(LocalConnections),
      onServer: (io) => {
        if (!redis) return;
        io.adapter(redis.adapter);
        fanout.relayThrough(io);
      },
    }),
  );

  await app.get(MigrationRunner).run();
  await app.listen(config.port);
  log.info(
    { port: config.port, database: config.database.mode, fanout: redis ? 'redis' : 'in-process' },
    redis ? 'chat service listening; fan-out through Redis' : 'chat service listening; REDIS_URL is not set: in-process fan-out (single instance)',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    await app.close();
    await redis?.close();
    await embedded?.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
