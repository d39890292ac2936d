import { Controller, Get, Inject } from '@nestjs/common';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
  type HealthIndicatorFunction,
} from '@nestjs/terminus';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { MigrationRunner } from '../persistence/migration-runner.js';
import { RedisClients } from '../redis/redis-clients.js';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly migrations: MigrationRunner,
    private readonly gate: ShutdownGate,
    @Inject(RedisClients) private readonly redis: RedisClients | null,
  ) {}

  /** The process serves HTTP; says nothing about its dependencies. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  /** Ready for traffic: not draining, Postgres answers, the schema is migrated, Redis (when configured) is connected. */
  @Get('ready')
  @HealthCheck()
  ready() {
    const checks: HealthIndicatorFunction[] = [
      () => this.flag('shutdown', !this.gate.draining, 'draining'),
      this.db.pingCheck('postgres').withTimeout(1500),
      () => this.flag('migrations', this.migrations.done, 'pending'),
    ];
    if (this.redis) checks.push(() => this.flag('redis', this.redis?.ready === true, 'disconnected'));
    return this.health.check(checks);
  }

  private flag(key: string, up: boolean, downReason: string) {
    const check = this.indicators.check(key);
    return up ? check.up() : check.down(downReason);
  }
}
