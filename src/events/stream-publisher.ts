import { Logger } from '@nestjs/common';
import type { RedisClients } from '../redis/redis-clients.js';
import type { RedisConnection } from '../redis/redis-connection.js';
import { streamFields, type ChatEventOut } from './chat-events-out.js';

/** Bound on each XADD: a frozen Redis turns into a failed batch, retried later, never a hung relay. */
const COMMAND_TIMEOUT_MS = 5000;

/**
 * Appends events to the Redis Stream, trimmed approximately to `maxLen` entries. A connection of
 * its own without an offline queue: while Redis is unreachable a publish fails at once (the relay
 * backs off and retries the same batch) instead of waiting in a queue.
 */
export class StreamPublisher {
  private readonly logger = new Logger('Events');
  private readonly client: RedisConnection;

  constructor(
    redis: RedisClients,
    readonly stream: string,
    private readonly maxLen: number,
  ) {
    this.client = redis.open(
      {
        connectionName: `${redis.prefix}-events`,
        enableAutoPipelining: false,
        enableOfflineQueue: false,
        commandTimeout: COMMAND_TIMEOUT_MS,
      },
      // The relay warns about failed publishes; each reconnection attempt is only worth a debug line.
      (err: Error) => this.logger.debug(`stream connection: ${err.message}`),
    );
  }

  /**
   * One pipeline, in order (one key, so on a cluster the whole pipeline goes to that key's shard).
   * Resolves only when every entry was added; on any failure some entries may have been added
   * anyway, and the caller publishes the whole batch again (same event ids).
   */
  async publish(events: ChatEventOut[]): Promise<void> {
    const pipeline = this.client.pipeline();
    for (const event of events) pipeline.xadd(this.stream, 'MAXLEN', '~', this.maxLen, '*', ...streamFields(event));
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('the Redis pipeline was discarded');
  }

  close(): void {
    this.client.disconnect();
  }
}
