import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { MigrationRunner } from '../persistence/migration-runner.js';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly migrations: MigrationRunner,
  ) {}

  /** The process serves HTTP; says nothing about its dependencies. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  /** Ready for traffic: Postgres answers and the schema is migrated. */
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      this.db.pingCheck('postgres').withTimeout(1500),
      () => {
        const check = this.indicators.check('migrations');
        return this.migrations.done ? check.up() : check.down('pending');
      },
    ]);
  }
}
