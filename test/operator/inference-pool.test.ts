// The InferencePool (Gateway API Inference Extension, inference.networking.k8s.io/v1) the operator creates
// when a JambaDeployment asks for one, checked by the API server against the extension's own CRD
// (sigs.k8s.io/gateway-api-inference-extension v1.5.0, installed from its Go module): created with the
// pods' selector, port and endpoint picker; drift restored; removed with the field; garbage-collected.
import { kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { createJd, installThirdPartyCrds, useInProcessOperator, waitForCondition } from './support.js';

const ns = withNamespace('op-pool');
// Before the operator starts: it watches InferencePools only where the API is served.
beforeAll(async () => {
  await installThirdPartyCrds('inference-extension');
}, 90_000);
useInProcessOperator(ns);

interface Pool {
  metadata: { ownerReferences?: Array<{ kind: string; name: string; controller?: boolean }> };
  spec: { selector: { matchLabels: Record<string, string> }; targetPorts: Array<{ number: number }>; endpointPickerRef: Record<string, unknown> };
}
const getPool = (name: string) => kubectlJson<Pool>(['get', 'inferencepool.inference.networking.k8s.io', name, '-n', ns.name]);
const poolGone = async (name: string) => {
  const out = await kubectl(['get', 'inferencepool.inference.networking.k8s.io', name, '-n', ns.name, '--ignore-not-found', '-o', 'name']);
  return out.trim() === '' ? true : undefined;
};
const runtimeArgs = async (name: string) =>
  (await kubectlJson<{ spec: { template: { spec: { containers: Array<{ args: string[] }> } } } }>(['get', 'deployment', name, '-n', ns.name])).spec.template.spec.containers[0]!.args;

test('asked for, the pool selects the pods on the runtime port and names the endpoint picker; the pods export vLLM names', async () => {
  await createJd(ns.name, 'pooled', { gpusPerReplica: 1, runtime: { port: 8100 }, inferencePool: { endpointPicker: { name: 'pooled-epp' } } });
  await waitForCondition(ns.name, 'pooled', 'Ready', 'True');
  const pool = await waitFor(() => getPool('pooled').catch(() => undefined), { description: 'InferencePool pooled' });
  expect(pool.spec.selector.matchLabels).toEqual({ 'serving.jamba.dev/jambadeployment': 'pooled' });
  expect(pool.spec.targetPorts).toEqual([{ number: 8100 }]);
  // The extension's CRD defaults kind and group; ours sets port and failure mode.
  expect(pool.spec.endpointPickerRef).toEqual({ name: 'pooled-epp', port: { number: 9002 }, failureMode: 'FailClose', kind: 'Service', group: '' });
  expect(pool.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'JambaDeployment', name: 'pooled', controller: true })]);
  expect(await runtimeArgs('pooled')).toContain('--vllm-metrics');
}, 90_000);

test('an edited pool is put back', async () => {
  await kubectl(['patch', 'inferencepool.inference.networking.k8s.io', 'pooled', '-n', ns.name, '--type=merge', '-p', '{"spec":{"targetPorts":[{"number":9999}]}}']);
  await waitFor(async () => ((await getPool('pooled')).spec.targetPorts[0]!.number === 8100 ? true : undefined), { description: 'targetPorts restored' });
}, 60_000);

test('dropping spec.inferencePool deletes the pool and the vLLM names; deleting the JambaDeployment collects a pool', async () => {
  await kubectl(['patch', 'jd', 'pooled', '-n', ns.name, '--type=json', '-p', '[{"op":"remove","path":"/spec/inferencePool"}]']);
  await waitFor(() => poolGone('pooled'), { description: 'InferencePool pooled deleted' });
  await waitFor(async () => (!(await runtimeArgs('pooled')).includes('--vllm-metrics') ? true : undefined), { description: 'args without --vllm-metrics' });

  await createJd(ns.name, 'short-lived', { gpusPerReplica: 1, inferencePool: { endpointPicker: { name: 'epp', port: 9003, failureMode: 'FailOpen' } } });
  await waitFor(() => getPool('short-lived').catch(() => undefined), { description: 'InferencePool short-lived' });
  expect((await getPool('short-lived')).spec.endpointPickerRef).toMatchObject({ port: { number: 9003 }, failureMode: 'FailOpen' });
  await kubectl(['delete', 'jd', 'short-lived', '-n', ns.name]);
  await waitFor(() => poolGone('short-lived'), { description: 'InferencePool short-lived garbage-collected', timeoutMs: 60_000 });
}, 120_000);

test('the API server refuses an endpoint picker without a name, saying so', async () => {
  await expect(createJd(ns.name, 'bad-pool', { gpusPerReplica: 1, inferencePool: { endpointPicker: { port: 9002 } } }))
    .rejects.toThrow(/spec.inferencePool.endpointPicker.name: Required value/);
});
