import { Cluster, Redis } from 'ioredis';
import type { RedisServers } from '../config/config.schema.js';

/** A connection to the deployment's Redis: one server's client, or a Redis Cluster's. */
export type RedisConnection = Redis | Cluster;

/** How one connection behaves, whichever kind of Redis it talks to. */
export interface ConnectionOptions {
  connectionName: string;
  enableAutoPipelining?: boolean;
  /** false: commands fail at once while disconnected instead of waiting in a queue. */
  enableOfflineQueue?: boolean;
  commandTimeout?: number;
  lazyConnect?: boolean;
  /** null: a command waits for Redis however many reconnects that takes (ioredis's default is 20). */
  maxRetriesPerRequest?: number | null;
  /** Takes sharded subscriptions (SSUBSCRIBE); on a cluster that opens one subscriber connection per master. */
  shardedSubscriber?: boolean;
}

/** Reconnects every 100 ms more, at most every 2 s, for as long as Redis is away. */
const reconnectDelay = (attempt: number) => Math.min(100 * attempt, 2000);

/**
 * Opens one connection: `new Redis(url)` for one server (as the service always did), a
 * `Cluster` on the seed nodes for REDIS_CLUSTER_NODES. Everything else in the service takes a
 * RedisConnection from here, so the two differ in this file and in the key and channel names
 * (RedisNames), nowhere else.
 */
export function openRedis(servers: RedisServers, options: ConnectionOptions): RedisConnection {
  const { shardedSubscriber, ...given } = options;
  // Only what was given: an explicit undefined would hide ioredis's defaults.
  const common = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as typeof given;
  if (servers.url !== undefined) return new Redis(servers.url, { ...common, retryStrategy: reconnectDelay });
  const seeds = servers.clusterNodes.map((u) => new URL(u));
  // The configuration checked that every seed uses the same scheme and credentials.
  const { protocol, username, password } = seeds[0];
  return new Cluster(
    seeds.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    {
      enableAutoPipelining: common.enableAutoPipelining,
      enableOfflineQueue: common.enableOfflineQueue,
      lazyConnect: common.lazyConnect,
      shardedSubscribers: shardedSubscriber === true,
      clusterRetryStrategy: reconnectDelay,
      // A failover takes about cluster-node-timeout plus an election; commands sent to the dead
      // master meanwhile are retried for up to 32 × 250 ms = 8 s before they fail.
      retryDelayOnFailover: 250,
      maxRedirections: 32,
      redisOptions: {
        connectionName: common.connectionName,
        commandTimeout: common.commandTimeout,
        maxRetriesPerRequest: common.maxRetriesPerRequest,
        username: decodeURIComponent(username) || undefined,
        password: decodeURIComponent(password) || undefined,
        tls: protocol === 'rediss:' ? {} : undefined,
      },
    },
  );
}
