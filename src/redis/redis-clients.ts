import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';

/**
 * The service's Redis connections: a publisher and a subscriber (a subscribed connection cannot
 * publish). ioredis reconnects by itself with backoff and re-subscribes, so cross-instance
 * delivery resumes when Redis returns.
 */
export class RedisClients implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  readonly pub: Redis;
  readonly sub: Redis;

  constructor(
    url: string,
    readonly prefix: string,
  ) {
    // Auto-pipelining writes every command of one event-loop tick in one socket write: under load,
    // the relays and rate counts of many sends share a write instead of a syscall each.
    this.pub = new Redis(url, {
      connectionName: `${prefix}-pub`,
      enableAutoPipelining: true,
      retryStrategy: (n) => Math.min(100 * n, 2000),
    });
    this.sub = this.pub.duplicate({ connectionName: `${prefix}-sub`, enableAutoPipelining: false });
    for (const client of [this.pub, this.sub]) {
      // Without a listener, ioredis re-emits connection errors as uncaught 'error' events.
      client.on('error', (err: Error) => this.logger.warn(`${client.options.connectionName}: ${err.message}`));
    }
    // The socket.io Redis adapter publishes without awaiting; while Redis is down each of those
    // promises would reject unhandled and end the process. A failed publish only loses live
    // delivery to other instances, which clients recover from the stored history.
    const publish = this.pub.publish.bind(this.pub);
    this.pub.publish = ((channel: string, message: string | Buffer) =>
      publish(channel, message).catch((err: Error) => {
        this.logger.warn(`publish to ${channel} failed: ${err.message}`);
        return 0;
      })) as Redis['publish'];
  }

  get ready(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  /** The socket.io adapter that carries emits between instances, under this deployment's prefix. */
  socketIoAdapter() {
    return createAdapter(this.pub, this.sub, { key: this.prefix });
  }

  onApplicationShutdown(): void {
    // disconnect, not quit: QUIT would wait in the offline queue while Redis is unreachable.
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
