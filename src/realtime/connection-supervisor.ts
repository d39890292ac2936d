import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { LocalConnections } from './local-connections.js';
import { WsConnection } from './ws-connection.js';

/**
 * How often outgoing buffers and token expiries are checked: bounds how far past the limit a
 * flood can push a buffer, and keeps disconnection within 1 s of a token's `exp`.
 */
const CHECK_MS = 250;

/**
 * Keeps this instance's connections healthy: drops slow consumers whose outgoing buffer passed
 * MAX_BUFFERED_BYTES (on both transports), disconnects connections whose token expired, and pings
 * raw ws peers to find dead ones. socket.io runs its own heartbeat with the same interval.
 */
@Injectable()
export class ConnectionSupervisor implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Connections');
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly local: LocalConnections,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timers = [
      setInterval(() => {
        this.dropSlowConsumers();
        this.expireTokens();
      }, CHECK_MS),
      setInterval(() => this.heartbeat(), this.config.heartbeat.intervalMs),
    ];
    for (const t of this.timers) t.unref();
  }

  onApplicationShutdown(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  dropSlowConsumers(): void {
    const limit = this.config.limits.maxBufferedBytes;
    for (const conn of this.local.all()) {
      const buffered = conn.bufferedBytes();
      if (buffered <= limit) continue;
      this.logger.warn(`dropping slow consumer ${conn.id} (user ${conn.user.userId}, ${conn.transport}): ${buffered} bytes buffered`);
      conn.terminate();
    }
  }

  /** Connections whose token expired without an `auth.refresh` are told so and disconnected. */
  expireTokens(now = Date.now()): void {
    for (const conn of this.local.all()) {
      if (conn.user.expiresAt > now) continue;
      this.logger.log(`token of user ${conn.user.userId} expired; disconnecting ${conn.id} (${conn.transport})`);
      conn.expire();
    }
  }

  heartbeat(): void {
    for (const conn of this.local.all()) {
      if (conn instanceof WsConnection && !conn.heartbeat())
        this.logger.log(`terminated unresponsive ws peer ${conn.id} (user ${conn.user.userId})`);
    }
  }
}
