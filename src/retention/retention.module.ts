import { Module } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { ELECTIONS, leadershipFor } from '../events/leadership.js';
import { RetentionJob } from './retention-job.js';

/** Retention (rooms' retentionDays), run by one leader among the replicas. */
@Module({
  providers: [
    {
      provide: RetentionJob,
      inject: [APP_CONFIG, getDataSourceToken()],
      useFactory: (config: AppConfig, db: DataSource) =>
        new RetentionJob(leadershipFor(config, db, ELECTIONS.retention), config.retention.intervalMs),
    },
  ],
})
export class RetentionModule {}
