import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { Leadership, LeaderSession } from './leadership.js';
import type { OutboxRelay } from './outbox-relay.js';
import { pause, retryDelayMs } from './retry-delay.js';
import type { StreamPublisher } from './stream-publisher.js';
import type { WebhookDispatcher } from './webhook-dispatcher.js';

/** Shutdown waits this long for the current batch and in-flight webhook requests, then goes on. */
const STOP_BOUND_MS = 2000;

export interface RelayParts {
  leadership: Leadership;
  /** Null when there is nowhere to relay to (neither Redis nor webhooks configured). */
  relay: OutboxRelay | null;
  webhooks: WebhookDispatcher | null;
  stream: StreamPublisher | null;
}

/**
 * Runs the outbox relay (and webhook delivery) on exactly one instance: waits for the leadership,
 * relays until it is lost, a database failure ends the term, or the application shuts down; then
 * waits for it again. Never throws into the process: every failure is logged and retried.
 */
export class EventRelay implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Events');
  private readonly stop = new AbortController();
  private running: Promise<void> | null = null;
  private leading = false;

  constructor(private readonly parts: RelayParts) {}

  /** Whether this instance relays right now (exported as a metric). */
  get isLeader(): boolean {
    return this.leading;
  }

  onApplicationBootstrap(): void {
    if (!this.parts.relay) {
      this.logger.log('REDIS_URL and WEBHOOK_URLS are not set: events stay in the outbox table until one of them is configured');
      return;
    }
    // lead() handles its failures; this only guards against a bug turning into an unhandled rejection.
    this.running = this.lead(this.parts.relay).catch((err: unknown) => this.logger.error(`event relay stopped: ${String(err)}`));
  }

  /** Before the pool and Redis close (their hooks run in onApplicationShutdown): the current term ends cleanly. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stop.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((resolve) => (timer = setTimeout(resolve, STOP_BOUND_MS)))]);
    clearTimeout(timer);
    this.parts.stream?.close();
  }

  private async lead(relay: OutboxRelay): Promise<void> {
    for (let failures = 0; !this.stop.signal.aborted;) {
      const session = await this.parts.leadership.acquire(this.stop.signal);
      if (!session) return;
      this.leading = true;
      this.logger.log('this instance relays events now');
      try {
        await this.term(session, relay);
        failures = 0;
      } catch (err) {
        failures++;
        this.logger.warn(`stopped relaying events: ${(err as Error).message}; trying again`);
      } finally {
        this.leading = false;
        await session.release();
      }
      if (failures > 0) await pause(retryDelayMs(failures, 500, 5000), this.stop.signal);
    }
  }

  /** Relay and webhook loops share the term: the first failure, a lost session or shutdown ends both. */
  private async term(session: LeaderSession, relay: OutboxRelay): Promise<void> {
    const failed = new AbortController();
    const signal = AbortSignal.any([this.stop.signal, session.lost, failed.signal]);
    const loops = [relay.run(session, signal)];
    if (this.parts.webhooks) loops.push(this.parts.webhooks.run(session, signal));
    const results = await Promise.allSettled(
      loops.map((loop) =>
        loop.catch((err: unknown) => {
          failed.abort(err);
          throw err;
        }),
      ),
    );
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    if (session.lost.aborted && !this.stop.signal.aborted) throw new Error('lost the relay lock connection');
  }
}
