import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { AppConfig } from '../config/config.schema.js';

export interface TracingSdk {
  /** Exports what is still buffered, then stops; spans ended afterwards are dropped. */
  shutdown(): Promise<void>;
}

/**
 * Registers the global tracer provider (and its AsyncLocalStorage context manager, which carries
 * the active span through the awaits of a send) before Nest builds the app. Spans are exported in
 * batches in the background (BatchSpanProcessor; the SDK's own OTEL_BSP_* variables tune it), so
 * a slow or absent collector never holds up a send: at worst its spans are dropped.
 */
export function startTracing(config: NonNullable<AppConfig['tracing']>): TracingSdk {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: config.tracesUrl }))],
  });
  provider.register();
  return provider;
}
