// OpenTelemetry for both binaries: off unless the standard OTEL_* variables ask for a trace exporter.
// The SDK itself reads the exporter, protocol, endpoint, headers, sampler, propagators and resource
// attributes from the environment. Metrics stay with Prometheus (/metrics), so the SDK's own metric and
// log exporters are off unless OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER name one.
import { NodeSDK } from '@opentelemetry/sdk-node';

let sdk: NodeSDK | undefined;

export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter !== undefined) return exporter !== 'none';
  return !!(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Starts the SDK once per process; `serviceName` applies unless OTEL_SERVICE_NAME is set. */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (sdk || !tracingRequested(env)) return false;
  // The SDK reads process.env; defaults go there so that explicit settings still win.
  process.env.OTEL_METRICS_EXPORTER ??= 'none';
  process.env.OTEL_LOGS_EXPORTER ??= 'none';
  sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME ?? serviceName, instrumentations: [] });
  sdk.start();
  return true;
}

/** Flushes spans still buffered and stops the exporter. */
export async function stopTracing(): Promise<void> {
  await sdk?.shutdown();
  sdk = undefined;
}
