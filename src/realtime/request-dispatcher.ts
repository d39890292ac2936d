import { Logger } from '@nestjs/common';
import type { Span } from '@opentelemetry/api';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { defer, filter, finalize, type Observable } from 'rxjs';
import type { Reply } from '../chat/chat.events.js';
import type { ErrorCode } from '../chat/chat.errors.js';
import type { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import type { ChatMetrics } from '../metrics/chat-metrics.js';
import type { ChatConnection, Responder } from './chat-connection.js';
import { fieldsNestedTooDeep, MAX_DATA_DEPTH } from '../common/payload-shape.js';
import type { RequestLimiter } from './limits/request-limiter.js';
import { Tracing } from '../tracing/tracing.js';

const fail = (code: ErrorCode, message: string, details?: Record<string, unknown>): Reply => ({
  ok: false,
  error: details ? { code, message, details } : { code, message },
});

/**
 * The one request path for both transports: a fixed event table (UNKNOWN_EVENT for anything
 * else, prototype names included), a nesting bound, rate limits, the shutdown gate, then the
 * gateway handler with Nest's guards, pipes and filters. The handler's own failures are answered
 * by the gateway's exception filter through `respond`, passed as the ack argument.
 */
export class RequestDispatcher {
  private readonly logger = new Logger('Requests');
  /**
   * Event name → position, per list of handler events. Nest hands every connection the gateway's
   * handlers in the same order, each bound to it, so a connection keeps only the array of its
   * callbacks: a Map of its own cost about 760 bytes of heap with 20 events.
   */
  private readonly tables = new Map<string, ReadonlyMap<string, number>>();

  constructor(
    private readonly gate: ShutdownGate,
    private readonly limiter: RequestLimiter,
    /** The events that send a user's message (the gateway's SubscribeUserMessage handlers). */
    private readonly userMessages: ReadonlySet<string>,
    private readonly metrics?: ChatMetrics,
    private readonly tracing: Tracing = Tracing.off,
  ) {}

  bind(conn: ChatConnection, handlers: MessageMappingProperties[], transform: (data: unknown) => Observable<unknown>): void {
    const events = this.eventsOf(handlers);
    const callbacks = handlers.map((h) => h.callback);
    conn.onRequest((event, data, reply, malformed) => {
      const position = events.get(event);
      const userMessage = this.userMessages.has(event);
      // Traced (sends only): the span ends with the reply, whichever step gives it.
      const span = this.tracing.on && userMessage ? this.tracing.startSend(conn.transport) : null;
      const respond = this.measured(position !== undefined ? event : 'unknown', span ? this.traced(span, reply) : reply);
      if (userMessage) this.metrics?.messagesReceived.inc({ transport: conn.transport });
      // Limits come first, so floods of unknown, malformed or unparseable requests count as well.
      void this.limiter.check(conn, userMessage).then(
        (decision) => {
          if (!decision.allowed) {
            respond(fail('RATE_LIMITED', 'too many requests', { retryAfterMs: decision.retryAfterMs }));
            if (decision.disconnect) {
              this.logger.warn({ msg: 'disconnecting a client that ignores rate limits', userId: conn.user.userId, connectionId: conn.id });
              conn.close('abuse');
            }
            return;
          }
          if (malformed) return respond(malformed);
          if (position === undefined) return respond(fail('UNKNOWN_EVENT', 'no such event'));
          const handler = callbacks[position]!;
          const tooDeep = fieldsNestedTooDeep(data);
          if (tooDeep) return respond(fail('VALIDATION_FAILED', `data nests deeper than ${MAX_DATA_DEPTH} levels`, { fields: tooDeep }));
          if (span) this.tracing.within(span, () => this.run(event, data, respond, (d, r) => handler(d, r), transform));
          else this.run(event, data, respond, (d, r) => handler(d, r), transform);
        },
        (err: unknown) => {
          this.logger.error(`rate limit check failed: ${String(err)}`);
          respond(fail('INTERNAL', 'internal error'));
        },
      );
    });
  }

  private eventsOf(handlers: MessageMappingProperties[]): ReadonlyMap<string, number> {
    const names = handlers.map((h) => String(h.message));
    const key = names.join('\n');
    let table = this.tables.get(key);
    if (!table) this.tables.set(key, (table = new Map(names.map((name, i) => [name, i]))));
    return table;
  }

  private traced(span: Span, respond: Responder): Responder {
    return (reply) => {
      this.tracing.endSend(span, reply);
      respond(reply);
    };
  }

  /** Wraps a responder so each reply is timed (per known event) and each error counted by code. */
  private measured(event: string, respond: Responder): Responder {
    const metrics = this.metrics;
    if (!metrics) return respond;
    const started = performance.now();
    return (reply) => {
      metrics.ackLatency.observe({ event }, (performance.now() - started) / 1000);
      if (!reply.ok) metrics.errors.inc({ code: reply.error.code });
      respond(reply);
    };
  }

  private run(
    event: string,
    data: unknown,
    respond: Responder,
    handler: (data: unknown, respond: Responder) => unknown,
    transform: (data: unknown) => Observable<unknown>,
  ): void {
    if (!this.gate.enter()) return respond(fail('UNAVAILABLE', 'server is shutting down, reconnect and retry'));
    defer(() => transform(handler(data, respond)))
      .pipe(
        filter((result) => result !== undefined && result !== null),
        finalize(() => this.gate.leave()),
      )
      .subscribe({
        next: (result) => respond({ ok: true, data: result }),
        error: (err: unknown) => {
          this.logger.error(`unhandled failure in ${event}: ${String(err)}`);
          respond(fail('INTERNAL', 'internal error'));
        },
      });
  }
}
