import { Injectable, Logger } from '@nestjs/common';
import { DataSource, MigrationExecutor, type QueryRunner } from 'typeorm';
import { dataSourceOptions } from './data-source-options.js';

/** Any fixed 64-bit key; every replica of this service takes the same one. */
const MIGRATION_LOCK_KEY = 7_418_236_001;
/** Migrations may build indexes on large tables and wait for another replica's lock: no request-sized timeouts. */
const MIGRATION_TIMEOUT_MS = 10 * 60_000;
/**
 * Connecting, too: a replica exits when this connection fails, and the requests' 1 s bound failed
 * replicas that started together on a busy host (docker compose, 5 replicas on 2 cores).
 */
const MIGRATION_CONNECT_TIMEOUT_MS = 15_000;

/**
 * Applies pending migrations on a connection of its own, before the service opens its pool.
 * Replicas that start together queue on a session-level advisory lock (takeLock); the first applies the
 * pending migrations, the others then find none. Returns the names applied.
 */
export async function applyMigrations(url: string): Promise<string[]> {
  const logger = new Logger('Migrations');
  const db = new DataSource(
    dataSourceOptions({ url, poolSize: 1, timeoutMs: MIGRATION_TIMEOUT_MS, connectTimeoutMs: MIGRATION_CONNECT_TIMEOUT_MS }),
  );
  await db.initialize();
  const qr = db.createQueryRunner();
  try {
    await qr.connect();
    await takeLock(qr);
    try {
      const executor = new MigrationExecutor(db, qr);
      executor.transaction = 'each';
      const ran = (await executor.executePendingMigrations()).map((m) => m.name);
      logger.log(ran.length ? `applied ${ran.join(', ')}` : 'schema up to date');
      return ran;
    } finally {
      await qr.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await qr.release();
    await db.destroy();
  }
}

/** How often a replica waiting for another's migrations asks for the lock again. */
const LOCK_POLL_MS = 200;

/**
 * Polls pg_try_advisory_lock instead of waiting in pg_advisory_lock: a session blocked in that
 * statement holds a snapshot, and CREATE INDEX CONCURRENTLY in the lock holder's migration waits
 * for every older snapshot to end, a deadlock Postgres breaks by failing one of them. Between
 * polls the waiting replica holds no snapshot.
 */
async function takeLock(qr: QueryRunner): Promise<void> {
  for (;;) {
    const [row] = (await qr.query('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY])) as { locked: boolean }[];
    if (row?.locked) return;
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}

/** Whether this process applied (or found applied) every migration; readiness reports it. */
@Injectable()
export class MigrationState {
  private applied = false;

  get done(): boolean {
    return this.applied;
  }

  markApplied(): void {
    this.applied = true;
  }
}
