import { withSpecDefaults } from '../api/defaults.js';
import { parseDownloadArgs } from '../../runtime/cmd/download.js';
import { desiredDeployment, desiredDownloadJob, desiredPodDisruptionBudget, desiredReplicas, desiredService, runtimeArgs } from './desired.js';
import { MODEL_CACHE_LABEL } from './labels.js';
import { jambaDeployment } from './testing/fixtures.js';

describe('desired children', () => {
  const jd = jambaDeployment();
  const dep = desiredDeployment(jd);
  const pod = dep.spec!.template.spec!;
  const c = pod.containers[0]!;

  test('defaults are the server\'s: 8 GPUs, ExpertsInt8, 256K context, port 8000', () => {
    expect(jd.spec).toMatchObject({ gpusPerReplica: 8, quantization: 'ExpertsInt8', maxContextLength: 262144, replicas: 1 });
    expect(jd.spec.gpu).toEqual({ resourceName: 'nvidia.com/gpu', minMemoryMiB: 80000 });
    expect(jd.spec.runtime).toMatchObject({ port: 8000, startupTimeoutSeconds: 3600 });
  });

  test('the runtime container is restricted: non-root, read-only root filesystem, no escalation or capabilities', () => {
    expect(c.securityContext).toEqual({
      runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.volumeMounts).toContainEqual({ name: 'dshm', mountPath: '/dev/shm' }); // its one writable scratch space
  });

  test('pods request the GPUs as limits, tolerate the taint, need the GPU memory', () => {
    expect(c.resources?.limits).toEqual({ 'nvidia.com/gpu': '8' });
    expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    expect(pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'nvidia.com/gpu.memory', operator: 'Gt', values: ['79999'] }] },
    ]);
  });

  test('gpusPerReplica 0: the CPU backend, no GPU limit, affinity or toleration; the user\'s own scheduling kept', () => {
    const cpu = desiredDeployment(jambaDeployment({
      model: { name: 'tiny', source: { hostPath: { path: '/data/tiny' } } }, gpusPerReplica: 0,
      runtime: { resources: { requests: { cpu: '1' }, limits: { memory: '2Gi' } } },
      scheduling: { tolerations: [{ key: 'dedicated', operator: 'Exists' }] },
    })).spec!.template.spec!;
    const rc = cpu.containers[0]!;
    expect(rc.args).toContain('cpu');
    expect(rc.args![rc.args!.indexOf('--backend') + 1]).toBe('cpu');
    expect(rc.args).not.toContain('--tensor-parallel-size');
    expect(rc.resources).toEqual({ requests: { cpu: '1' }, limits: { memory: '2Gi' } });
    expect(cpu.tolerations).toEqual([{ key: 'dedicated', operator: 'Exists' }]);
    expect(cpu.affinity).toBeUndefined();
    const bare = desiredDeployment(jambaDeployment({ model: { name: 'tiny', source: { hostPath: { path: '/data/tiny' } } }, gpusPerReplica: 0 })).spec!.template.spec!;
    expect(bare.tolerations).toBeUndefined();
    expect(bare.containers[0]!.resources).toEqual({});
  });

  test('runtime args come from the spec', () => {
    expect(c.command).toEqual(['jamba-runtime']);
    expect(c.args).toEqual(['serve', '--model', '/models/jamba-mini', '--host', '0.0.0.0', '--port', '8000', '--backend', 'cuda',
      '--tensor-parallel-size', '8', '--quantization', 'expertsint8', '--max-model-len', '262144',
      '--served-model-name', 'ai21labs/AI21-Jamba-1.5-Mini', '--drain-timeout', '120']);
    const custom = withSpecDefaults({ model: { name: 'm', source: { hostPath: { path: '/data/m' } } }, quantization: 'None', gpusPerReplica: 2, maxContextLength: 8192, runtime: { port: 9000, maxNumSeqs: 64, args: ['--seed', '1'] } });
    expect(runtimeArgs(custom, '/models')).toEqual(['serve', '--model', '/models', '--host', '0.0.0.0', '--port', '9000', '--backend', 'cuda',
      '--tensor-parallel-size', '2', '--quantization', 'none', '--max-model-len', '8192', '--served-model-name', 'm', '--drain-timeout', '120',
      '--max-num-seqs', '64', '--seed', '1']);
  });

  test('probes never kill a loading pod; graceful termination; read-only model; memory /dev/shm', () => {
    expect(c.startupProbe).toMatchObject({ httpGet: { path: '/ready' }, periodSeconds: 2, failureThreshold: 1800 });
    expect(c.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(c.livenessProbe?.httpGet?.path).toBe('/health');
    expect(c.lifecycle?.preStop?.sleep?.seconds).toBe(10);
    expect(pod.terminationGracePeriodSeconds).toBe(10 + 120 + 5);
    expect(c.volumeMounts).toContainEqual({ name: 'model', mountPath: '/models', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'model', persistentVolumeClaim: { claimName: 'weights', readOnly: true } });
    expect(pod.volumes).toContainEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } });
  });

  test('rollout never surges (no spare GPU node needed); owner reference set', () => {
    expect(dep.spec?.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
    expect(dep.metadata?.ownerReferences).toEqual([{ apiVersion: 'serving.jamba.dev/v1alpha1', kind: 'JambaDeployment', name: 'mini', uid: 'uid-1', controller: true, blockOwnerDeletion: true }]);
  });

  test('products and user affinity terms are ANDed with the GPU memory requirement', () => {
    const d = desiredDeployment(jambaDeployment({
      gpu: { minMemoryMiB: 81000, products: ['NVIDIA-H100-80GB-HBM3'] },
      scheduling: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } } },
    }));
    expect(d.spec?.template.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [
        { key: 'zone', operator: 'In', values: ['a'] },
        { key: 'nvidia.com/gpu.memory', operator: 'Gt', values: ['80999'] },
        { key: 'nvidia.com/gpu.product', operator: 'In', values: ['NVIDIA-H100-80GB-HBM3'] },
      ] },
    ]);
  });

  test('Hugging Face source without a cache claim: each pod downloads in an init container of the runtime image (no pip, no python)', () => {
    const d = desiredDeployment(jambaDeployment({
      model: { name: 'ai21labs/AI21-Jamba-1.5-Mini', source: { huggingFace: { repo: 'ai21labs/AI21-Jamba-1.5-Mini', tokenSecretRef: { name: 'hf' }, endpoint: 'http://mirror:8080' } } },
    }), { runtimeImage: 'jamba-runtime:local' });
    const init = d.spec?.template.spec?.initContainers;
    expect(init).toHaveLength(1);
    expect(init![0]).toMatchObject({
      name: 'download', image: 'jamba-runtime:local', command: ['jamba-runtime'],
      args: ['download', '--repo', 'ai21labs/AI21-Jamba-1.5-Mini', '--revision', 'main', '--dir', '/models/ai21labs/AI21-Jamba-1.5-Mini/main',
        '--metrics-port', '9100', '--progress-interval', '10', '--termination-message-path', '/dev/termination-log', '--no-fsync'],
      volumeMounts: [{ name: 'model', mountPath: '/models' }],
    });
    expect(init![0]!.env).toEqual([
      { name: 'HF_ENDPOINT', value: 'http://mirror:8080' },
      { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf', key: 'token' } } },
    ]);
    expect(d.spec?.template.spec?.containers[0]?.args).toContain('/models/ai21labs/AI21-Jamba-1.5-Mini/main');
    expect(d.spec?.template.spec?.volumes).toContainEqual({ name: 'model', emptyDir: {} });
    // The downloader's parser accepts exactly what the operator generates.
    // Into the pod's own emptyDir without the flush to disk (it cannot outlive what a flush protects against).
    expect(parseDownloadArgs(init![0]!.args!.slice(1))).toMatchObject({ repo: 'ai21labs/AI21-Jamba-1.5-Mini', revision: 'main', metricsPort: 9100, fsync: false });
  });

  test('Hugging Face source with a cache claim: no init container, the claim read-only; a download Job per (repo, revision, claim)', () => {
    const source = { huggingFace: { repo: 'ai21labs/AI21-Jamba-1.5-Mini', revision: 'v1', cacheClaimName: 'hf-cache' } };
    const jd = jambaDeployment({ model: { name: 'mini', source } });
    const d = desiredDeployment(jd);
    expect(d.spec?.template.spec?.initContainers).toBeUndefined();
    expect(d.spec?.template.spec?.volumes).toContainEqual({ name: 'model', persistentVolumeClaim: { claimName: 'hf-cache', readOnly: true } });
    expect(d.spec?.template.spec?.containers[0]?.args).toContain('/models/ai21labs/AI21-Jamba-1.5-Mini/v1');
    const job = desiredDownloadJob(jd, 1)!;
    expect(job.metadata?.name).toMatch(/^jamba-download-[0-9a-f]{16}-1$/);
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'JambaDeployment', name: 'mini', controller: true });
    const pod = job.spec!.template.spec!;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.securityContext).toEqual({ fsGroup: 65532, fsGroupChangePolicy: 'OnRootMismatch' });
    expect(pod.volumes).toEqual([{ name: 'model', persistentVolumeClaim: { claimName: 'hf-cache' } }]);
    expect(pod.containers[0]!.args).toContain('/models/ai21labs/AI21-Jamba-1.5-Mini/v1');
    // The shared cache's files are flushed to disk before the marker says they are complete.
    expect(parseDownloadArgs(pod.containers[0]!.args!.slice(1))).toMatchObject({ dir: '/models/ai21labs/AI21-Jamba-1.5-Mini/v1', fsync: true });
    expect(pod.containers[0]!.resources).toBeUndefined(); // no GPU for a download
    expect(pod.containers[0]!.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true });
    expect(job.spec?.template.metadata?.labels).toEqual({ [MODEL_CACHE_LABEL]: job.metadata!.labels![MODEL_CACHE_LABEL] });
    // Another JambaDeployment of the same revision and claim shares the Job; another revision or claim does not.
    const same = jambaDeployment({ model: { name: 'other', source } }, { name: 'other' });
    expect(desiredDownloadJob(same, 1)!.metadata?.name).toBe(job.metadata?.name);
    const otherRevision = jambaDeployment({ model: { name: 'mini', source: { huggingFace: { ...source.huggingFace, revision: 'v2' } } } });
    const otherClaim = jambaDeployment({ model: { name: 'mini', source: { huggingFace: { ...source.huggingFace, cacheClaimName: 'c2' } } } });
    expect(new Set([job, desiredDownloadJob(otherRevision, 1)!, desiredDownloadJob(otherClaim, 1)!].map((j) => j.metadata?.name)).size).toBe(3);
    expect(desiredDownloadJob(jambaDeployment(), 1)).toBeUndefined();
  });

  test.each([
    // spec.replicas, autoscaling, desired
    [3, undefined, 3],
    [3, { enabled: false, minReplicas: 5, maxReplicas: 9 }, 3],
    [3, { enabled: true, minReplicas: 5, maxReplicas: 9 }, 5],
    [12, { enabled: true, minReplicas: 5, maxReplicas: 9 }, 9],
    [0, undefined, 0],
  ])('replicas %i with autoscaling %j → %i', (replicas, autoscaling, expected) => {
    expect(desiredReplicas(jambaDeployment({ replicas, ...(autoscaling ? { autoscaling } : {}) }).spec)).toBe(expected);
  });

  test.each([
    // spec.replicas, autoscaling enabled, the autoscaler's count, desired
    [3, true, 7, 7],
    [3, true, 12, 9],
    [3, true, 1, 5],
    [3, false, 7, 3],
  ])('replicas %i, autoscaling enabled %s, autoscaler says %i → %i (the operator owns replicas only while enabled)', (replicas, enabled, autoscaled, expected) => {
    const spec = jambaDeployment({ replicas, autoscaling: { enabled, minReplicas: 5, maxReplicas: 9, targetTokensPerSecondPerReplica: 100 } }).spec;
    expect(desiredReplicas(spec, autoscaled)).toBe(expected);
  });

  test('Service on the OpenAI port, PDB allows one replica down', () => {
    expect(desiredService(jd).spec).toMatchObject({ type: 'ClusterIP', selector: { 'serving.jamba.dev/jambadeployment': 'mini' }, ports: [{ port: 8000, targetPort: 'http' }] });
    expect(desiredPodDisruptionBudget(jambaDeployment({ replicas: 2 }))!.spec).toMatchObject({ maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow' });
  });

  test.each([
    [0, undefined, false],
    [1, undefined, false],
    [2, undefined, true],
    [1, { enabled: true, minReplicas: 1, maxReplicas: 4 }, true],
    [3, { enabled: true, minReplicas: 1, maxReplicas: 1 }, false],
    [1, { enabled: false, minReplicas: 1, maxReplicas: 4 }, false],
    [3, { enabled: false, minReplicas: 1, maxReplicas: 1 }, true],
  ])('replicas %i, autoscaling %j → a PDB: %s (none while one pod at most can run: it would guard nothing)', (replicas, autoscaling, expected) => {
    const spec = { replicas, ...(autoscaling ? { autoscaling: { ...autoscaling, targetTokensPerSecondPerReplica: 100 } } : {}) };
    expect(desiredPodDisruptionBudget(jambaDeployment(spec)) !== undefined).toBe(expected);
  });
});

test('the installation\'s runtime image replaces the CRD default, never an image the spec names', () => {
  const image = (jd: ReturnType<typeof jambaDeployment>, runtimeImage?: string) => desiredDeployment(jd, { runtimeImage }).spec!.template.spec!.containers[0]!.image;
  expect(image(jambaDeployment())).toBe('ghcr.io/jamba-serving/jamba-runtime:0.1.0');
  expect(image(jambaDeployment(), 'registry.local/jamba-runtime:dev')).toBe('registry.local/jamba-runtime:dev');
  expect(image(jambaDeployment({ runtime: { image: 'example.com/mine:1' } }), 'registry.local/jamba-runtime:dev')).toBe('example.com/mine:1');
});
