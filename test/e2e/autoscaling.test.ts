// Autoscaling on the real node, end to end: a CPU JambaDeployment (tiny fixture model) whose pods run for
// real (containerd, kubelet, CNI bridge); the operator (in this process) scrapes each pod's /metrics at its
// pod IP — no override — and the official openai client streams through the Service's ClusterIP. Heavy
// streaming load scales it up; a light load afterwards lets it scale back down while requests keep flowing
// (pod-deletion-cost, endpoint removal, preStop, the runtime's drain); not one request fails or is cut.
// A noisy constant load, then, settles the count once and holds it: no flapping.
import type { CoreV1EventList, V1PodList } from '@kubernetes/client-node';
import { rng } from '../../runtime/backends/testing.js';
import { REAL_NODE, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { getJd, jdManifest, useInProcessOperator } from '../operator/support.js';
import { tinyCpuSpec } from './specs.js';
import { serviceClient, startPacedLoad, startStreamingLoad, type LoadResult } from './support.js';

const ns = withNamespace('e2e-autoscaling');
useInProcessOperator(ns);
const NAME = 'tiny';
const LOADED_MS = 240_000;

async function readyPods(name = NAME): Promise<V1PodList['items']> {
  const list = await kubectlJson<V1PodList>(['-n', ns.name, 'get', 'pods', '-l', `app.kubernetes.io/instance=${name}`]);
  return list.items.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

test('scales up under streaming load and back down under a light one, on real pods, losing no request', async () => {
  await kubectl(['apply', '-f', '-'], {
    input: jdManifest(ns.name, NAME, {
      ...tinyCpuSpec(),
      autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, targetTokensPerSecondPerReplica: 20, metricsWindowSeconds: 10, scaleDownStabilizationSeconds: 20 },
    }),
  });
  await waitFor(async () => (await readyPods()).length === 1, { description: 'the first replica Ready', timeoutMs: LOADED_MS, intervalMs: 500 });
  const client = await serviceClient(ns.name, NAME);

  const heavy = startStreamingLoad(client, { workers: 3, maxTokens: 16 });
  let heavyResult: LoadResult;
  try {
    await waitFor(async () => (await getJd(ns.name, NAME)).status?.desiredReplicas === 2, { description: 'desiredReplicas 2 under load', timeoutMs: 120_000, intervalMs: 500 });
    const two = await waitFor(async () => {
      const pods = await readyPods();
      return pods.length === 2 ? pods : undefined;
    }, { description: 'two replicas Ready', timeoutMs: LOADED_MS, intervalMs: 500 });
    expect(two.map((p) => p.spec?.nodeName)).toEqual([REAL_NODE, REAL_NODE]);
  } finally {
    heavyResult = await heavy.stop();
  }
  const up = (await getJd(ns.name, NAME)).status!.scalingDecisions!.find((d) => d.to > d.from)!;
  expect(up).toMatchObject({ source: 'scrape', from: 1, to: 2 });
  expect(up.tokensPerSecond).toBeGreaterThan(20);

  // A light load: one streamed completion of 8 tokens a second.
  const light = startPacedLoad(client, { maxTokens: 8, ratePerSecond: () => 1 });
  let lightResult: LoadResult;
  try {
    await waitFor(async () => (await getJd(ns.name, NAME)).status?.desiredReplicas === 1, { description: 'desiredReplicas back to 1 under a light load', timeoutMs: 120_000, intervalMs: 500 });
    await waitFor(async () => {
      const list = await kubectlJson<V1PodList>(['-n', ns.name, 'get', 'pods', '-l', `app.kubernetes.io/instance=${NAME}`]);
      return list.items.length === 1;
    }, { description: 'the removed replica gone (drained)', timeoutMs: LOADED_MS, intervalMs: 500 });
    // Requests keep flowing to the one left.
    const served = await waitFor(async () => (await readyPods()).length === 1, { description: 'one replica serving', timeoutMs: 60_000 });
    expect(served).toBe(true);
  } finally {
    lightResult = await light.stop();
  }
  const down = (await getJd(ns.name, NAME)).status!.scalingDecisions!.filter((d) => d.to < d.from).pop()!;
  expect(down).toMatchObject({ from: 2, to: 1, reason: 'ScaleDown' });
  expect({ heavy: heavyResult.errors, light: lightResult.errors }).toEqual({ heavy: [], light: [] });
  expect([heavyResult.cut, lightResult.cut]).toEqual([0, 0]);
  expect(heavyResult.completed).toBeGreaterThan(10);
  expect(lightResult.completed).toBeGreaterThan(3);
}, 600_000);


// The noisy constant load's numbers, and why they make the test meaningful. Target T = 20 tok/s per replica;
// the offered load is centred on 1.5 T = 30 tok/s, the middle of 2 replicas' band (T, 2T]. After the count
// has settled at 2, the rate moves every 20 s (two autoscaler rounds, so at least one round's 10-s metrics
// window lies inside each level) to a level of a seeded shuffle of ±40% spread evenly: 0.9 T, 1.3 T, 1.7 T,
// 2.1 T; each request's gap is jittered ±30% besides. The 0.9 T level recommends 1 replica and the 2.1 T level
// 3, so a decision without a tolerance band or stabilization (ceil(tokens/s ÷ T) every round) would scale
// down and up: flaps. Ours must hold 2: the 2.1 T level is within the 10% tolerance of 2 × T, a scale-up
// needs two rounds running above 2.2 T (20 s scale-up window), and a scale-down four rounds below T (40 s
// scale-down window), while each level lasts at most two rounds. The 80 s of noise outlast both windows.
const STEADY = 'steady';
const TARGET = 20;
const TOKENS_PER_REQUEST = 10;
const CENTRE = 1.5 * TARGET;
const LEVEL_MS = 20_000;
const JITTER = 0.4;
const LEVELS = 4;

/** `LEVELS` offsets spread evenly over ±JITTER, in an order shuffled by `random` (Fisher–Yates). */
function shuffledLevels(random: () => number): number[] {
  const levels = Array.from({ length: LEVELS }, (_, k) => -JITTER + (2 * JITTER * k) / (LEVELS - 1));
  for (let k = levels.length - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1));
    [levels[k], levels[j]] = [levels[j]!, levels[k]!];
  }
  return levels;
}

test('holds its replica count under a noisy constant load: one scale-up to the settled count, no flap, no failed request', async () => {
  await kubectl(['apply', '-f', '-'], {
    input: jdManifest(ns.name, STEADY, {
      ...tinyCpuSpec(),
      autoscaling: {
        enabled: true, minReplicas: 1, maxReplicas: 3, targetTokensPerSecondPerReplica: TARGET, metricsWindowSeconds: 10,
        scaleUpStabilizationSeconds: 20, scaleDownStabilizationSeconds: 40,
      },
    }),
  });
  await waitFor(async () => (await readyPods(STEADY)).length === 1, { description: 'the first replica Ready', timeoutMs: LOADED_MS, intervalMs: 500 });
  const client = await serviceClient(ns.name, STEADY);
  const random = rng(9);
  const levels = shuffledLevels(random);
  let noisyFrom = Infinity;
  const loadStart = Date.now();
  const load = startPacedLoad(client, {
    maxTokens: TOKENS_PER_REQUEST, gapJitter: 0.3, random,
    ratePerSecond: (elapsedMs) => {
      const at = loadStart + elapsedMs;
      const level = at < noisyFrom ? 0 : levels[Math.min(Math.floor((at - noisyFrom) / LEVEL_MS), LEVELS - 1)]!;
      return (CENTRE * (1 + level)) / TOKENS_PER_REQUEST;
    },
  });
  const seen: number[] = [];
  let result: Awaited<ReturnType<typeof load.stop>>;
  try {
    // The centre alone first: the count settles at 2 (the one scale-up allowed).
    await waitFor(async () => (await getJd(ns.name, STEADY)).status?.desiredReplicas === 2 && (await readyPods(STEADY)).length === 2,
      { description: 'settled at 2 replicas, both Ready', timeoutMs: LOADED_MS, intervalMs: 1000 });
    noisyFrom = Date.now();
    // Then the noise; the desired count as it goes, every 5 s.
    while (Date.now() < noisyFrom + LEVELS * LEVEL_MS) {
      seen.push((await getJd(ns.name, STEADY)).status!.desiredReplicas!);
      await new Promise((r) => setTimeout(r, 5000));
    }
  } finally {
    result = await load.stop();
  }
  const jd = await getJd(ns.name, STEADY);
  const decisions = jd.status!.scalingDecisions!;
  const events = await kubectlJson<CoreV1EventList>(['get', 'events', '-n', ns.name, '--field-selector', `involvedObject.kind=JambaDeployment,involvedObject.name=${STEADY}`]);
  const scalings = events.items.filter((e) => e.reason === 'ScaledUp' || e.reason === 'ScaledDown');
  const report = JSON.stringify({ levels, decisions: decisions.map((d) => `${d.time} ${d.from}→${d.to} ${d.reason} ${d.tokensPerSecond} tok/s: ${d.message}`), seen }, null, 1);

  // One change in all: the initial 1 → 2 (its Event; lastScaleTime not moved since), nothing during the noise.
  expect({ scalings: scalings.map((e) => `${e.reason} ×${e.count ?? 1}`), report }).toEqual({ scalings: ['ScaledUp ×1'], report });
  expect(scalings[0]!.message).toMatch(/^scale up 1 → 2/);
  expect(Date.parse(jd.status!.lastScaleTime!)).toBeLessThanOrEqual(noisyFrom);
  const noisy = decisions.filter((d) => Date.parse(d.time) >= Math.floor(noisyFrom / 1000) * 1000);
  expect(noisy.filter((d) => d.from !== 2 || d.to !== 2)).toEqual([]);
  expect(new Set([...seen, jd.status!.desiredReplicas])).toEqual(new Set([2]));
  // The noise did reach past the band's edges and the damping held: a round within the tolerance or held
  // by a stabilization window (recorded, since its reason differs from the steady rounds').
  expect({ damped: noisy.some((d) => ['WithinTolerance', 'StabilizingDown', 'StabilizingUp'].includes(d.reason)), report }).toEqual({ damped: true, report });
  expect({ errors: result.errors, cut: result.cut, completed: result.completed }).toEqual({ errors: [], cut: 0, completed: result.sent });
  expect(result.sent).toBeGreaterThan(200);
  await kubectl(['-n', ns.name, 'delete', 'jambadeployment', STEADY, '--wait=false']);
}, 480_000);
