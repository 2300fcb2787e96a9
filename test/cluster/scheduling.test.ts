// The real scheduler places GPU pods by nvidia.com/gpu and the GPU taint; KWOK runs what it places.
import type { V1Pod } from '@kubernetes/client-node';
import { PAUSE_IMAGE, REAL_NODE, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';

const ns = withNamespace('scheduling');

function podManifest(name: string, resources: { gpus?: number }, tolerateGpuTaint: boolean): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      containers: [
        {
          name: 'main',
          image: 'registry.example/jamba-runtime:test',
          resources: resources.gpus === undefined ? {} : { limits: { 'nvidia.com/gpu': String(resources.gpus) } },
        },
      ],
      tolerations: tolerateGpuTaint ? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] : [],
    },
  });
}

async function getPod(name: string): Promise<V1Pod> {
  return kubectlJson<V1Pod>(['-n', ns.name, 'get', 'pod', name]);
}

function condition(pod: V1Pod, type: string) {
  return pod.status?.conditions?.find((c) => c.type === type);
}

test('a pod asking for 8 GPUs lands on a GPU node and becomes Running and Ready', async () => {
  await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: podManifest('eight-gpus', { gpus: 8 }, true) });
  const pod = await waitFor(
    async () => {
      const p = await getPod('eight-gpus');
      return p.status?.phase === 'Running' && condition(p, 'Ready')?.status === 'True' ? p : undefined;
    },
    { description: 'pod eight-gpus to be Running and Ready' },
  );
  expect(pod.spec?.nodeName).toMatch(/^gpu-node-\d+$/);
  expect(condition(pod, 'PodScheduled')?.status).toBe('True');
  expect(pod.status?.containerStatuses?.[0]?.ready).toBe(true);
});

test('a pod asking for 9 GPUs stays Pending as Unschedulable', async () => {
  await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: podManifest('nine-gpus', { gpus: 9 }, true) });
  const scheduled = await waitFor(
    async () => condition(await getPod('nine-gpus'), 'PodScheduled'),
    { description: 'the scheduler to decide on pod nine-gpus' },
  );
  expect(scheduled.status).toBe('False');
  expect(scheduled.reason).toBe('Unschedulable');
  expect(scheduled.message).toContain('Insufficient nvidia.com/gpu');
  const pod = await getPod('nine-gpus');
  expect(pod.status?.phase).toBe('Pending');
  expect(pod.spec?.nodeName).toBeUndefined();
});

test('a pod without a GPU request runs for real on the real node, not on the tainted KWOK CPU node', async () => {
  const plain = JSON.parse(podManifest('plain', {}, false));
  // The node's own sandbox image: present in its containerd, so nothing is pulled.
  plain.spec.containers[0].image = PAUSE_IMAGE;
  plain.spec.containers[0].imagePullPolicy = 'Never';
  await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: JSON.stringify(plain) });
  const pod = await waitFor(
    async () => {
      const p = await getPod('plain');
      return p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.state?.running ? p : undefined;
    },
    { description: 'pod plain to be Running on the real node' },
  );
  expect(pod.spec?.nodeName).toBe(REAL_NODE);
  expect(pod.status?.podIP).toMatch(/^10\.213\.\d+\.\d+$/);
  expect(pod.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
});
