// The autoscaler in the operator (in this process) against the real control plane, reading the real
// runtime's /metrics. The JambaDeployment's pods are KWOK pods (no process behind their IPs), so this
// test — and only this test — uses the operator's documented pod-address override
// (OperatorOptions.autoscaling.podAddress): each pod, as it appears, is played by one of three real
// runtimes served in this process on loopback (the tiny fixture model), which the test loads with
// completions. Everything else is the operator as deployed: its scrape source, decision, status,
// events, pod-deletion-cost marks and metrics.
import type { CoreV1EventList, V1Deployment, V1PodList } from '@kubernetes/client-node';
import type { Runtime } from '../../runtime/server/runtime.js';
import type { Operator } from '../../operator/controller/operator.js';
import { makeKubeConfig, addGpuNodes, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { createLogger } from '../../operator/observability/logger.js';
import { Operator as OperatorClass } from '../../operator/controller/operator.js';
import { startTestRuntime } from '../runtime/helpers.js';
import { createJd, getJd, installCrd } from './support.js';

const ns = withNamespace('op-autoscale');
const TAINT = { key: 'jamba.dev/test', value: 'autoscaling', effect: 'NoSchedule' };
const SELECTOR = 'serving.jamba.dev/jambadeployment=mini';
let runtimes: Runtime[] = [];
let operator: Operator;
const logs: string[] = [];
let node: string | undefined;
/** Pod name → the runtime playing it, assigned in order of appearance. */
const playedBy = new Map<string, Runtime>();

/** Set by the test that makes every pod's metrics unreadable (a closed port). */
let unreachable = false;

function podAddress(pod: { metadata?: { name?: string } }): string | undefined {
  if (unreachable) return '127.0.0.1:1';
  const name = pod.metadata?.name;
  if (!name) return undefined;
  if (!playedBy.has(name)) {
    const free = runtimes.find((r) => ![...playedBy.values()].includes(r));
    if (!free) return undefined;
    playedBy.set(name, free);
  }
  return `127.0.0.1:${playedBy.get(name)!.port}`;
}

/** Completions from `workers` loops against the runtimes playing the current pods, until `stop` resolves. */
function load(workers: number): { stop: () => Promise<number> } {
  let running = true;
  let failures = 0;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running; i++) {
      const targets = [...playedBy.values()];
      const r = targets[(w + i) % targets.length] ?? runtimes[0]!;
      const res = await fetch(`${r.url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'Hello', max_tokens: 16, ignore_eos: true }),
      }).catch(() => undefined);
      if (res?.status !== 200) failures++;
      await res?.arrayBuffer();
    }
  });
  return { stop: async () => { running = false; await Promise.all(loops); return failures; } };
}

const jd = () => getJd(ns.name, 'mini');
const readyPods = async () => (await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', SELECTOR])).items
  .filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

beforeAll(async () => {
  await installCrd();
  runtimes = await Promise.all([0, 1, 2].map(() => startTestRuntime({ maxNumSeqs: 4 })));
  // A GPU node of its own, tainted for this file, so other files filling the GPU nodes cannot delay it.
  [node] = await addGpuNodes(1, { prefix: `${ns.name}-gpu-` });
  await kubectl(['taint', 'nodes', node!, `${TAINT.key}=${TAINT.value}:${TAINT.effect}`]);
  operator = new OperatorClass({
    kubeConfig: makeKubeConfig(), namespace: ns.name, leaderElection: false, workers: 2,
    logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }),
    autoscaling: { intervalMs: 1000, podAddress },
  });
  await operator.start();
  await createJd(ns.name, 'mini', {
    gpusPerReplica: 1, replicas: 1,
    autoscaling: {
      enabled: true, minReplicas: 1, maxReplicas: 3, targetTokensPerSecondPerReplica: 5,
      metricsWindowSeconds: 10, scaleDownStabilizationSeconds: 10,
    },
    scheduling: { nodeSelector: { 'kubernetes.io/hostname': node }, tolerations: [{ ...TAINT, operator: 'Equal' }] },
  });
  await waitFor(async () => (await readyPods()).length === 1, { description: 'the first replica Ready', timeoutMs: 180_000 });
}, 300_000);

let runtimesClosed: Promise<unknown> | undefined;
const closeRuntimes = () => (runtimesClosed ??= Promise.all(runtimes.map((r) => r.close())));

afterAll(async () => {
  await operator?.stop();
  await closeRuntimes();
  if (node) await kubectl(['delete', 'node', node, '--wait=false']);
  if (process.env.OPERATOR_TEST_LOG) (await import('node:fs')).writeFileSync(process.env.OPERATOR_TEST_LOG, logs.join('\n') + '\n');
});

test('under load it scales up to max on tokens/s, and says so: status, TOKENS/S, decisions, ScalingLimited, events, metrics', async () => {
  const traffic = load(3);
  try {
    await waitFor(async () => (await jd()).status?.desiredReplicas === 3, { description: 'desiredReplicas 3', timeoutMs: 120_000, intervalMs: 500 });
    await waitFor(async () => (await readyPods()).length === 3, { description: 'three replicas Ready', timeoutMs: 180_000 });
    // While loaded at max, demand wants more than 3: pinned.
    const limited = await waitFor(async () => {
      const c = (await jd()).status?.conditions?.find((x) => x.type === 'ScalingLimited');
      return c?.status === 'True' ? c : undefined;
    }, { description: 'ScalingLimited True', timeoutMs: 60_000, intervalMs: 500 });
    expect(limited.reason).toBe('TooManyReplicas');
  } finally {
    expect(await traffic.stop()).toBe(0);
  }
  const s = (await jd()).status!;
  expect(s.tokensPerSecond).toBeGreaterThan(15);
  expect(s.lastScaleTime).toBeDefined();
  const up = s.scalingDecisions!.find((d) => d.to > d.from)!;
  expect(up).toMatchObject({ source: 'scrape', from: 1, reason: expect.stringMatching(/ScaleUp|Saturated/) });
  expect(up.tokensPerSecond).toBeGreaterThan(5);
  expect(up.message).toMatch(/^scale up 1 → \d: [\d.]+ tok\/s from 1 ready replica/);
  // The TOKENS/S printer column reads status.tokensPerSecond.
  expect(await kubectl(['get', 'jd', 'mini', '-n', ns.name])).toMatch(/TOKENS\/S/);
  const dep = await kubectlJson<V1Deployment>(['get', 'deployment', 'mini', '-n', ns.name]);
  expect(dep.spec?.replicas).toBe(3);
  const events = await kubectlJson<CoreV1EventList>(['get', 'events', '-n', ns.name, '--field-selector', 'involvedObject.kind=JambaDeployment']);
  expect(events.items.map((e) => e.reason)).toEqual(expect.arrayContaining(['ScaledUp', 'ScalingLimited']));
  const metrics = await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_decision_duration_seconds');
  expect(Number(/_count (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(1);
}, 400_000);

test('after the load it scales back to min, marking the pods to remove by their requests in flight', async () => {
  await waitFor(async () => (await jd()).status?.desiredReplicas === 1, { description: 'desiredReplicas back to 1', timeoutMs: 120_000, intervalMs: 500 });
  const s = (await jd()).status!;
  // The rate falls over the metrics window, so the count may come down in steps (3 → 2 → 1).
  const down = s.scalingDecisions!.filter((d) => d.to < d.from).pop()!;
  expect(down).toMatchObject({ to: 1, reason: 'ScaleDown' });
  expect(down.message).toMatch(/^scale down [23] → 1: /);
  // Before lowering replicas the operator set every ready pod's deletion cost to its requests in flight (0 now).
  const survivors = await waitFor(async () => {
    const pods = await readyPods();
    return pods.length === 1 ? pods : undefined;
  }, { description: 'one replica left', timeoutMs: 120_000 });
  expect(survivors[0]!.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost']).toBe('0');
  const events = await kubectlJson<CoreV1EventList>(['get', 'events', '-n', ns.name, '--field-selector', 'involvedObject.kind=JambaDeployment']);
  expect(events.items.map((e) => e.reason)).toContain('ScaledDown');
}, 300_000);

test('scale-down removes the replica with fewer requests in flight, not the newest (pod-deletion-cost)', async () => {
  // Runtimes of pods that are gone play new pods.
  const existing = new Set((await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', SELECTOR])).items.map((p) => p.metadata!.name!));
  for (const name of [...playedBy.keys()]) if (!existing.has(name)) playedBy.delete(name);
  const [older] = (await readyPods()).map((p) => p.metadata!.name!);
  // A target no load here reaches: only the bounds move the count in this test.
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":2,"targetTokensPerSecondPerReplica":100000}}}']);
  const newer = await waitFor(async () => {
    const names = (await readyPods()).map((p) => p.metadata!.name!);
    const other = names.find((n) => n !== older);
    return names.length === 2 && other && playedBy.has(other) ? other : undefined;
  }, { description: 'a second replica, played by a runtime', timeoutMs: 120_000 });
  // The newer replica is busy (two requests in flight, below every saturation threshold); the older is idle.
  // Without the marks the ReplicaSet controller would remove the newer one.
  const busy = playedBy.get(newer)!;
  let loading = true;
  const loops = [0, 1].map(async () => {
    while (loading) {
      const res = await fetch(`${busy.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hello', max_tokens: 32, ignore_eos: true }) });
      await res.arrayBuffer();
    }
  });
  try {
    const count = async () => Number(/_count (\d+)/.exec(await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_decision_duration_seconds'))?.[1]);
    const before = await count();
    await waitFor(async () => (await count()) >= before + 2, { description: 'two decisions with the load on', timeoutMs: 30_000 });
    await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":1}}}']);
    const left = await waitFor(async () => {
      const names = (await readyPods()).map((p) => p.metadata!.name!);
      return names.length === 1 ? names : undefined;
    }, { description: 'one replica left', timeoutMs: 120_000 });
    expect(left).toEqual([newer]);
    const kept = (await readyPods())[0]!;
    expect(Number(kept.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost'])).toBeGreaterThan(0);
  } finally {
    loading = false;
    await Promise.all(loops);
  }
}, 300_000);

test('metrics that cannot be read hold the replicas (no scale-down), and the loop goes on', async () => {
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":2}}}']);
  await waitFor(async () => (await readyPods()).length === 2, { description: 'two replicas (min 2)', timeoutMs: 120_000 });
  // No pod answers any more (their addresses now lead to a closed port): each round fails to read any pod.
  // Then min goes back to 1, and an idle JambaDeployment whose metrics cannot be read is held at 2.
  unreachable = true;
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":1}}}']);
  const held = await waitFor(async () => {
    const d = (await jd()).status?.scalingDecisions?.at(-1);
    return d?.reason === 'NoMetrics' && d.from === 2 ? d : undefined;
  }, { description: 'a NoMetrics decision', timeoutMs: 60_000, intervalMs: 500 }).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${JSON.stringify((await jd()).status, null, 1)}`);
  });
  expect(held.message).toBe('holding 2: every metrics source failed');
  const before = Number(/_count (\d+)/.exec(await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_decision_duration_seconds'))?.[1]);
  await waitFor(async () => Number(/_count (\d+)/.exec(await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_decision_duration_seconds'))?.[1]) >= before + 5,
    { description: 'five more decisions', timeoutMs: 60_000 });
  expect((await jd()).status?.desiredReplicas).toBe(2);
  expect((await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_scrape_errors_total'))).toMatch(/source="scrape"} [1-9]/);
}, 300_000);

test('autoscaling off: spec.replicas and the scale subresource rule, and the operator does not fight them', async () => {
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"enabled":false}}}']);
  await kubectl(['scale', 'jd/mini', '-n', ns.name, '--replicas=3']);
  await waitFor(async () => (await kubectlJson<V1Deployment>(['get', 'deployment', 'mini', '-n', ns.name])).spec?.replicas === 3, { description: 'Deployment at 3', timeoutMs: 60_000 });
  const decisions = Number(/_count (\d+)/.exec(await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_decision_duration_seconds'))?.[1]);
  await new Promise((r) => setTimeout(r, 3000)); // three autoscaler intervals
  expect(Number(/_count (\d+)/.exec(await operator.metrics.registry.getSingleMetricAsString('jamba_operator_autoscaler_decision_duration_seconds'))?.[1])).toBe(decisions);
  expect((await jd()).status?.desiredReplicas).toBe(3);
  expect((await kubectlJson<V1Deployment>(['get', 'deployment', 'mini', '-n', ns.name])).spec?.replicas).toBe(3);
}, 200_000);
