import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { Message, Reply } from '../chat/chat.events.js';
import type { Transport } from '../common/transport.js';

/** Error codes that are the service's failure, not the client's: their send spans get status ERROR. */
const SERVER_FAULTS = new Set(['INTERNAL', 'UNAVAILABLE']);

/** A send's place in its trace, kept by the append batcher from submit to COMMIT. */
export interface TracedAppend {
  /** The sender's context: the store's callbacks (the fan-out) run in it, whichever send pumped the batch. */
  context: Context;
  /** From submit until the caller is answered: the wait for a batch and its COMMIT. */
  span: Span;
}

/**
 * The spans of a message send: the gateway's `message.send`, the store's wait and group-commit
 * batch, the fan-out. Off (no exporter configured) this holds no tracer, `on` is false and every
 * call site checks `on` before calling anything here, so the send path makes no span, context or
 * closure: one boolean test per layer. On, spans go to the provider main.ts registered globally
 * before the app was built (tracing-sdk.ts).
 */
export class Tracing {
  static readonly off = new Tracing(null);
  readonly on: boolean;

  constructor(private readonly tracer: Tracer | null) {
    this.on = tracer !== null;
  }

  /** The server span of one message.send, from the request's arrival (before its rate limits) to its reply. */
  startSend(transport: Transport): Span {
    return this.tracer!.startSpan('message.send', {
      kind: SpanKind.SERVER,
      attributes: {
        'messaging.system': 'chat',
        'messaging.operation.name': 'message.send',
        'messaging.operation.type': 'process',
        'chat.transport': transport,
      },
    });
  }

  /** Runs `fn` with `span` as the active span, so what it starts (store, fan-out) becomes its children. */
  within<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  /**
   * Ends the send span with the reply's outcome. The room and seq come from the stored message, not
   * the request: a refused request's fields are unvalidated client input, kept out of the trace.
   */
  endSend(span: Span, reply: Reply): void {
    if (reply.ok) {
      const message = reply.data as Message;
      span.setAttributes({
        'chat.outcome': 'ok',
        'chat.room_id': message.roomId,
        'chat.message.seq': message.seq,
        'messaging.message.id': message.id,
      });
    } else {
      span.setAttributes({ 'chat.outcome': 'error', 'error.type': reply.error.code });
      if (SERVER_FAULTS.has(reply.error.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: reply.error.message });
    }
    span.end();
  }

  /**
   * Taken when a send reaches the append batcher: its wait for a batch, a child of the active send
   * span; null outside a traced request (the HTTP API, commands), which would make it an orphan.
   */
  startAppend(roomId: string): TracedAppend | null {
    const active = context.active();
    if (!trace.getSpan(active)) return null;
    const span = this.tracer!.startSpan('chat.store.append', { attributes: { 'chat.room_id': roomId } }, active);
    return { context: active, span };
  }

  endAppend(traced: TracedAppend, err?: unknown): void {
    if (err !== undefined) {
      traced.span.recordException(err instanceof Error ? err : String(err));
      traced.span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    }
    traced.span.end();
  }

  /**
   * One span per chat_append transaction (one statement, so its end is the COMMIT). It serves many
   * sends of many traces, so it is the root of a trace of its own rather than a child of whichever
   * send happened to start it; it links to every send's append span, and each of those links back,
   * so either side leads to the other. `size` counts untraced sends (HTTP, commands) too.
   */
  startBatch(sends: TracedAppend[], size: number, rooms: number): Span {
    const links: Link[] = sends.map((s) => ({ context: s.span.spanContext() }));
    const batch = this.tracer!.startSpan(
      'chat.append.batch',
      {
        kind: SpanKind.CLIENT,
        links,
        attributes: {
          'db.system.name': 'postgresql',
          'db.operation.name': 'chat_append',
          'chat.batch.size': size,
          'chat.batch.rooms': rooms,
        },
      },
      ROOT_CONTEXT,
    );
    const back: Link = { context: batch.spanContext() };
    for (const s of sends) s.span.addLink(back).setAttribute('chat.batch.size', size);
    return batch;
  }

  endBatch(batch: Span, err?: unknown): void {
    if (err !== undefined) {
      batch.recordException(err instanceof Error ? err : String(err));
      batch.setStatus({ code: SpanStatusCode.ERROR });
    }
    batch.end();
  }

  /**
   * A publish to a room's members (local delivery and the relay to other instances), as a child of
   * the active span. Outside a traced request (HTTP, commands, typing timers) no span is made.
   */
  fanout(roomId: string, event: string, relay: string, publish: () => void): void {
    if (!trace.getSpan(context.active())) return publish();
    const span = this.tracer!.startSpan('chat.fanout', {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'chat',
        'messaging.operation.type': 'publish',
        'messaging.operation.name': 'publish',
        'chat.event': event,
        'chat.room_id': roomId,
        'chat.fanout.relay': relay,
      },
    });
    try {
      publish();
    } catch (err) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  }

  /** Runs `fn` in a context taken earlier (the batcher's callbacks in their sender's). */
  static inContext<T>(ctx: Context, fn: () => T): T {
    return context.with(ctx, fn);
  }
}
