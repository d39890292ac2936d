import { Module } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import { RedisClients } from '../redis/redis-clients.js';
import { EventRelay } from './event-relay.js';
import { ELECTIONS, leadershipFor } from './leadership.js';
import { countBacklog, OutboxRelay } from './outbox-relay.js';
import { StreamPublisher } from './stream-publisher.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';

/**
 * Events out: the outbox (written by persistence, in the transactions of the changes) relayed to
 * the Redis Stream EVENTS_STREAM when Redis is configured, and to WEBHOOK_URLS when set, by one
 * leader among the replicas.
 */
@Module({
  providers: [
    {
      provide: EventRelay,
      inject: [APP_CONFIG, getDataSourceToken(), RedisClients, ChatMetrics],
      useFactory: (config: AppConfig, db: DataSource, redis: RedisClients | null, metrics: ChatMetrics) => {
        const stream = redis ? new StreamPublisher(redis, config.events.stream, config.events.maxLen) : null;
        const webhooks = config.webhooks ? new WebhookDispatcher(config.webhooks, metrics) : null;
        const relay = stream || webhooks ? new OutboxRelay(stream, config.webhooks?.urls ?? null, metrics) : null;
        // The embedded database is single-instance and serves one connection: no election, the pool's connection.
        const leadership = leadershipFor(config, db, ELECTIONS.relay);
        const eventRelay = new EventRelay({ leadership, relay, webhooks, stream });
        metrics.watchEventsWith({ leading: () => eventRelay.isLeader, backlog: () => countBacklog(db) });
        if (webhooks) metrics.watchWebhookCircuitsWith(() => webhooks.openCircuitsByHost());
        return eventRelay;
      },
    },
  ],
})
export class EventsModule {}
