// The operator (in this process) under faults of the control plane and load: an API-server restart
// in the middle of a rollout, watches forced to expire (410 Gone) by etcd compaction, and 100
// JambaDeployments edited at once. After each: everything converges, no child is duplicated, and
// no status is lost (a field another writer owns survives, every status is of the latest generation).
import { KubeClient } from '../../operator/kube/client.js';
import { RESOURCES, objectPath } from '../../operator/kube/resources.js';
import { addGpuNodes, kubectl, makeKubeConfig, restartApiServer, waitFor, withNamespace } from '../harness/cluster.js';
import { compactEtcd, deleteAllAndWait, expectAllConverged, expectNoDuplicates } from './chaos-support.js';
import { createJd, useInProcessOperator, waitForCondition } from './support.js';

const ns = withNamespace('op-chaos');
const op = useInProcessOperator(ns);
let client: KubeClient;
const addedNodes: string[] = [];

beforeAll(() => {
  client = new KubeClient(makeKubeConfig());
});
afterAll(async () => {
  client.close();
  // Free the GPUs before the namespace goes (its deletion is asynchronous): later files need them.
  await deleteAllAndWait(ns.name);
  if (addedNodes.length > 0) await kubectl(['delete', 'node', ...addedNodes, '--wait=false']);
}, 240_000);

function patchJd(name: string, body: unknown, subresource?: string): Promise<unknown> {
  return client.request({
    method: 'PATCH', path: objectPath(RESOURCES.jambaDeployments, ns.name, name, subresource), verb: 'PATCH',
    resource: 'jambadeployments', body, contentType: 'application/merge-patch+json',
  });
}

type ArgsOnly = { spec: { template: { spec: { containers: { args: string[] }[] } } } };

function getDeployment(name: string): Promise<ArgsOnly> {
  return client.request<ArgsOnly>({ method: 'GET', path: objectPath(RESOURCES.deployments, ns.name, name), verb: 'GET', resource: 'deployments' });
}

function deploymentArgs(d: ArgsOnly): string {
  return d.spec.template.spec.containers[0]!.args.join(' ');
}

async function listRequests(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await op.operator.metrics.apiRequests.get()).values) {
    if (v.labels.verb === 'LIST') out[String(v.labels.resource)] = (out[String(v.labels.resource)] ?? 0) + v.value;
  }
  return out;
}

test('an API-server restart in the middle of a rollout: the rollout completes, status of another writer survives', async () => {
  await createJd(ns.name, 'roll', { gpusPerReplica: 1, replicas: 3 });
  await waitForCondition(ns.name, 'roll', 'Ready', 'True');
  // Status another writer owns (the metrics collector's tokensPerSecond).
  await patchJd('roll', { status: { tokensPerSecond: 321 } }, 'status');

  await patchJd('roll', { spec: { maxContextLength: 131072 } });
  // The restart as soon as the operator has applied the new template: KWOK pods turn Ready at once, so a
  // rollout of three can be over within a second, shorter than a poll of the JambaDeployment's status.
  await waitFor(async () => deploymentArgs(await getDeployment('roll')).includes('--max-model-len 131072'),
    { description: 'the operator to apply the new template', timeoutMs: 20_000, intervalMs: 50 });
  await restartApiServer({ downtimeMs: 2000 });

  const [jd] = await expectAllConverged(ns.name);
  expect(jd!.status?.tokensPerSecond).toBe(321);
  expect(deploymentArgs(await getDeployment('roll'))).toContain('--max-model-len 131072');
  await expectNoDuplicates(ns.name, [jd!]);
}, 240_000);

test('watches forced to expire (etcd compacted, API server restarted): the informers relist and catch up on what changed', async () => {
  const before = await listRequests();
  await compactEtcd();
  await restartApiServer({ downtimeMs: 1000 });
  // Changes the operator can only learn of by relisting: a deleted child and a scaled JambaDeployment.
  await kubectl(['delete', 'service', 'roll', '-n', ns.name, '--wait=true']);
  await patchJd('roll', { spec: { replicas: 2 } });
  await waitFor(async () => {
    const after = await listRequests();
    return ['jambadeployments', 'deployments', 'services', 'poddisruptionbudgets', 'pods'].every((r) => (after[r] ?? 0) > (before[r] ?? 0));
  }, { description: 'every informer to relist after its watch expired', timeoutMs: 60_000, intervalMs: 500 });
  const jds = await expectAllConverged(ns.name);
  expect(jds[0]!.status?.tokensPerSecond).toBe(321);
  await expectNoDuplicates(ns.name, jds);
}, 240_000);

test('100 JambaDeployments created, then all edited at once: each converges on its edit, nothing duplicated', async () => {
  // 100 one-GPU pods, replaced one at a time by the edit, on nodes of their own (pinned there, so
  // whatever other files left on the shared nodes cannot starve them).
  addedNodes.push(...await addGpuNodes(13, { prefix: 'chaos-gpu-node-' }));
  const onOwnNodes = { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: addedNodes }] }] } } } };
  const names = Array.from({ length: 100 }, (_, i) => `many-${String(i).padStart(3, '0')}`);
  await Promise.all(names.map((name) => createJd(ns.name, name, { gpusPerReplica: 1, scheduling: onOwnNodes })));
  await expectAllConverged(ns.name, 180_000);

  await Promise.all(names.map((name, i) => patchJd(name, { spec: { maxContextLength: 65536 + i } })));
  const jds = await expectAllConverged(ns.name, 240_000);
  // Every one of the burst, next to whatever the earlier tests of this file left.
  expect(jds.map((jd) => jd.metadata.name).filter((n) => names.includes(n!))).toHaveLength(names.length);
  const deps = JSON.parse(await kubectl(['get', 'deployments', '-n', ns.name, '-o', 'json'])) as { items: { metadata: { name: string }; spec: { template: { spec: { containers: { args: string[] }[] } } } }[] };
  for (const [i, name] of names.entries()) {
    const args = deps.items.find((d) => d.metadata.name === name)!.spec.template.spec.containers[0]!.args.join(' ');
    expect(args).toContain(`--max-model-len ${65536 + i}`);
  }
  await expectNoDuplicates(ns.name, jds);
}, 600_000);
