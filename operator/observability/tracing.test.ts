import { SpanStatusCode, trace } from '@opentelemetry/api';
import { node, tracing } from '@opentelemetry/sdk-node';
import { withSpan } from './tracing.js';

describe('withSpan', () => {
  const exporter = new tracing.InMemorySpanExporter();
  const provider = new node.NodeTracerProvider({ spanProcessors: [new tracing.SimpleSpanProcessor(exporter)] });
  beforeAll(() => {
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
  });
  beforeEach(() => exporter.reset());

  test('records one span per call with its attributes', async () => {
    const result = await withSpan('reconcile JambaDeployment', { 'k8s.jambadeployment': 'ns/a' }, async (span) => {
      span.setAttribute('jamba.reconcile.result', 'applied');
      return 'applied';
    });
    expect(result).toBe('applied');
    const [span] = exporter.getFinishedSpans();
    expect(span?.name).toBe('reconcile JambaDeployment');
    expect(span?.attributes).toEqual({ 'k8s.jambadeployment': 'ns/a', 'jamba.reconcile.result': 'applied' });
  });

  test('a failure ends the span with an error status and the exception', async () => {
    await expect(withSpan('reconcile JambaDeployment', {}, async () => { throw new Error('applying Deployment ns/a: 500'); })).rejects.toThrow('500');
    const [span] = exporter.getFinishedSpans();
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'applying Deployment ns/a: 500' });
    expect(span?.events.map((e) => e.name)).toEqual(['exception']);
  });
});
