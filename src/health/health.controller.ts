import { Controller, Get, HttpException, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
  type HealthIndicatorFunction,
} from '@nestjs/terminus';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { MigrationState } from '../persistence/migration-runner.js';
import { RedisClients } from '../redis/redis-clients.js';
import { LivenessModel } from './health.models.js';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly migrations: MigrationState,
    private readonly gate: ShutdownGate,
    @Inject(RedisClients) private readonly redis: RedisClients | null,
  ) {}

  /** The process serves HTTP; says nothing about its dependencies. */
  @Get('live')
  @ApiOperation({ summary: 'Liveness: 200 while the process serves (no key)' })
  @ApiOkResponse({ type: LivenessModel })
  healthLive() {
    return { status: 'ok' };
  }

  /** Ready for traffic: not draining, Postgres answers, the schema is migrated, Redis (when configured) is connected. */
  @Get('ready')
  // @HealthCheck() documents the 200 and 503 answers (terminus's report) in the OpenAPI document.
  @HealthCheck()
  @ApiOperation({ summary: 'Readiness: 200 when Postgres and (when configured) Redis answer and the instance is not draining (no key)' })
  async healthReady(@Res({ passthrough: true }) res: Response) {
    const checks: HealthIndicatorFunction[] = [
      () => this.flag('shutdown', !this.gate.draining, 'draining'),
      this.db.pingCheck('postgres').withTimeout(1500),
      () => this.flag('migrations', this.migrations.done, 'pending'),
    ];
    if (this.redis) checks.push(() => this.flag('redis', this.redis?.ready === true, 'disconnected'));
    // A failed check is a 503 with terminus's report, not an error of the API's kind.
    return this.health.check(checks).catch((err: unknown) => {
      if (!(err instanceof HttpException)) throw err;
      res.status(err.getStatus());
      return err.getResponse();
    });
  }

  private flag(key: string, up: boolean, downReason: string) {
    const check = this.indicators.check(key);
    return up ? check.up() : check.down(downReason);
  }
}
