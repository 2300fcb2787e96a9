// Drift judged on what the operator owns, against the real API server: other managers' additions
// (`kubectl set env`, `kubectl annotate`) are left alone, quantities the server rewrites (0.5 → 500m)
// converge, an owned field someone else changes is taken back, and a reconcile of a JambaDeployment
// in sync costs no request at all. The reconciler's status writes carry a resourceVersion
// precondition: from a stale cache, they are refused instead of overwriting newer status.
import type { KubernetesObject, V1Deployment, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import type { JambaDeployment } from '../../operator/api/jambadeployment.js';
import { systemClock } from '../../operator/controller/backoff.js';
import { desiredDeployment, desiredPodDisruptionBudget, desiredService } from '../../operator/controller/desired.js';
import { applyEntry } from '../../operator/controller/testing/managed-fields.js';
import { Reconciler, type Caches, type Lister } from '../../operator/controller/reconciler.js';
import { KubeClient } from '../../operator/kube/client.js';
import { EventRecorder } from '../../operator/kube/events.js';
import { silentLogger } from '../../operator/observability/logger.js';
import { RESOURCES, objectPath } from '../../operator/kube/resources.js';
import { kubectl, kubectlJson, makeKubeConfig, waitFor, withNamespace } from '../harness/cluster.js';
import { createJd, getJd, operatorRequests, operatorWrites, reconciles, settle, useInProcessOperator, waitForCondition } from './support.js';

const ns = withNamespace('op-drift');
const op = useInProcessOperator(ns);
const NAME = 'owned';

function deployment(): Promise<V1Deployment> {
  return kubectlJson<V1Deployment>(['get', 'deployment', '-n', ns.name, NAME]);
}

/** Server-side applies of children (status writes and events are not counted). */
async function childApplies(): Promise<number> {
  const m = await op.operator.metrics.apiRequests.get();
  return m.values.filter((v) => v.labels.verb === 'PATCH' && ['deployments', 'services', 'poddisruptionbudgets'].includes(String(v.labels.resource))).reduce((sum, v) => sum + v.value, 0);
}

/** Makes the operator reconcile the JambaDeployment `times` times (an annotation edit each), and waits for it. */
async function triggerReconciles(times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const before = await reconciles(op.operator);
    await kubectl(['annotate', 'jambadeployment', NAME, '-n', ns.name, `test.jamba.dev/poke=${Date.now()}-${i}`, '--overwrite']);
    await waitFor(async () => (await reconciles(op.operator)) > before, { description: 'a reconcile', timeoutMs: 10_000, intervalMs: 50 });
  }
}

beforeAll(async () => {
  // A CPU request as users write it (the API server stores 500m), and an env list of our own that
  // `kubectl set env` will add to. Two replicas, so that it has a PodDisruptionBudget too.
  await createJd(ns.name, NAME, { gpusPerReplica: 1, replicas: 2, runtime: { resources: { requests: { cpu: '0.5', memory: '1Gi' } }, env: [{ name: 'JAMBA_LOG_LEVEL', value: 'info' }] } });
  await waitForCondition(ns.name, NAME, 'Ready', 'True');
  await settle(op.operator);
});

test('the fields the server records for our apply are those the unit tables assume (testing/managed-fields.ts)', async () => {
  const jd = await getJd(ns.name, NAME);
  const withoutDots = (f: object): object => Object.fromEntries(Object.entries(f).filter(([k]) => k !== '.').map(([k, v]) => [k, withoutDots(v as object)]));
  for (const [kind, desired] of [['deployment', desiredDeployment(jd)], ['service', desiredService(jd)], ['pdb', desiredPodDisruptionBudget(jd)!]] as const) {
    const live = await kubectlJson<KubernetesObject>(['get', kind, '-n', ns.name, NAME, '--show-managed-fields']);
    const recorded = live.metadata?.managedFields?.find((e) => e.manager === 'jamba-operator' && e.operation === 'Apply');
    expect(withoutDots(recorded!.fieldsV1 as object)).toEqual(withoutDots(applyEntry(desired).fieldsV1 as object));
  }
});

test('a CPU request written 0.5 converges: the stored 500m is no drift, reconciles cost nothing', async () => {
  expect((await deployment()).spec?.template.spec?.containers[0]?.resources?.requests?.cpu).toBe('500m');
  const [writes, requests] = [await operatorWrites(op.operator), await operatorRequests(op.operator)];
  await triggerReconciles(5);
  expect(await operatorWrites(op.operator)).toBe(writes);
  expect(await operatorRequests(op.operator)).toBe(requests);
});

test('kubectl annotate on the Deployment is left alone', async () => {
  const applies = await childApplies();
  await kubectl(['annotate', 'deployment', NAME, '-n', ns.name, 'team.example.com/owner=search']);
  await settle(op.operator);
  await triggerReconciles(2);
  expect(await childApplies()).toBe(applies);
  expect((await deployment()).metadata?.annotations?.['team.example.com/owner']).toBe('search');
});

test('kubectl set env on the Deployment is left alone (no apply, no Updated event), and stays', async () => {
  const before = await deployment();
  const applies = await childApplies();
  await kubectl(['set', 'env', `deployment/${NAME}`, '-n', ns.name, 'EXTRA_DEBUG=1']);
  // The env change rolls the pods; the operator follows it in status, but applies nothing.
  await waitFor(async () => (await deployment()).metadata?.generation !== before.metadata?.generation, { description: 'the env edit to land' });
  await waitForCondition(ns.name, NAME, 'Ready', 'True');
  await settle(op.operator);
  const requests = await operatorRequests(op.operator);
  await triggerReconciles(3);
  expect(await operatorRequests(op.operator)).toBe(requests);
  const env = (await deployment()).spec?.template.spec?.containers[0]?.env ?? [];
  expect(env).toEqual([{ name: 'JAMBA_LOG_LEVEL', value: 'info' }, { name: 'EXTRA_DEBUG', value: '1' }]);
  const updated = await kubectl(['get', 'events', '-n', ns.name, '--field-selector', `involvedObject.name=${NAME},reason=Updated`, '-o', 'name']);
  expect(updated.trim()).toBe('');
  expect(await childApplies()).toBe(applies);
});

test('an owned field changed by someone else is restored, once', async () => {
  const image = (await deployment()).spec!.template.spec!.containers[0]!.image;
  await kubectl(['set', 'image', `deployment/${NAME}`, '-n', ns.name, `runtime=example.com/other:1`]);
  await waitFor(async () => (await deployment()).spec?.template.spec?.containers[0]?.image === image, { description: 'the image to be restored', timeoutMs: 20_000 });
  await waitFor(() => kubectl(['get', 'events', '-n', ns.name, '--field-selector', `involvedObject.name=${NAME},reason=Updated`, '-o', 'jsonpath={.items[*].message}']),
    { description: 'an Updated event' });
  const message = await kubectl(['get', 'events', '-n', ns.name, '--field-selector', `involvedObject.name=${NAME},reason=Updated`, '-o', 'jsonpath={.items[*].message}']);
  expect(message).toContain('spec.template.spec.containers[0].image');
  // The other manager's additions survive the repair.
  const d = await deployment();
  expect(d.spec?.template.spec?.containers[0]?.env).toContainEqual({ name: 'EXTRA_DEBUG', value: '1' });
  expect(d.metadata?.annotations?.['team.example.com/owner']).toBe('search');
  // And the repair is not repeated.
  await waitForCondition(ns.name, NAME, 'Ready', 'True');
  await settle(op.operator);
  const requests = await operatorRequests(op.operator);
  await triggerReconciles(3);
  expect(await operatorRequests(op.operator)).toBe(requests);
}, 90_000);

test('the reconciler writing status from a stale cache gets 409 instead of overwriting newer status', async () => {
  const stale = await getJd(ns.name, NAME);
  // Someone else (the metrics collector) writes status after our copy was cached.
  const client = new KubeClient(makeKubeConfig());
  const statusPath = objectPath(RESOURCES.jambaDeployments, ns.name, NAME, 'status');
  await client.request({ method: 'PATCH', path: statusPath, verb: 'PATCH', resource: 'jambadeployments/status', body: { status: { tokensPerSecond: 1234 } }, contentType: 'application/merge-patch+json' });
  // A reconciler whose cache still holds the old copy, with a status it will want to rewrite.
  const live = { deployments: await deployment(), services: await kubectlJson<V1Service>(['get', 'service', '-n', ns.name, NAME]), pdbs: await kubectlJson<V1PodDisruptionBudget>(['get', 'pdb', '-n', ns.name, NAME]) };
  const cachedJd: JambaDeployment = { ...stale, status: { ...stale.status, readyReplicas: 0, readyText: '0/2' } };
  const one = <T>(o: T): Lister<T> => ({ get: () => o, list: () => [o] });
  const caches: Caches = {
    jambaDeployments: one(cachedJd), deployments: one(live.deployments), services: one(live.services), podDisruptionBudgets: one(live.pdbs),
    inferencePools: { get: () => undefined, list: () => [] }, pods: { get: () => undefined, list: () => [] },
  };
  const reconciler = new Reconciler({ client, caches, events: new EventRecorder(client, 'test'), clock: systemClock, log: silentLogger });
  await expect(reconciler.reconcile(`${ns.name}/${NAME}`)).rejects.toMatchObject({ statusCode: 409 });
  expect((await getJd(ns.name, NAME)).status).toMatchObject({ tokensPerSecond: 1234, readyReplicas: 2 });
  client.close();
});
