// The reconciler against caches that move while its writes are in flight, as they do under load: the
// watch can deliver our write, and the Deployment controller's status update after it, before the
// response to the write itself is handled.
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import type { JambaDeployment, JambaDeploymentStatus } from '../api/jambadeployment.js';
import { ApiError, TransportError, type KubeClient, type RequestSpec } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { silentLogger } from '../observability/logger.js';
import { systemClock } from './backoff.js';
import { Reconciler, type Caches, type Lister } from './reconciler.js';
import { jambaDeployment } from './testing/fixtures.js';
import { asApplied } from './testing/managed-fields.js';

class MutableLister<T extends KubernetesObject> implements Lister<T> {
  current?: T;
  get(): T | undefined {
    return this.current;
  }
  list(): readonly T[] {
    return this.current ? [this.current] : [];
  }
}

const withVersion = <T extends KubernetesObject>(o: T, rv: number, extra: Partial<T> = {}): T =>
  ({ ...structuredClone(o), ...extra, metadata: { ...o.metadata, resourceVersion: String(rv) } });

test('a Deployment status update cached before our apply returns is not hidden behind the apply result', async () => {
  let rv = 10;
  const jd: JambaDeployment = withVersion(jambaDeployment({ replicas: 1 }), rv);
  const caches = {
    jambaDeployments: new MutableLister<JambaDeployment>(), deployments: new MutableLister<V1Deployment>(),
    services: new MutableLister<KubernetesObject>(), podDisruptionBudgets: new MutableLister<KubernetesObject>(),
    inferencePools: new MutableLister<KubernetesObject>(), pods: new MutableLister<KubernetesObject>(),
  };
  caches.jambaDeployments.current = jd;
  const statusWrites: JambaDeploymentStatus[] = [];
  const client = {
    async apply<T extends KubernetesObject>(_path: string, resource: string, object: T): Promise<T> {
      const written = withVersion(asApplied(object), ++rv);
      if (resource === 'deployments') {
        // Before the response arrives: the watch delivers our write, then the controller's status update.
        const ready = withVersion(written as V1Deployment, ++rv, { status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, readyReplicas: 1 } });
        caches.deployments.current = ready;
        return { ...written, status: {} } as T;
      }
      (resource === 'services' ? caches.services : caches.podDisruptionBudgets).current = written;
      return written;
    },
    async request<T>(r: RequestSpec): Promise<T> {
      if (r.resource !== 'jambadeployments/status') return {} as T;
      const { status } = r.body as { status: JambaDeploymentStatus };
      statusWrites.push(status);
      const updated = withVersion(caches.jambaDeployments.current!, ++rv, { status });
      caches.jambaDeployments.current = updated;
      return updated as T;
    },
  } as unknown as KubeClient;
  const reconciler = new Reconciler({ client, caches: caches as unknown as Caches, events: new EventRecorder(client, 'test'), clock: systemClock, log: silentLogger });

  await reconciler.reconcile('ns/mini');
  // The status of the first pass is the apply's view (nothing ready yet); the next event's reconcile
  // must see the cached Deployment, which is newer than our write.
  await reconciler.reconcile('ns/mini');
  const last = statusWrites.at(-1)!;
  expect(last.readyReplicas).toBe(1);
  expect(last.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'AllReplicasReady' });
  // And then it is quiet: nothing more to write.
  expect(await reconciler.reconcile('ns/mini')).toBe('unchanged');
});

test('a child apply that got no answer in time, or a 5xx, is retried without a status verdict; a refusal is Degraded/ApplyFailed', async () => {
  const jd: JambaDeployment = withVersion(jambaDeployment(), 1);
  const caches = {
    jambaDeployments: new MutableLister<JambaDeployment>(), deployments: new MutableLister<V1Deployment>(),
    services: new MutableLister<KubernetesObject>(), podDisruptionBudgets: new MutableLister<KubernetesObject>(),
    inferencePools: new MutableLister<KubernetesObject>(), pods: new MutableLister<KubernetesObject>(),
  };
  caches.jambaDeployments.current = jd;
  let serviceFails: Error | undefined;
  const requests: string[] = [];
  const client = {
    async apply<T extends KubernetesObject>(_path: string, resource: string, object: T): Promise<T> {
      requests.push(`apply ${resource}`);
      if (resource === 'services' && serviceFails) throw serviceFails;
      return withVersion(asApplied(object), 2);
    },
    async request<T>(r: RequestSpec): Promise<T> {
      requests.push(`${r.verb} ${r.resource}${r.resource === 'events' ? ` ${(r.body as { reason: string }).reason}` : ''}`);
      return (r.resource === 'jambadeployments/status' ? withVersion(jd, 3, { status: (r.body as { status: JambaDeploymentStatus }).status }) : {}) as T;
    },
  } as unknown as KubeClient;
  const events = new EventRecorder(client, 'test');
  const reconciler = new Reconciler({ client, caches: caches as unknown as Caches, events, clock: systemClock, log: silentLogger });

  for (const transient of [new TransportError('PATCH /api/v1/namespaces/ns/services/mini: no answer within 4000 ms'), new ApiError('PATCH ...: 503 unavailable', 503)]) {
    serviceFails = transient;
    requests.length = 0;
    await expect(reconciler.reconcile('ns/mini')).rejects.toThrow(/applying Service ns\/mini/);
    await events.flush();
    // The applies that went through are announced (the first time); no status, no Degraded event.
    expect(requests.filter((r) => !r.startsWith('apply') && r !== 'CREATE events Created')).toEqual([]);
    expect(requests).toContain('apply services');
  }
  serviceFails = new ApiError('PATCH ...: 403 forbidden', 403);
  requests.length = 0;
  await expect(reconciler.reconcile('ns/mini')).rejects.toThrow(/forbidden/);
  await events.flush();
  expect(requests).toContain('PATCH jambadeployments/status');
  expect(requests).toContain('CREATE events ApplyFailed');
});
