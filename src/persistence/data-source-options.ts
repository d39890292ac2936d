import type { DataSourceOptions } from 'typeorm';
import { entities } from './entities/index.js';
import { migrations } from './migrations/index.js';

export interface DatabaseOptions {
  url: string;
  /** The embedded database serves one connection at a time; a larger pool breaks its connections. */
  poolSize: number;
  /** Bound on every storage call; the connection and statement timeouts sit below it. */
  timeoutMs: number;
  /** Bound on opening a connection; by default 1 s (at most timeoutMs). */
  connectTimeoutMs?: number;
}

/** The one description of the database connection, for the service and the `migrate` command alike. */
export function dataSourceOptions({ url, poolSize, timeoutMs, connectTimeoutMs }: DatabaseOptions): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities,
    migrations,
    synchronize: false,
    migrationsRun: false,
    poolSize,
    // A down or frozen database must turn into a quick UNAVAILABLE, never a hung request:
    // connecting (including waiting for a pooled connection) and each statement are bounded.
    connectTimeoutMS: connectTimeoutMs ?? Math.min(1000, timeoutMs),
    extra: {
      // Callers are answered at timeoutMs (the store's guard); the client-side bound is longer so
      // the reply of a batch that commits late still arrives and its messages are delivered.
      query_timeout: 2 * timeoutMs,
      statement_timeout: timeoutMs,
      idle_in_transaction_session_timeout: 10 * timeoutMs,
      keepAlive: true,
    },
  };
}
