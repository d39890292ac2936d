import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { TRANSPORTS, type Transport } from '../common/transport.js';
import { sharedReading } from './shared-reading.js';

/**
 * How old a database-derived gauge may be. Prometheus scrapes every 15-60 s, so 5 s old is fresh
 * enough, and it caps the database cost of /metrics at one query per 5 s however often it is hit.
 */
export const DB_GAUGE_MAX_AGE_MS = 5000;

/** pg's pool, as TypeORM's postgres driver holds it. */
interface PoolCounts {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
  options: { max: number };
}

interface EventsSource {
  leading(): boolean;
  backlog(): Promise<number>;
}

/**
 * Every metric the service exports at /metrics (names documented in docs/operations.md), plus
 * Node's defaults (event-loop lag, heap, GC, handles). Gauges that mirror state are read at
 * scrape time, so nothing is counted twice.
 */
@Injectable()
export class ChatMetrics {
  readonly registry = new Registry();
  private connectionCounter: (transport: Transport) => number = () => 0;
  private eventsSource: EventsSource | null = null;
  private webhookCircuits: (() => Map<string, number>) | null = null;

  readonly messagesReceived = new Counter({
    name: 'chat_messages_received_total',
    help: 'message.send requests received, by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });

  readonly messagesDelivered = new Counter({
    name: 'chat_messages_delivered_total',
    help: 'message.new pushes written to connections of this instance, by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });

  readonly messagesStored = new Counter({
    name: 'chat_messages_stored_total',
    help: 'messages committed by this instance (repeats of a clientMsgId not counted)',
    registers: [this.registry],
  });

  readonly relayMessagesReceived = new Counter({
    name: 'chat_relay_messages_received_total',
    help: "pub/sub messages this instance's Redis subscriber received (relayed pushes, evictions, the adapter's requests; its own publishes included where Redis echoes them)",
    registers: [this.registry],
  });

  readonly presendHookCalls = new Histogram({
    name: 'chat_presend_hook_duration_seconds',
    help:
      'pre-send hook calls by outcome (allow, modify, reject, bad_answer, timeout, unreachable, overloaded: no slot free), ' +
      'from the call to its answer, waiting for a slot included',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly ackLatency = new Histogram({
    name: 'chat_ack_latency_seconds',
    help: 'time from a request arriving to its reply, by event',
    labelNames: ['event'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly fanoutLag = new Histogram({
    name: 'chat_fanout_lag_seconds',
    help: 'time from a message being stored (on any instance) to its delivery to this instance’s members',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly appendBatchSize = new Histogram({
    name: 'chat_append_batch_size',
    help:
      'messages per group-commit append transaction attempted by this instance (each half of a split batch counts as its own, ' +
      'and so does each attempt of a send that creates its room)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [this.registry],
  });

  readonly errors = new Counter({
    name: 'chat_errors_total',
    help: 'error replies, by protocol error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly commands = new Counter({
    name: 'chat_commands_total',
    help: 'messages on the command channels (Redis transport) by pattern and outcome: handled here, claimed_elsewhere, refused (shutting down), ignored (malformed or without id), claim_failed',
    labelNames: ['pattern', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly eventsPublished = new Counter({
    name: 'chat_events_published_total',
    help: 'outbox events this instance relayed: appended to the Redis Stream and/or queued for webhook delivery',
    registers: [this.registry],
  });

  readonly webhookDeliveries = new Counter({
    name: 'chat_webhook_deliveries_total',
    help: 'webhook requests answered with a 2xx status',
    registers: [this.registry],
  });

  readonly webhookFailures = new Counter({
    name: 'chat_webhook_failures_total',
    help: 'webhook attempts that failed (another status, a network error or no answer in time)',
    registers: [this.registry],
  });

  readonly webhookDeadLetters = new Counter({
    name: 'chat_webhook_dead_letters_total',
    help: 'webhook deliveries given up after WEBHOOK_MAX_ATTEMPTS failures',
    registers: [this.registry],
  });

  constructor(@InjectDataSource() db: DataSource) {
    collectDefaultMetrics({ register: this.registry });
    const counter = () => this.connectionCounter;
    new Gauge({
      name: 'chat_connections',
      help: 'open client connections on this instance, by transport',
      labelNames: ['transport'] as const,
      registers: [this.registry],
      collect() {
        for (const transport of TRANSPORTS) this.set({ transport }, counter()(transport));
      },
    });
    const pool = () => (db.driver as unknown as { master?: PoolCounts }).master;
    // Open connections split by state: the two series never overlap, so their sum is the pool's size.
    new Gauge({
      name: 'chat_db_pool_open_connections',
      help: 'open database pool connections, by state: idle or in_use (the two add up to the open connections)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const p = pool();
        if (!p) return;
        this.set({ state: 'idle' }, p.idleCount);
        this.set({ state: 'in_use' }, p.totalCount - p.idleCount);
      },
    });
    new Gauge({
      name: 'chat_db_pool_max_connections',
      help: 'the most connections the database pool opens (DB_POOL_SIZE)',
      registers: [this.registry],
      collect() {
        const p = pool();
        if (p) this.set(p.options.max);
      },
    });
    new Gauge({
      name: 'chat_db_pool_waiting_requests',
      help: 'storage calls waiting for a database pool connection (all of them in use)',
      registers: [this.registry],
      collect() {
        const p = pool();
        if (p) this.set(p.waitingCount);
      },
    });
    // Deprecated: its states overlap (total counts the idle ones; waiting counts requests, not
    // connections). Kept this release so dashboards survive a rolling update; removed in the next.
    new Gauge({
      name: 'chat_db_pool_connections',
      help: 'DEPRECATED, removed in the next release: use chat_db_pool_open_connections and chat_db_pool_waiting_requests',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const p = pool();
        if (!p) return;
        this.set({ state: 'total' }, p.totalCount);
        this.set({ state: 'idle' }, p.idleCount);
        this.set({ state: 'waiting' }, p.waitingCount);
      },
    });
    const circuits = () => this.webhookCircuits;
    new Gauge({
      name: 'chat_webhook_circuits_open',
      help: 'webhook URLs whose circuit is open (nothing sent but one probe per cool-down), by host',
      labelNames: ['host'] as const,
      registers: [this.registry],
      collect() {
        for (const [host, open] of circuits()?.() ?? []) this.set({ host }, open);
      },
    });
    const events = () => this.eventsSource;
    new Gauge({
      name: 'chat_events_relay_leader',
      help: '1 on the one instance that relays events now, 0 on the others',
      registers: [this.registry],
      collect() {
        this.set(events()?.leading() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'chat_events_outbox_backlog',
      help: `events committed but not relayed yet (counted up to 100000), read from the database at most every ${DB_GAUGE_MAX_AGE_MS / 1000} s`,
      registers: [this.registry],
      async collect() {
        const source = events();
        // While the database is down the backlog is unknown (NaN); the scrape itself still answers.
        if (source) this.set(await source.backlog().catch(() => NaN));
      },
    });
  }

  /** Where the webhook circuit gauge reads from (the dispatcher). */
  watchWebhookCircuitsWith(openByHost: () => Map<string, number>): void {
    this.webhookCircuits = openByHost;
  }

  /** Where the event gauges read from (the relay, and the outbox table). */
  watchEventsWith(source: EventsSource): void {
    this.eventsSource = { leading: () => source.leading(), backlog: sharedReading(() => source.backlog(), DB_GAUGE_MAX_AGE_MS) };
  }

  /** Where the connection gauge reads from (the instance's connection registry). */
  countConnectionsWith(counter: (transport: Transport) => number): void {
    this.connectionCounter = counter;
  }
}
