// Spans of the operator: one per reconcile. The SDK is started by common/tracing (OTEL_* environment).
import { trace, SpanStatusCode, type Span } from '@opentelemetry/api';
import { startTracing as startSdk } from '../../common/tracing.js';

export { stopTracing, tracingRequested } from '../../common/tracing.js';

export const startTracing = (env: NodeJS.ProcessEnv = process.env): boolean => startSdk('jamba-operator', env);

const tracer = () => trace.getTracer('jamba-operator');

/** Runs fn inside a span; the span records the error and is ended either way. */
export async function withSpan<T>(name: string, attributes: Record<string, string | number>, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  });
}
