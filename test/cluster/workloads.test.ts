// The controller manager runs: Deployments get ReplicaSets and Pods, and owners' deletion is cascaded;
// KWOK plays the kubelet's part of re-reporting pods Ready after the node-lifecycle controller took it away.
import type { V1ConfigMap, V1Deployment, V1Pod, V1PodList, V1ReplicaSetList } from '@kubernetes/client-node';
import { KWOK_CPU_TOLERATION, KWOK_ONLY, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';

const ns = withNamespace('workloads');

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', labels: { app: 'web' } },
  spec: {
    replicas: 3,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      // KWOK runs these (no real image): they tolerate the KWOK CPU node's taint and are kept off the real node.
      spec: { containers: [{ name: 'web', image: 'registry.example/web:1' }], tolerations: [KWOK_CPU_TOLERATION], affinity: KWOK_ONLY },
    },
  },
};

async function podsOf(app: string): Promise<V1PodList> {
  return kubectlJson<V1PodList>(['-n', ns.name, 'get', 'pods', '-l', `app=${app}`]);
}

test('a Deployment gets a ReplicaSet and its pods Running, and deleting it removes both', async () => {
  await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: JSON.stringify(deployment) });

  const ready = await waitFor(
    async () => {
      const d = await kubectlJson<V1Deployment>(['-n', ns.name, 'get', 'deployment', 'web']);
      return d.status?.readyReplicas === 3 ? d : undefined;
    },
    { description: 'deployment web to have 3 ready replicas' },
  );
  expect(ready.status?.availableReplicas).toBe(3);

  const replicaSets = await kubectlJson<V1ReplicaSetList>(['-n', ns.name, 'get', 'replicasets', '-l', 'app=web']);
  expect(replicaSets.items).toHaveLength(1);
  const rsOwner = replicaSets.items[0]!.metadata?.ownerReferences?.[0];
  expect(rsOwner).toMatchObject({ kind: 'Deployment', name: 'web', uid: ready.metadata?.uid });

  const pods = await podsOf('web');
  expect(pods.items).toHaveLength(3);
  for (const pod of pods.items) {
    expect(pod.status?.phase).toBe('Running');
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'ReplicaSet', uid: replicaSets.items[0]!.metadata?.uid });
  }

  // Background propagation: the API deletes the Deployment and the garbage collector its dependents.
  await kubectl(['-n', ns.name, 'delete', 'deployment', 'web', '--cascade=background', '--wait=false']);
  await waitFor(
    async () => {
      const rs = await kubectlJson<V1ReplicaSetList>(['-n', ns.name, 'get', 'replicasets', '-l', 'app=web']);
      return rs.items.length === 0 && (await podsOf('web')).items.length === 0;
    },
    { description: 'the garbage collector to delete the ReplicaSet and pods of deployment web' },
  );
});

test('deleting an owner garbage-collects its dependent, and leaves unrelated objects alone', async () => {
  await kubectl(['-n', ns.name, 'create', 'configmap', 'owner', '--from-literal=role=owner']);
  await kubectl(['-n', ns.name, 'create', 'configmap', 'bystander', '--from-literal=role=bystander']);
  const owner = await kubectlJson<V1ConfigMap>(['-n', ns.name, 'get', 'configmap', 'owner']);
  const dependent = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'dependent',
      ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }],
    },
    data: { role: 'dependent' },
  };
  await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: JSON.stringify(dependent) });

  await kubectl(['-n', ns.name, 'delete', 'configmap', 'owner']);
  await waitFor(
    async () => {
      const names = (await kubectl(['-n', ns.name, 'get', 'configmaps', '-o', 'name'])).split('\n');
      return !names.includes('configmap/dependent');
    },
    { description: 'the garbage collector to delete configmap dependent' },
  );
  const left = (await kubectl(['-n', ns.name, 'get', 'configmaps', '-o', 'name'])).split('\n');
  expect(left).toContain('configmap/bystander');
});

test('a KWOK pod the node-lifecycle controller marked NotReady is Ready again, as a kubelet re-reports it', async () => {
  const name = 'readiness';
  await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: JSON.stringify({ ...deployment, metadata: { name, labels: { app: name } }, spec: { ...deployment.spec, replicas: 1, selector: { matchLabels: { app: name } }, template: { ...deployment.spec.template, metadata: { labels: { app: name } } } } }) });
  const ready = (d: V1Deployment) => d.status?.readyReplicas === 1;
  await waitFor(async () => ready(await kubectlJson<V1Deployment>(['-n', ns.name, 'get', 'deployment', name])), { description: `deployment ${name} ready` });
  const [pod] = (await podsOf(name)).items;
  // What the node-lifecycle controller does to the pods of a node whose lease it saw go stale (MarkPodsNotReady).
  const conditions = pod!.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'False', lastTransitionTime: new Date() } : c));
  await kubectl(['-n', ns.name, 'patch', 'pod', pod!.metadata!.name!, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions } })]);
  const again = await waitFor(async () => {
    const p = await kubectlJson<V1Pod>(['-n', ns.name, 'get', 'pod', pod!.metadata!.name!]);
    return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? p : undefined;
  }, { description: 'the pod to be Ready again', timeoutMs: 20_000 });
  expect(again.status?.phase).toBe('Running');
  expect(again.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status).toBe('True');
  await waitFor(async () => ready(await kubectlJson<V1Deployment>(['-n', ns.name, 'get', 'deployment', name])), { description: `deployment ${name} ready again` });
});
