// The operator (in this process) against the real control plane: children, scheduling on the KWOK GPU
// nodes, status, scale, rollout, drift repair, garbage collection, unschedulable without a hot loop.
import type { V1Deployment, V1PodList, V1Service, V1PodDisruptionBudget, CoreV1EventList } from '@kubernetes/client-node';
import { kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import {
  LARGE, condition, createJd, getJd, operatorRequests, operatorWrites, settle, useInProcessOperator, waitForCondition,
} from './support.js';

const ns = withNamespace('op-reconcile');
const op = useInProcessOperator(ns);

function pods(selector: string): Promise<V1PodList> {
  return kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', selector]);
}

function deployment(name: string): Promise<V1Deployment> {
  return kubectlJson<V1Deployment>(['get', 'deployment', '-n', ns.name, name]);
}

const selector = (name: string) => `serving.jamba.dev/jambadeployment=${name}`;
/** The PDBs of a JambaDeployment, by name ('' when it has none). */
const pdbsOf = async (name: string) => (await kubectl(['get', 'pdb', '-n', ns.name, '-l', selector(name), '-o', 'name'])).trim();

test('what a one-replica JambaDeployment costs from creation to Ready: one apply per child (no PDB), a status write per step of the rollout at most, two events, no reads', async () => {
  const before = await op.operator.metrics.apiRequestsByCall();
  await createJd(ns.name, 'costed', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'costed', 'Ready', 'True', 'AllReplicasReady');
  await settle(op.operator);
  const after = await op.operator.metrics.apiRequestsByCall();
  // Informer relists (a watch the API server closed) are not the JambaDeployment's doing.
  const made = Object.fromEntries(Object.entries(after).filter(([k]) => !k.startsWith('LIST ')).map(([k, v]) => [k, v - (before[k] ?? 0)] as const).filter(([, v]) => v !== 0));
  // The status changes at most at each step of the Deployment controller (the Deployment seen, its pod
  // created, its pod ready; steps that come close together coalesce into one write), whatever the
  // number of reconciles the watch events cause; never while our apply is still unseen by that controller.
  const { 'PATCH jambadeployments/status': statusWrites, ...rest } = made;
  expect(rest).toEqual({ 'PATCH deployments': 1, 'PATCH services': 1, 'CREATE events': 2 });
  expect(statusWrites).toBeGreaterThanOrEqual(1);
  expect(statusWrites).toBeLessThanOrEqual(3);
  await kubectl(['delete', 'jd', '-n', ns.name, 'costed', '--wait=true']);
});

describe('a Jamba-1.5-Large JambaDeployment on 8 GPUs', () => {
  beforeAll(async () => {
    await createJd(ns.name, 'large', { model: { name: LARGE, source: { hostPath: { path: '/var/lib/jamba/large' } } } });
  });

  test('gets a Deployment and a Service owned by it; no PDB for its one pod (an eviction may always take it)', async () => {
    const jd = await getJd(ns.name, 'large');
    const owner = { apiVersion: 'serving.jamba.dev/v1alpha1', kind: 'JambaDeployment', name: 'large', uid: jd.metadata.uid, controller: true, blockOwnerDeletion: true };
    const dep = await waitFor(() => kubectlJson<V1Deployment>(['get', 'deployment', '-n', ns.name, 'large', '--show-managed-fields']), { description: 'Deployment large' });
    const svc = await kubectlJson<V1Service>(['get', 'service', '-n', ns.name, 'large']);
    for (const o of [dep, svc]) expect(o.metadata?.ownerReferences).toEqual([owner]);
    expect(await pdbsOf('large')).toBe('');

    const pod = dep.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(dep.spec?.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
    expect(c.resources?.limits).toEqual({ 'nvidia.com/gpu': '8' });
    expect(c.args).toEqual(['serve', '--model', '/models', '--host', '0.0.0.0', '--port', '8000', '--backend', 'cuda',
      '--tensor-parallel-size', '8', '--quantization', 'expertsint8', '--max-model-len', '262144',
      '--served-model-name', LARGE, '--drain-timeout', '120']);
    expect(c.startupProbe).toMatchObject({ httpGet: { path: '/ready', port: 'http' }, periodSeconds: 2, failureThreshold: 1800 });
    expect(c.livenessProbe?.httpGet?.path).toBe('/health');
    expect(c.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(c.lifecycle?.preStop?.sleep?.seconds).toBe(10);
    expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    expect(pod.volumes).toContainEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } });
    expect(pod.volumes).toContainEqual({ name: 'model', hostPath: { path: '/var/lib/jamba/large', type: 'Directory' } });
    expect(c.volumeMounts).toContainEqual({ name: 'model', mountPath: '/models', readOnly: true });
    expect(svc.spec?.ports).toEqual([{ name: 'http', port: 8000, targetPort: 'http', protocol: 'TCP', appProtocol: 'http' }]);
    // Applied with server-side apply under the operator's field manager.
    expect(dep.metadata?.managedFields?.map((f) => f.manager)).toContain('jamba-operator');
  });

  test('its pod lands on a KWOK GPU node and the status turns Ready', async () => {
    const jd = await waitForCondition(ns.name, 'large', 'Ready', 'True', 'AllReplicasReady');
    expect(jd.status).toMatchObject({ replicas: 1, readyReplicas: 1, desiredReplicas: 1, readyText: '1/1', selector: selector('large') });
    const list = await pods(selector('large'));
    expect(list.items).toHaveLength(1);
    expect(list.items[0]!.spec?.nodeName).toMatch(/^gpu-node-/);
    expect(condition(jd, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    const table = await kubectl(['get', 'jd', '-n', ns.name, 'large']);
    expect(table).toMatch(/^NAME\s+MODEL\s+READY\s+TOKENS\/S\s+AGE/);
    expect(table).toMatch(/large\s+ai21labs\/AI21-Jamba-1\.5-Large\s+1\/1/);
  });

  test('events tell what the operator did', async () => {
    const events = await kubectlJson<CoreV1EventList>(['get', 'events', '-n', ns.name, '--field-selector', 'involvedObject.name=large,involvedObject.kind=JambaDeployment']);
    const reasons = events.items.map((e) => `${e.reason}: ${e.message}`);
    expect(reasons).toContain('Created: created Deployment large, Service large');
    expect(reasons.some((r) => r.startsWith('AllReplicasReady'))).toBe(true);
  });

  test('deleting the JambaDeployment garbage-collects its children', async () => {
    await kubectl(['delete', 'jd', '-n', ns.name, 'large', '--wait=true']);
    await waitFor(async () => {
      const left = await kubectl(['get', 'deployment,service,pdb', '-n', ns.name, '-l', selector('large'), '-o', 'name']);
      return left.trim() === '';
    }, { description: 'children of large to be garbage-collected', timeoutMs: 100_000, intervalMs: 1000 });
  }, 120_000);
});

describe('a one-GPU Mini', () => {
  beforeAll(async () => {
    await createJd(ns.name, 'mini', { gpusPerReplica: 1, replicas: 1 });
    await waitForCondition(ns.name, 'mini', 'Ready', 'True');
  });

  test('kubectl scale jd drives the replicas through the scale subresource; from two replicas a PDB keeps one up', async () => {
    expect(await pdbsOf('mini')).toBe('');
    await kubectl(['scale', 'jd/mini', '-n', ns.name, '--replicas=2']);
    const jd = await waitFor(async () => {
      const j = await getJd(ns.name, 'mini');
      return j.status?.readyReplicas === 2 && condition(j, 'Ready')?.status === 'True' ? j : undefined;
    }, { description: 'mini to have 2 ready replicas', timeoutMs: 60_000 });
    expect(jd.status).toMatchObject({ replicas: 2, desiredReplicas: 2, readyText: '2/2' });
    expect((await deployment('mini')).spec?.replicas).toBe(2);
    const scale = JSON.parse(await kubectl(['get', '--raw', `/apis/serving.jamba.dev/v1alpha1/namespaces/${ns.name}/jambadeployments/mini/scale`]));
    expect(scale).toMatchObject({ spec: { replicas: 2 }, status: { replicas: 2, selector: selector('mini') } });
    const pdb = await waitFor(() => kubectlJson<V1PodDisruptionBudget>(['get', 'pdb', '-n', ns.name, 'mini']), { description: 'PDB mini' });
    expect(pdb.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'JambaDeployment', name: 'mini', uid: jd.metadata.uid, controller: true })]);
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow', selector: { matchLabels: { 'serving.jamba.dev/jambadeployment': 'mini' } } });
  });

  test('a spec change rolls out: every pod replaced with the new template', async () => {
    const before = new Set((await pods(selector('mini'))).items.map((p) => p.metadata!.name!));
    expect(before.size).toBe(2);
    await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"maxContextLength":131072}}']);
    await waitFor(async () => {
      const j = await getJd(ns.name, 'mini');
      const list = (await pods(selector('mini'))).items.filter((p) => !p.metadata?.deletionTimestamp);
      const fresh = list.filter((p) => !before.has(p.metadata!.name!) && p.spec?.containers[0]?.args?.includes('131072'));
      return j.status?.observedGeneration === j.metadata.generation && condition(j, 'Ready')?.status === 'True' && fresh.length === 2 && list.length === 2;
    }, { description: 'both mini pods replaced by pods with --max-model-len 131072', timeoutMs: 90_000, intervalMs: 1000 });
    const args = (await deployment('mini')).spec?.template.spec?.containers[0]?.args ?? [];
    expect(args.slice(args.indexOf('--max-model-len'), args.indexOf('--max-model-len') + 2)).toEqual(['--max-model-len', '131072']);
  }, 120_000);

  test('drift: a Deployment edited by hand is restored', async () => {
    await kubectl(['patch', 'deployment', 'mini', '-n', ns.name, '--type=json', '-p',
      '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"example.com/other:1"},{"op":"replace","path":"/spec/replicas","value":5}]']);
    const dep = await waitFor(async () => {
      const d = await deployment('mini');
      return d.spec?.replicas === 2 && d.spec.template.spec?.containers[0]?.image === 'ghcr.io/jamba-serving/jamba-runtime:0.1.0' ? d : undefined;
    }, { description: 'Deployment mini restored', timeoutMs: 30_000 });
    expect(dep.spec?.template.spec?.containers[0]?.args).toContain('131072');
  });

  test('drift: a deleted Service or PDB comes back', async () => {
    const oldUid = (await kubectlJson<V1Service>(['get', 'service', '-n', ns.name, 'mini'])).metadata?.uid;
    await kubectl(['delete', 'service,pdb', 'mini', '-n', ns.name, '--wait=true']);
    const svc = await waitFor(() => kubectlJson<V1Service>(['get', 'service', '-n', ns.name, 'mini']), { description: 'Service mini re-created' });
    expect(svc.metadata?.uid).not.toBe(oldUid);
    await waitFor(() => kubectlJson(['get', 'pdb', '-n', ns.name, 'mini']), { description: 'PDB mini re-created' });
  });

  test('scaled back to one replica, its PDB is deleted', async () => {
    await kubectl(['scale', 'jd/mini', '-n', ns.name, '--replicas=1']);
    await waitFor(async () => (await pdbsOf('mini')) === '', { description: 'PDB mini deleted' });
    expect((await deployment('mini')).spec?.replicas).toBe(1);
  });
});

describe('a JambaDeployment that validates but cannot be scheduled', () => {
  test('is Degraded/Unschedulable with a message that says why, and settles without a hot loop', async () => {
    await createJd(ns.name, 'huge-gpu', { gpusPerReplica: 8, gpu: { minMemoryMiB: 200000 } });
    const jd = await waitForCondition(ns.name, 'huge-gpu', 'Degraded', 'True', 'Unschedulable');
    const degraded = condition(jd, 'Degraded')!;
    expect(degraded.message).toMatch(/^no node has 8 free nvidia\.com\/gpu with ≥ 200000 MiB; 1 pod\(s\) pending \(scheduler: 0\/\d+ nodes are available/);
    expect(condition(jd, 'Ready')).toMatchObject({ status: 'False', reason: 'Unschedulable' });
    expect(jd.status?.readyText).toBe('0/1');
    const events = await kubectl(['get', 'events', '-n', ns.name, '--field-selector', 'involvedObject.name=huge-gpu,reason=Unschedulable', '-o', 'name']);
    expect(events.trim().split('\n')).toHaveLength(1);

    // Let the last status write and events land, then count what the operator does over 10 s.
    await new Promise((r) => setTimeout(r, 3000));
    const writes = await operatorWrites(op.operator);
    const requests = await operatorRequests(op.operator);
    await new Promise((r) => setTimeout(r, 10_000));
    expect((await operatorWrites(op.operator)) - writes).toBeLessThanOrEqual(2);
    expect((await operatorRequests(op.operator)) - requests).toBeLessThanOrEqual(2);
    expect(condition(await getJd(ns.name, 'huge-gpu'), 'Degraded')?.lastTransitionTime).toBe(degraded.lastTransitionTime);
  });
});
