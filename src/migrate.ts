import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { ConfigError, loadConfig } from './config/config.schema.js';
import { createLogger, PinoNestLogger } from './logging/pino-logger.js';
import { applyMigrations } from './persistence/migration-runner.js';

/**
 * `node dist/migrate.js`: applies pending migrations to DATABASE_URL and exits 0, for a one-shot
 * job before replicas start (docker compose `migrate`, a Kubernetes Job). Replicas apply them
 * too at start, under the same advisory lock, so running both is safe.
 */
async function migrate(): Promise<void> {
  const config = loadConfig(process.env);
  Logger.overrideLogger(new PinoNestLogger(createLogger(config.logLevel, config.env)));
  if (config.database.mode !== 'external') throw new ConfigError(['DATABASE_URL: required to run migrations']);
  await applyMigrations(config.database.url);
}

migrate().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
