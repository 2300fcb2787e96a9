// The operator as users run it: installed by the chart, from the project's operator image, as two pods on
// the real node that reach the API server in-cluster (their ServiceAccount token, the `kubernetes`
// Service). One holds the Lease and reconciles; when its pod is deleted the standby takes over and
// reconciles the next change. The JambaDeployment itself runs on the KWOK GPU nodes.
import { randomBytes } from 'node:crypto';
import type { V1PodList } from '@kubernetes/client-node';
import { REAL_NODE, helm, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { CHART_DIR } from '../monitoring/chart.js';
import { createJd, getJd, installCrd, waitForCondition } from '../operator/support.js';

const ns = withNamespace('chart-pods');
const release = `jp-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await installCrd();
}, 60_000);

afterAll(async () => {
  await helm(['uninstall', release, '-n', ns.name, '--ignore-not-found', '--wait', '--timeout', '120s']).catch(() => undefined);
}, 150_000);

async function operatorPods(): Promise<V1PodList['items']> {
  const list = await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', `app.kubernetes.io/instance=${release}`]);
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** The pod whose identity holds the Lease (identities start with the pod name). */
async function leader(): Promise<string | undefined> {
  const lease = await kubectlJson<{ spec: { holderIdentity?: string } }>(['get', 'lease', 'jamba-operator-leader', '-n', ns.name]).catch(() => undefined);
  const holder = lease?.spec.holderIdentity;
  return holder ? (await operatorPods()).map((p) => p.metadata!.name!).find((name) => holder.startsWith(`${name}-`)) : undefined;
}

test('two operator pods from the chart on the real node: one leads and reconciles, the standby takes over', async () => {
  await helm(['install', release, CHART_DIR, '-n', ns.name, '--set', 'crds.install=false', '--set', 'monitoring.enabled=false',
    '--set', 'watch.scope=namespaces', '--set', `watch.namespaces={${ns.name}}`, '--wait', '--timeout', '180s']);
  const pods = await operatorPods();
  expect(pods.map((p) => p.spec?.nodeName)).toEqual([REAL_NODE, REAL_NODE]);
  const first = await waitFor(leader, { description: 'an operator pod holding the Lease', timeoutMs: 60_000, intervalMs: 500 });

  await createJd(ns.name, 'served', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'served', 'Ready', 'True', undefined, 120_000);

  await kubectl(['delete', 'pod', first, '-n', ns.name, '--wait=false']);
  const second = await waitFor(async () => {
    const now = await leader();
    return now && now !== first ? now : undefined;
  }, { description: 'the standby holding the Lease', timeoutMs: 90_000, intervalMs: 500 });
  expect(second).not.toBe(first);
  await kubectl(['patch', 'jambadeployment', 'served', '-n', ns.name, '--type=merge', '-p', '{"spec":{"replicas":2}}']);
  await waitFor(async () => ((await getJd(ns.name, 'served')).status?.readyReplicas === 2 ? true : undefined), {
    description: 'the new leader scaled served to 2 ready replicas', timeoutMs: 120_000, intervalMs: 500,
  });
}, 600_000);
