import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, MigrationExecutor } from 'typeorm';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';

/** Any fixed 64-bit key; every replica of this service takes the same one. */
const MIGRATION_LOCK_KEY = 7_418_236_001;

@Injectable()
export class MigrationRunner {
  private readonly logger = new Logger('Migrations');
  private applied = false;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  get done(): boolean {
    return this.applied;
  }

  /**
   * Replicas that start together queue on a session-level advisory lock; the first applies the
   * pending migrations, the others then find none. Lock and migrations share one connection,
   * which also suits the embedded database's single-connection pool.
   */
  async run(): Promise<void> {
    const qr = this.db.createQueryRunner();
    await qr.connect();
    try {
      await qr.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      try {
        const executor = new MigrationExecutor(this.db, qr);
        executor.transaction = 'each';
        const ran = await executor.executePendingMigrations();
        this.logger.log(
          ran.length ? `applied ${ran.map((m) => m.name).join(', ')}` : `schema up to date (${this.config.database.mode} database)`,
        );
      } finally {
        await qr.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      }
      this.applied = true;
    } finally {
      await qr.release();
    }
  }
}
