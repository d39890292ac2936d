import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { RedisServers } from '../config/config.schema.js';
import { openRedis, type ConnectionOptions, type RedisConnection } from './redis-connection.js';
import { RedisNames } from './redis-names.js';

/**
 * Which events of the subscriber connection open and close a gap in its deliveries. One
 * server's client closes and, once reconnected, is ready again. A cluster client stays up while
 * one shard fails over: the subscriber of that shard ends ('-node'), and the client announces
 * 'subscribersReady' once every shard's subscriptions are back.
 */
export interface SubscriberGaps {
  lost: string;
  back: string;
  /**
   * When `back` has not come this long after `lost`, the gap counts as over. A cluster client
   * also emits '-node' for nodes none of its subscriptions used (a replica that died), and no
   * resubscription follows those; without this bound relayed pushes would be held for good.
   */
  overAfterMs?: number;
}

/** Longer than a failover takes here (cluster-node-timeout plus an election), so it rarely cuts one short. */
const CLUSTER_GAP_OVER_AFTER_MS = 5000;
const READY_POLL_MS = 50;

/**
 * The service's Redis connections: a publisher and a subscriber (a subscribed connection cannot
 * publish), on one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). ioredis
 * reconnects by itself with backoff and re-subscribes, so cross-instance delivery resumes when
 * Redis (or a shard's new master) returns.
 */
export class RedisClients implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  readonly pub: RedisConnection;
  readonly sub: RedisConnection;
  readonly names: RedisNames;
  readonly subscriberGaps: SubscriberGaps;
  readonly isCluster: boolean;

  constructor(
    private readonly servers: RedisServers,
    readonly prefix: string,
  ) {
    this.isCluster = servers.clusterNodes !== undefined;
    this.names = new RedisNames(prefix, this.isCluster);
    this.subscriberGaps = this.isCluster
      ? { lost: '-node', back: 'subscribersReady', overAfterMs: CLUSTER_GAP_OVER_AFTER_MS }
      : { lost: 'close', back: 'ready' };
    // Auto-pipelining writes every command of one event-loop tick in one socket write: under load,
    // the relays and rate counts of many sends share a write instead of a syscall each.
    this.pub = this.open({ connectionName: `${prefix}-pub`, enableAutoPipelining: true });
    // On a cluster the socket.io adapter subscribes with SSUBSCRIBE (sharded pub/sub).
    this.sub = this.open({ connectionName: `${prefix}-sub`, enableAutoPipelining: false, shardedSubscriber: this.isCluster });
    // The socket.io Redis adapter publishes without awaiting; while Redis is down each of those
    // promises would reject unhandled and end the process. A failed publish only loses live
    // delivery to other instances, which clients recover from the stored history.
    const method = this.isCluster ? 'spublish' : 'publish';
    const publish = this.pub[method].bind(this.pub) as (channel: string, message: string | Buffer) => Promise<number>;
    this.pub[method] = ((channel: string, message: string | Buffer) =>
      publish(channel, message).catch((err: Error) => {
        this.logger.warn(`publish to ${channel} failed: ${err.message}`);
        return 0;
      })) as RedisConnection['publish'];
  }

  /**
   * Another connection to the same Redis, the equivalent of ioredis's duplicate() for one server
   * and for a cluster alike. Its connection errors go to `onError`, by default a warning each:
   * without a listener, ioredis re-emits them as uncaught 'error' events.
   */
  open(
    options: ConnectionOptions,
    onError = (err: Error) => this.logger.warn(`${options.connectionName}: ${err.message}`),
  ): RedisConnection {
    const client = openRedis(this.servers, options);
    client.on('error', onError);
    return client;
  }

  get ready(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  /**
   * Resolves once both connections are ready (a cluster client only after loading the slot map),
   * or after `timeoutMs`: with Redis unreachable the service still starts, degraded.
   */
  async whenReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ready && Date.now() < deadline) await sleep(READY_POLL_MS);
  }

  /**
   * The socket.io adapter that carries emits between instances, under this deployment's prefix.
   * On a cluster, the sharded adapter (SPUBLISH/SSUBSCRIBE on `<prefix>#/#`): classic PUBLISH
   * would be copied to every node of the cluster. `static`: the service never broadcasts to a
   * socket.io room across instances (each instance delivers to its own members, RoomFanout), so
   * the per-room channels of the default `dynamic` mode would only cost subscriptions.
   */
  socketIoAdapter() {
    if (this.isCluster) return createShardedAdapter(this.pub, this.sub, { channelPrefix: this.prefix, subscriptionMode: 'static' });
    return createAdapter(this.pub, this.sub, { key: this.prefix });
  }

  onApplicationShutdown(): void {
    // disconnect, not quit: QUIT would wait in the offline queue while Redis is unreachable.
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
