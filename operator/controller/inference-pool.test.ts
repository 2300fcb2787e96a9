import { jambaDeployment } from './testing/fixtures.js';
import { desiredDeployment } from './desired.js';
import { desiredInferencePool } from './inference-pool.js';
import { planChildren } from './plan.js';

const pooled = () => jambaDeployment({ runtime: { port: 8100 }, inferencePool: { endpointPicker: { name: 'mini-epp' } } });
const args = (jd: ReturnType<typeof jambaDeployment>) => desiredDeployment(jd).spec!.template.spec!.containers[0]!.args!;

test('the pool selects the pods on the runtime port and names the endpoint picker (defaults: port 9002, FailClose)', () => {
  expect(desiredInferencePool(pooled())).toEqual({
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: expect.objectContaining({ name: 'mini', namespace: 'ns', ownerReferences: [expect.objectContaining({ kind: 'JambaDeployment', controller: true })] }),
    spec: {
      selector: { matchLabels: { 'serving.jamba.dev/jambadeployment': 'mini' } },
      targetPorts: [{ number: 8100 }],
      endpointPickerRef: { name: 'mini-epp', port: { number: 9002 }, failureMode: 'FailClose' },
    },
  });
  expect(desiredInferencePool(jambaDeployment())).toBeUndefined();
});

test('pods behind a pool export vLLM names for the endpoint picker; others do not', () => {
  expect(args(pooled())).toContain('--vllm-metrics');
  expect(args(jambaDeployment())).not.toContain('--vllm-metrics');
});

test('the plan creates a missing pool, and removes an owned pool the spec dropped', () => {
  expect(planChildren(pooled(), { pods: [] }).apply.map((a) => a.kind)).toEqual(['Deployment', 'Service', 'InferencePool']);
  const existing = desiredInferencePool(pooled())!;
  const dropped = planChildren(jambaDeployment(), { pods: [], inferencePool: existing });
  expect(dropped.remove).toEqual(['InferencePool']);
  expect(dropped.apply.map((a) => a.kind)).not.toContain('InferencePool');
  expect(planChildren(pooled(), { pods: [], inferencePool: existing }).remove).toEqual([]);
});
