// Every validation rule of the CRD, enforced by the real API server, with a message that says what to fix.
import path from 'node:path';
import { checkFit, cpuSentence, fitSentence, knownSizing } from '../../operator/api/sizing.js';
import { kubectl, withNamespace } from '../harness/cluster.js';
import { repoRoot } from '../harness/exec.js';
import { LARGE, MINI, createJd, createJdRejected, getJd, installCrd } from './support.js';

const ns = withNamespace('op-validation');
beforeAll(installCrd);

const hostPath = { hostPath: { path: '/models/m' } };

describe('the API server refuses invalid JambaDeployments', () => {
  test.each([
    ['no model source', { model: { name: MINI, source: {} } }, 'model.source must set exactly one of pvc, hostPath or huggingFace'],
    ['two model sources', { model: { name: MINI, source: { ...hostPath, pvc: { claimName: 'w' } } } }, 'model.source must set exactly one of pvc, hostPath or huggingFace'],
    ['minReplicas > maxReplicas', { autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 2, targetTokensPerSecondPerReplica: 100 } }, 'autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas'],
    ['autoscaling without a target', { autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2 } }, 'autoscaling.targetTokensPerSecondPerReplica is required when autoscaling is enabled'],
    ['a Prometheus URL that is not http(s)', { autoscaling: { enabled: true, targetTokensPerSecondPerReplica: 100, prometheusUrl: 'prometheus:9090' } }, 'spec.autoscaling.prometheusUrl in body should match'],
    ['maxContextLength above 256K', { maxContextLength: 262145 }, 'spec.maxContextLength: Invalid value: 262145: spec.maxContextLength in body should be less than or equal to 262144'],
    ['gpusPerReplica 3', { gpusPerReplica: 3 }, 'spec.gpusPerReplica: Unsupported value: 3: supported values: "0", "1", "2", "4", "8"'],
    ['unknown quantization', { quantization: 'fp8' }, 'spec.quantization: Unsupported value: "fp8": supported values: "ExpertsInt8", "None"'],
    ['missing model name', { model: { source: hostPath } }, 'spec.model.name: Required value'],
    ['hostPath not absolute', { model: { name: MINI, source: { hostPath: { path: 'models' } } } }, 'spec.model.source.hostPath.path in body should match'],
    ['negative replicas', { replicas: -1 }, 'spec.replicas in body should be greater than or equal to 0'],
  ])('%s', async (_name, spec, message) => {
    expect(await createJdRejected(ns.name, 'bad', spec)).toContain(message);
  });

  test.each([
    [LARGE, 'None', 8, 80000],
    [LARGE, 'ExpertsInt8', 4, 80000],
    [MINI, 'None', 1, 80000],
  ] as const)('%s with quantization %s on %i×%i MiB does not fit: refused with the sizing module\'s sentence', async (model, quantization, gpus, mib) => {
    const msg = await createJdRejected(ns.name, 'too-big', { model: { name: model, source: hostPath }, quantization, gpusPerReplica: gpus, gpu: { minMemoryMiB: mib } });
    const input = { modelName: model, quantization, maxContextLength: 262144, gpusPerReplica: gpus, minMemoryMiB: mib };
    expect(msg).toContain(`spec: Invalid value: ${fitSentence(input, knownSizing(model)!)}`);
    expect(msg).toContain('use quantization ExpertsInt8');
  });
});

test.each([MINI, LARGE])('%s on the CPU (gpusPerReplica 0): refused with the sizing module\'s sentence', async (model) => {
  const msg = await createJdRejected(ns.name, 'cpu-big', { model: { name: model, source: hostPath }, gpusPerReplica: 0, maxContextLength: 4096 });
  expect(msg).toContain(`spec: Invalid value: ${cpuSentence({ modelName: model, quantization: 'ExpertsInt8' }, knownSizing(model)!)}`);
  expect(msg).not.toContain('does not fit the GPUs');
});

test('the API server and sizing.ts draw the line at the same MiB', async () => {
  // The smallest gpu.minMemoryMiB that fits Large/None at 256K on 8 GPUs, found with the TypeScript estimate.
  const fitsWith = (m: number) => checkFit({ modelName: LARGE, quantization: 'None', maxContextLength: 262144, gpusPerReplica: 8, minMemoryMiB: m }).fits;
  let lo = 80000;
  let hi = 200000;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (fitsWith(mid)) hi = mid; else lo = mid + 1;
  }
  const spec = (m: number) => ({ model: { name: LARGE, source: hostPath }, quantization: 'None', gpu: { minMemoryMiB: m } });
  await createJdRejected(ns.name, 'edge-below', spec(lo - 1));
  await createJd(ns.name, 'edge', spec(lo));
});

test('the examples are valid JambaDeployments', async () => {
  const out = await kubectl(['apply', '--dry-run=server', '-n', ns.name, '-f', path.join(repoRoot, 'examples')]);
  expect(out).toMatch(/jambadeployment.serving.jamba.dev\/jamba-mini created \(server dry run\)/);
  expect(out).toMatch(/jambadeployment.serving.jamba.dev\/jamba-large created \(server dry run\)/);
  expect(out).toMatch(/jambadeployment.serving.jamba.dev\/jamba-tiny created \(server dry run\)/);
});

describe('the API server accepts what fits and fills the defaults', () => {
  test.each([
    ['Large ExpertsInt8 on 8×80 GB', { model: { name: LARGE, source: hostPath } }],
    ['Large None on 8×141 GB (H200)', { model: { name: LARGE, source: hostPath }, quantization: 'None', gpu: { minMemoryMiB: 141000 } }],
    ['Mini None on 2×80 GB', { model: { name: MINI, source: hostPath }, quantization: 'None', gpusPerReplica: 2 }],
    ['Large None with a short context on 8×110 GB', { model: { name: LARGE, source: hostPath }, quantization: 'None', maxContextLength: 4096, gpu: { minMemoryMiB: 110000 } }],
    ['an unknown model is not sized', { model: { name: 'my-org/fine-tuned-jamba', source: hostPath }, quantization: 'None', gpusPerReplica: 1 }],
    ['a small unknown checkpoint on the CPU', { model: { name: 'jamba-tiny', source: hostPath }, quantization: 'None', gpusPerReplica: 0, maxContextLength: 4096 }],
  ])('%s', async (_name, spec) => {
    const name = `ok-${Math.random().toString(36).slice(2, 8)}`;
    await createJd(ns.name, name, spec);
    const jd = await getJd(ns.name, name);
    expect(jd.spec.gpu.resourceName).toBe('nvidia.com/gpu');
    expect(jd.spec.runtime.startupTimeoutSeconds).toBe(3600);
  });

  test('defaults: ExpertsInt8, 256K context, 8 GPUs of ≥ 80000 MiB, port 8000', async () => {
    await createJd(ns.name, 'defaults', { model: { name: MINI, source: { huggingFace: { repo: MINI } } } });
    const jd = await getJd(ns.name, 'defaults');
    expect(jd.spec).toMatchObject({
      quantization: 'ExpertsInt8', maxContextLength: 262144, gpusPerReplica: 8, replicas: 1,
      gpu: { resourceName: 'nvidia.com/gpu', minMemoryMiB: 80000 },
      runtime: { port: 8000, startupTimeoutSeconds: 3600, drainTimeoutSeconds: 120 },
      service: { type: 'ClusterIP', port: 8000 },
    });
    expect(jd.spec.model.source.huggingFace).toEqual({ repo: MINI, revision: 'main' });
  });
});
