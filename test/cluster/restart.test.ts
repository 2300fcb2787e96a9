// restartApiServer() takes the API server down and back with its state intact (etcd keeps running),
// and the controller manager, scheduler and KWOK carry on once their watches reconnect.
import * as k8s from '@kubernetes/client-node';
import {
  KWOK_CPU_TOLERATION,
  KWOK_ONLY,
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
  makeKubeConfig,
  restartApiServer,
  waitFor,
  withNamespace,
} from '../harness/cluster.js';

const ns = withNamespace('restart');

test('the API server restarts, keeps its objects, and the control plane works on afterwards', async () => {
  await kubectl(['-n', ns.name, 'create', 'configmap', 'before', '--from-literal=k=v']);
  const core = makeKubeConfig().makeApiClient(k8s.CoreV1Api);

  await restartApiServer({ downtimeMs: 500 });

  const before = await core.readNamespacedConfigMap({ name: 'before', namespace: ns.name });
  expect(before.data).toEqual({ k: 'v' });

  // The controller manager: a new namespace gets its default ServiceAccount (createTestNamespace waits for it).
  // Its informers re-watch with client-go's reflector backoff, which grows to 30 s while the API server is
  // down (and does not reset between back-to-back restarts, as when another file restarted it just before),
  // so recovery may take up to one full backoff period after /readyz.
  const fresh = await createTestNamespace('restart-after', { readyTimeoutMs: 90_000 });
  await deleteTestNamespace(fresh);

  // The scheduler and KWOK: a new pod is bound and run.
  await core.createNamespacedPod({
    namespace: ns.name,
    body: { metadata: { name: 'after' }, spec: { containers: [{ name: 'main', image: 'registry.example/app:1' }], tolerations: [KWOK_CPU_TOLERATION], affinity: KWOK_ONLY } },
  });
  const pod = await waitFor(
    async () => {
      const p = await core.readNamespacedPod({ name: 'after', namespace: ns.name });
      return p.status?.phase === 'Running' ? p : undefined;
    },
    { description: 'pod after to be Running after the restart' },
  );
  expect(pod.spec?.nodeName).toBe('cpu-node-0');
}, 180_000);
