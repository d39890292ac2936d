import { Logger } from '@nestjs/common';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';

export interface RedisAdapterHandle {
  adapter: ReturnType<typeof createAdapter>;
  close(): Promise<void>;
}

/** The socket.io Redis adapter over two ioredis connections (a subscriber cannot publish). */
export function createRedisAdapter(url: string, prefix: string): RedisAdapterHandle {
  const logger = new Logger('Redis');
  const pub = new Redis(url, { connectionName: `${prefix}-pub` });
  const sub = pub.duplicate({ connectionName: `${prefix}-sub` });
  // Without listeners, ioredis re-emits connection errors as uncaught 'error' events.
  for (const client of [pub, sub]) client.on('error', (err: Error) => logger.warn(`connection error: ${err.message}`));
  return {
    adapter: createAdapter(pub, sub, { key: prefix }),
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}
