// The operator CLI, configured only by OTEL_* variables, exports a span per reconcile over OTLP/HTTP
// protobuf to a real receiver on loopback (otlp-sink decodes with the OpenTelemetry proto module).
import { withNamespace } from '../harness/cluster.js';
import { OtlpSink } from '../monitoring/otlp-sink.js';
import { createJd, ensureOperatorBuilt, installCrd, spawnOperator, waitForCondition, type OperatorProcess } from '../operator/support.js';

const ns = withNamespace('op-trace');
let sink: OtlpSink;
let operator: OperatorProcess | undefined;

beforeAll(async () => {
  ensureOperatorBuilt();
  await installCrd();
  sink = await OtlpSink.start();
  operator = spawnOperator(ns.name, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_SERVICE_NAME: undefined, OTEL_TRACES_EXPORTER: undefined } });
}, 60_000);
afterAll(async () => {
  operator?.child.kill('SIGKILL');
  await sink?.stop();
});

test('a reconcile span per reconcile of the JambaDeployment, with its key and result', async () => {
  await createJd(ns.name, 'traced', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'traced', 'Ready', 'True');
  operator!.child.kill('SIGTERM');
  expect((await operator!.exited).code).toBe(0);
  const key = `${ns.name}/traced`;
  await sink.waitFor('a reconcile span', (spans) => spans.some((s) => s.attributes['k8s.jambadeployment'] === key));
  const spans = sink.spans.filter((s) => s.attributes['k8s.jambadeployment'] === key);
  for (const s of spans) {
    expect(s.name).toBe('reconcile JambaDeployment');
    expect(s.resource['service.name']).toBe('jamba-operator');
    expect(s.scope).toBe('jamba-operator');
    expect(s.endNs).toBeGreaterThanOrEqual(s.startNs);
  }
  // The first reconcile created the children.
  expect(spans.map((s) => s.attributes['jamba.reconcile.result'])).toContain('applied');
}, 90_000);
