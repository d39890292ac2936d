import { setMaxListeners } from 'node:events';
import { Logger } from '@nestjs/common';
import type { AppConfig } from '../config/config.schema.js';
import type { ChatMetrics } from '../metrics/chat-metrics.js';
import { webhookBody } from './chat-events-out.js';
import type { LeaderSession } from './leadership.js';
import { pause, retryDelayMs } from './retry-delay.js';
import { type CircuitChange, UrlCircuits } from './webhook-circuits.js';
import { signWebhook, standardWebhookHeaders } from './webhook-signature.js';

type WebhookConfig = NonNullable<AppConfig['webhooks']>;

/** Requests in flight at once, over all URLs. */
const MAX_IN_FLIGHT = 32;
/** How often due deliveries are looked for: the granularity of the retry schedule. */
const POLL_MS = 50;
/** However many attempts are allowed, retries are never further apart than this. */
const MAX_RETRY_DELAY_MS = 3_600_000;

interface DeliveryRow {
  id: string;
  event_id: string;
  url: string;
  type: string;
  room_id: string;
  data: unknown;
  attempts: number;
}

type Outcome = { ok: true } | { ok: false; error: string };

const DUE_SQL = `
  SELECT id, event_id, url, type, room_id, data, attempts FROM webhook_deliveries
  WHERE next_attempt_at <= now() AND NOT (id = ANY ($1::bigint[])) AND NOT (url = ANY ($3::text[]))
  ORDER BY next_attempt_at, id LIMIT $2`;
const DELIVERED_SQL = 'DELETE FROM webhook_deliveries WHERE id = $1';
const RETRY_SQL = `
  UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $3,
         next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)
  WHERE id = $1`;
const DEAD_LETTER_SQL = `
  WITH failed AS (DELETE FROM webhook_deliveries WHERE id = $1 RETURNING event_id, url, type, room_id, data, attempts, created_at)
  INSERT INTO webhook_dead_letters (event_id, url, type, room_id, data, attempts, last_error, created_at)
  SELECT event_id, url, type, room_id, data, attempts + 1, $2, created_at FROM failed`;

/**
 * Delivers the webhook queue while this instance leads: POSTs each due delivery, signed, and
 * records the outcome — deleted on 2xx, rescheduled with exponential backoff on anything else
 * (another status, a network error, no answer within the timeout), moved to the dead letters on
 * the last allowed attempt. A delivery whose outcome could not be recorded (leadership lost,
 * database down) is attempted again: receivers get each event at least once and de-duplicate by
 * `X-Chat-Event-Id`. Deliveries are independent, so their order is not the events' order.
 * Each URL has its own share of the requests and its own circuit (UrlCircuits), so a slow or
 * dead receiver delays only its own deliveries.
 */
export class WebhookDispatcher {
  private readonly logger = new Logger('Events');
  /** The current term's circuits; none while this instance does not lead. */
  private circuits: UrlCircuits | null = null;

  constructor(
    private readonly config: WebhookConfig,
    private readonly metrics: ChatMetrics,
  ) {}

  /** Delivers until `signal` aborts; requests still in flight then are cancelled and left to the next leader. */
  async run(session: LeaderSession, signal: AbortSignal): Promise<void> {
    const inFlight = new Map<string, Promise<void>>();
    // Every request in flight listens for the term's end.
    setMaxListeners(MAX_IN_FLIGHT + 10, signal);
    // A new term starts with every circuit closed: the previous leader's view is not known here.
    const circuits = new UrlCircuits(this.config.circuit);
    this.circuits = circuits;
    try {
      while (!signal.aborted) {
        const free = MAX_IN_FLIGHT - inFlight.size;
        if (free > 0) {
          const due = await session.query<DeliveryRow>(DUE_SQL, [[...inFlight.keys()], free, circuits.blocked()]);
          // Rows beyond a URL's share stay queued for a later poll, when its requests have settled.
          for (const delivery of due.filter((d) => circuits.admit(d.url))) {
            inFlight.set(
              delivery.id,
              this.attempt(session, delivery, signal, circuits).finally(() => inFlight.delete(delivery.id)),
            );
          }
        }
        await pause(POLL_MS, signal);
      }
    } finally {
      await Promise.allSettled(inFlight.values());
      this.circuits = null;
    }
  }

  /** Open circuits by host, every configured URL's host included (0 when none is open): the gauge's reading. */
  openCircuitsByHost(): Map<string, number> {
    const open = new Set(this.circuits?.openUrls());
    const byHost = new Map<string, number>();
    // The host only: a URL's path and query may carry a receiver's secret.
    for (const url of this.config.urls) {
      const host = new URL(url).host;
      byHost.set(host, (byHost.get(host) ?? 0) + (open.has(url) ? 1 : 0));
    }
    return byHost;
  }

  private async attempt(session: LeaderSession, delivery: DeliveryRow, signal: AbortSignal, circuits: UrlCircuits): Promise<void> {
    const outcome = await this.post(delivery, signal);
    // A term's circuits end with it: a request cut by its end tells nothing of the receiver.
    if (signal.aborted) return;
    this.logCircuit(delivery.url, circuits.settle(delivery.url, outcome.ok), outcome);
    try {
      if (outcome.ok) {
        await session.query(DELIVERED_SQL, [delivery.id]);
        this.metrics.webhookDeliveries.inc();
        return;
      }
      this.metrics.webhookFailures.inc();
      const attempts = delivery.attempts + 1;
      if (attempts < this.config.maxAttempts) {
        await session.query(RETRY_SQL, [delivery.id, retryDelayMs(attempts, this.config.retryBaseMs, MAX_RETRY_DELAY_MS), outcome.error]);
        return;
      }
      await session.query(DEAD_LETTER_SQL, [delivery.id, outcome.error]);
      this.metrics.webhookDeadLetters.inc();
      this.logger.warn(
        `webhook delivery of event ${delivery.event_id} (${delivery.type}) to ${delivery.url} failed ${attempts} times ` +
          `(last: ${outcome.error}); moved to webhook_dead_letters`,
      );
    } catch (err) {
      // The next leader (or this one, next term) attempts it again.
      this.logger.debug(`outcome of webhook delivery ${delivery.id} not recorded: ${(err as Error).message}`);
    }
  }

  private logCircuit(url: string, change: CircuitChange | null, outcome: Outcome): void {
    if (change === 'opened' && !outcome.ok)
      this.logger.warn(
        `webhook circuit for ${url} opened after ${this.config.circuit.failures} consecutive failures ` +
          `(last: ${outcome.error}); one probe every ${this.config.circuit.cooldownMs} ms until it answers 2xx`,
      );
    else if (change === 'closed') this.logger.log(`webhook circuit for ${url} closed: it answered 2xx`);
  }

  /** One signed POST; never throws. Redirects are not followed: only a 2xx answer counts. */
  private async post(delivery: DeliveryRow, signal: AbortSignal): Promise<Outcome> {
    const body = webhookBody({ id: delivery.event_id, type: delivery.type, roomId: delivery.room_id, data: delivery.data });
    const timestamp = String(Math.floor(Date.now() / 1000));
    // The request ends at the timeout or with the leadership term, whichever comes first.
    const request = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      request.abort();
    }, this.config.timeoutMs);
    const endTerm = () => request.abort();
    signal.addEventListener('abort', endTerm, { once: true });
    try {
      const res = await fetch(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'chat-service-webhooks/1',
          'x-chat-event-id': delivery.event_id,
          'x-chat-timestamp': timestamp,
          'x-chat-signature': signWebhook(this.config.secret, timestamp, body),
          'x-chat-attempt': String(delivery.attempts + 1),
          ...standardWebhookHeaders(this.config.secret, delivery.event_id, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal: request.signal,
      });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 300 ? { ok: true } : { ok: false, error: `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, error: timedOut ? `no answer within ${this.config.timeoutMs} ms` : describeFailure(err) };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', endTerm);
    }
  }
}

/** fetch reports network failures as "fetch failed" with the reason (ECONNREFUSED, ...) in `cause`. */
function describeFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}
