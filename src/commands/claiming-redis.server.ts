import { hostname } from 'node:os';
import { Logger } from '@nestjs/common';
import { RedisContext, ServerRedis, type WritePacket } from '@nestjs/microservices';
import type { Redis } from 'ioredis';
import type { RedisServers } from '../config/config.schema.js';
import type { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import type { ChatMetrics } from '../metrics/chat-metrics.js';
import { CommandClaims, withTimeout } from './command-claims.js';
import { parseCommandPacket } from './command-packet.js';
import { CommandChannels, CONTRACT_PREFIX } from './command-patterns.js';
import { openRedis } from '../redis/redis-connection.js';

/** A reply Redis does not take in this time is given up (the caller's own timeout answers it). */
const REPLY_TIMEOUT_MS = 2000;

/**
 * How long a replica that is shutting down leaves a new request to the live ones before it claims
 * it itself to answer UNAVAILABLE. Live replicas claim within milliseconds.
 */
export const REFUSAL_DELAY_MS = 250;

export type ClaimingRedisServerOptions = RedisServers & {
  /** REDIS_PREFIX: the command channels are `<prefix>.<command>`, the claim keys `<prefix>:cmd:…`. */
  prefix: string;
  /** COMMANDS_BARE_PATTERNS: also serve the contract's `chat.<command>` channels under another prefix. */
  barePatterns: boolean;
  gate: ShutdownGate;
  /** MAX_PAYLOAD_BYTES: larger channel messages are ignored unread. */
  maxPayloadBytes: number;
  metrics?: ChatMetrics;
};

/** What became of one channel message on this instance (the `outcome` label of chat_commands_total). */
type Outcome = 'handled' | 'claimed_elsewhere' | 'refused' | 'ignored' | 'claim_failed';

/**
 * Nest's Redis transport server, made to run each request on exactly one replica. Nest's stock
 * ServerRedis subscribes on every replica and every one of them runs and answers every request;
 * here each replica first claims the request id in Redis (CommandClaims) and only the winner runs
 * it. Requests without an id (`client.emit()`) are ignored: nothing could make them run once.
 * It listens only on its own deployment's channels, `<REDIS_PREFIX>.<command>` (CommandChannels),
 * where the stock server would take every handler's pattern as a channel shared by all deployments.
 *
 * Also unlike the stock server, it connects with REDIS_URL or to the Redis Cluster of
 * REDIS_CLUSTER_NODES (where the command channels stay classic pub/sub: callers PUBLISH with
 * Nest's stock client, and the cluster copies those messages to every node), keeps reconnecting (and
 * re-subscribing) for as long as Redis is away instead of giving up, does not hold up the start
 * while Redis is down, and takes part in graceful shutdown through the ShutdownGate: requests in
 * flight are answered before app.close(), and new ones are left to live replicas or answered
 * UNAVAILABLE.
 */
export class ClaimingRedisServer extends ServerRedis {
  protected override readonly logger = new Logger('Commands');
  private readonly claims: CommandClaims;
  private readonly channels: CommandChannels;

  constructor(private readonly config: ClaimingRedisServerOptions) {
    super({});
    this.claims = new CommandClaims(config.prefix, `${hostname()}:${process.pid}`);
    this.channels = new CommandChannels(config.prefix, config.barePatterns);
    // Every deployment on this Redis that serves the bare channels receives (and may run) each such request.
    if (this.channels.servesBare)
      this.logger.warn(
        `COMMANDS_BARE_PATTERNS=true: also serving the bare ${CONTRACT_PREFIX}.* command channels besides ${config.prefix}.*; ` +
          'no other deployment on this Redis may serve them',
      );
  }

  /** Called once for the subscriber and once for the publisher (claims and replies). */
  override async createRedisClient(): Promise<Redis> {
    const client = openRedis(this.config, {
      connectionName: `${this.config.prefix}-commands`,
      lazyConnect: true,
      // A SUBSCRIBE sent while Redis is away waits for it instead of failing after 20 retries (and
      // never being sent again); claims and replies have their own time bounds.
      maxRetriesPerRequest: null,
    });
    // Nest's transport is typed for one server's client; a Cluster takes the same SUBSCRIBE,
    // PUBLISH, SET and connection events this server uses.
    return client as Redis;
  }

  /** Ready at once, with Redis or without: ioredis sends the subscriptions whenever it connects. */
  override start(callback?: () => void): void {
    for (const client of [this.subClient, this.pubClient] as Redis[]) {
      // A failed first attempt is already logged by the 'error' listener, and ioredis keeps retrying.
      client.connect().catch(() => undefined);
    }
    this.bindEvents(this.subClient, this.pubClient);
    callback?.();
  }

  /** The stock method leaves SUBSCRIBE's promise unhandled: rejected (at close), it would end the process. */
  override bindEvents(subClient: Redis, pubClient: Redis): void {
    subClient.on('message', this.getMessageHandler(pubClient));
    const channels = this.channels.channels(this.messageHandlers.keys());
    if (channels.length === 0) return;
    subClient
      .subscribe(...channels)
      .catch((err: Error) => this.logger.warn(`could not subscribe to ${channels.join(', ')}: ${err.message}`));
  }

  /** Reconnection attempts every 2 s are worth a warning each, not an error with a stack trace. */
  override registerErrorListener(client: Redis): void {
    client.on('error', (err: Error) => this.logger.warn(`Redis: ${err.message}`));
  }

  override async close(): Promise<void> {
    this.isManuallyClosed = true;
    // disconnect, not quit: QUIT would wait in the offline queue while Redis is unreachable. The
    // replies of requests in flight were confirmed before the ShutdownGate let shutdown go on.
    (this.subClient as Redis | undefined)?.disconnect();
    (this.pubClient as Redis | undefined)?.disconnect();
  }

  /**
   * One message of a command channel: parse it, pass the shutdown gate, claim its id, then run the
   * handler (Nest's guards, pipes and filters) and publish the reply on `<pattern>.reply`.
   * Rejections are logged by the stock message listener; none of them leaves a request in flight.
   */
  override async handleMessage(channel: string, raw: string, pub: Redis, pattern: string): Promise<void> {
    const packet = parseCommandPacket(raw, this.config.maxPayloadBytes);
    const command = this.channels.commandOf(channel);
    const handler = command === null ? null : this.getHandlerByPattern(command);
    if (packet.kind === 'ignored' || !handler) {
      this.logger.warn(`ignored a message on ${channel}: ${packet.kind === 'ignored' ? packet.reason : 'no handler'}`);
      return this.count(channel, 'ignored');
    }
    const { id, data } = packet;
    if (!this.config.gate.enter()) return this.refuseWhileClosing(channel, id, pub, pattern);
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      this.config.gate.leave();
    };
    try {
      if (!(await this.claim(pub, channel, id))) return leave();
      const ctx = new RedisContext([pattern]);
      const publish = this.publisher(pub, pattern, id, ctx);
      await this.handleRequest(
        ctx,
        async () => this.transformToObservable(await handler(data, ctx)),
        (reply) => publish(reply).finally(() => reply.isDisposed && leave()),
      );
    } catch (err) {
      leave();
      throw err;
    }
  }

  /**
   * Nothing new runs on a closing replica: it gives live replicas REFUSAL_DELAY_MS to claim the
   * request and answers UNAVAILABLE only when none did (one instance, or all of them closing).
   */
  private async refuseWhileClosing(channel: string, id: string, pub: Redis, pattern: string): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, REFUSAL_DELAY_MS));
    if (this.isManuallyClosed || !(await this.claim(pub, channel, id, 'refused'))) return;
    await this.publisher(
      pub,
      pattern,
      id,
      new RedisContext([pattern]),
    )({
      err: { code: 'UNAVAILABLE', message: 'server is shutting down, retry' },
      isDisposed: true,
    });
  }

  /** True when this instance won `id`; false (counted and, on failure, logged) otherwise. */
  private async claim(pub: Redis, channel: string, id: string, won: Outcome = 'handled'): Promise<boolean> {
    try {
      const claimed = await this.claims.claim(pub, channel, id);
      this.count(channel, claimed ? won : 'claimed_elsewhere');
      return claimed;
    } catch (err) {
      this.count(channel, 'claim_failed');
      this.logger.warn(`could not claim request ${id} on ${channel}, leaving it unanswered: ${(err as Error).message}`);
      return false;
    }
  }

  /** The stock publisher (adds the id, serializes, publishes on `<pattern>.reply`), bounded in time. */
  private publisher(pub: Redis, pattern: string, id: string, ctx: RedisContext): (reply: WritePacket) => Promise<unknown> {
    const publish = this.getPublisher(pub, pattern, id, ctx);
    return (reply) => withTimeout(Promise.resolve(publish(reply)), REPLY_TIMEOUT_MS);
  }

  private count(pattern: string, outcome: Outcome): void {
    this.config.metrics?.commands.inc({ pattern, outcome });
  }
}
