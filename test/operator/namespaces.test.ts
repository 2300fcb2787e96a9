// A namespace allowlist (the chart's watch.scope=namespaces): the operator reconciles JambaDeployments
// in the listed namespaces, leaves others alone, and applies its installation-wide runtime image.
import { DEFAULT_RUNTIME_IMAGE } from '../../operator/api/jambadeployment.js';
import { Operator } from '../../operator/controller/operator.js';
import { createTestNamespace, deleteTestNamespace, kubectlJson, makeKubeConfig } from '../harness/cluster.js';
import { createJd, getJd, installCrd, waitForCondition } from './support.js';

let namespaces: string[] = [];
let operator: Operator | undefined;

beforeAll(async () => {
  await installCrd();
  namespaces = await Promise.all(['op-ns-a', 'op-ns-b', 'op-ns-other'].map((p) => createTestNamespace(p)));
  operator = new Operator({
    kubeConfig: makeKubeConfig(), namespace: namespaces.slice(0, 2), leaderElection: false, workers: 2,
    defaults: { runtimeImage: 'registry.local/jamba-runtime:dev' },
  });
  await operator.start();
}, 90_000);
afterAll(async () => {
  await operator?.stop();
  await Promise.all(namespaces.map(deleteTestNamespace));
});

test('JambaDeployments in both allowed namespaces are reconciled; one outside is not touched', async () => {
  const [a, b, other] = namespaces as [string, string, string];
  await Promise.all([a, b, other].map((ns) => createJd(ns, 'mini', { gpusPerReplica: 1 })));
  await waitForCondition(a, 'mini', 'Ready', 'True');
  await waitForCondition(b, 'mini', 'Ready', 'True');
  // By then the operator has listed and watched all it watches; the third is still untouched.
  expect((await getJd(other, 'mini')).status).toBeUndefined();
  const deployments = await kubectlJson<{ items: unknown[] }>(['get', 'deployments', '-n', other]);
  expect(deployments.items).toEqual([]);
}, 90_000);

test('--default-runtime-image replaces the CRD default only', async () => {
  const [a] = namespaces as [string];
  await createJd(a, 'pinned', { gpusPerReplica: 1, runtime: { image: 'example.com/own-runtime:1' } });
  await waitForCondition(a, 'pinned', 'Ready', 'True');
  const image = async (name: string) =>
    (await kubectlJson<{ spec: { template: { spec: { containers: Array<{ image: string }> } } } }>(['get', 'deployment', '-n', a, name])).spec.template.spec.containers[0]!.image;
  expect((await getJd(a, 'mini')).spec.runtime.image).toBe(DEFAULT_RUNTIME_IMAGE);
  expect(await image('mini')).toBe('registry.local/jamba-runtime:dev');
  expect(await image('pinned')).toBe('example.com/own-runtime:1');
}, 90_000);
