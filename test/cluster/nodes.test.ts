// The fake GPU nodes look like 8×H100-80GB hosts to the scheduler and to anything reading their labels.
import type { V1Node, V1NodeList } from '@kubernetes/client-node';
import { KWOK_CPU_TOLERATION, REAL_NODE, addGpuNodes, kubectl, kubectlJson } from '../harness/cluster.js';

const defaultGpuNodes = ['gpu-node-0', 'gpu-node-1', 'gpu-node-2', 'gpu-node-3'];

function isReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

describe('local cluster nodes', () => {
  let nodes: Map<string, V1Node>;

  beforeAll(async () => {
    const list = await kubectlJson<V1NodeList>(['get', 'nodes']);
    nodes = new Map(list.items.map((node) => [node.metadata!.name!, node]));
  });

  test('kubectl get nodes lists the four GPU nodes and the CPU node, all Ready', async () => {
    const table = await kubectl(['get', 'nodes', '--no-headers']);
    for (const name of [...defaultGpuNodes, 'cpu-node-0']) {
      expect(table).toMatch(new RegExp(`^${name}\\s+Ready\\s`, 'm'));
      expect(isReady(nodes.get(name)!)).toBe(true);
    }
  });

  test.each(defaultGpuNodes)('%s offers 8 nvidia.com/gpu with GPU feature discovery labels and the GPU taint', (name) => {
    const node = nodes.get(name)!;
    expect(node.status?.capacity?.['nvidia.com/gpu']).toBe('8');
    expect(node.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
    expect(node.metadata?.labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
      'nvidia.com/gpu.memory': '81559',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.present': 'true',
      'kubernetes.io/hostname': name,
      type: 'kwok',
    });
    expect(node.spec?.taints).toEqual([{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }]);
    expect(Number(node.status?.allocatable?.cpu)).toBeGreaterThanOrEqual(96);
  });

  test('the KWOK CPU node has no GPUs, and a taint so that nothing lands there by accident', () => {
    const node = nodes.get('cpu-node-0')!;
    expect(node.status?.allocatable?.['nvidia.com/gpu']).toBeUndefined();
    expect(node.metadata?.labels?.['nvidia.com/gpu.present']).toBeUndefined();
    expect(node.spec?.taints).toEqual([{ key: KWOK_CPU_TOLERATION.key, value: 'true', effect: 'NoSchedule' }]);
  });

  test('the real node is Ready, untainted, without GPUs, and runs containerd', () => {
    const node = nodes.get(REAL_NODE)!;
    expect(isReady(node)).toBe(true);
    expect(node.spec?.taints ?? []).toEqual([]);
    expect(node.status?.allocatable?.['nvidia.com/gpu']).toBeUndefined();
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\//);
    expect(node.metadata?.labels).toMatchObject({ type: 'real' });
  });

  test('addGpuNodes adds Ready nodes of another GPU type to the running cluster', async () => {
    const names = await addGpuNodes(2, {
      prefix: 'test-a100-node-',
      product: 'NVIDIA-A100-SXM4-80GB',
      memoryMiB: 81920,
      family: 'ampere',
    });
    try {
      expect(names).toHaveLength(2);
      for (const name of names) {
        const node = await kubectlJson<V1Node>(['get', 'node', name]);
        expect(isReady(node)).toBe(true);
        expect(node.metadata?.labels?.['nvidia.com/gpu.product']).toBe('NVIDIA-A100-SXM4-80GB');
        expect(node.metadata?.labels?.['nvidia.com/gpu.memory']).toBe('81920');
        expect(node.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
      }
    } finally {
      await kubectl(['delete', 'node', ...names, '--wait=false']);
    }
  });
});
