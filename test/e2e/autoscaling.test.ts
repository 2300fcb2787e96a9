// Autoscaling on the real node, end to end: a CPU JambaDeployment (tiny fixture model) whose pods run for
// real (containerd, kubelet, CNI bridge); the operator (in this process) scrapes each pod's /metrics at its
// pod IP — no override — and the official openai client streams through the Service's ClusterIP. Heavy
// streaming load scales it up; a light load afterwards lets it scale back down while requests keep flowing
// (pod-deletion-cost, endpoint removal, preStop, the runtime's drain); not one request fails or is cut.
import OpenAI from 'openai';
import type { V1PodList } from '@kubernetes/client-node';
import { REAL_NODE, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { getJd, jdManifest, useInProcessOperator } from '../operator/support.js';
import { tinyCpuSpec } from './specs.js';
import { startStreamingLoad, type LoadResult } from './support.js';

const ns = withNamespace('e2e-autoscaling');
useInProcessOperator(ns);
const NAME = 'tiny';
const LOADED_MS = 240_000;

async function readyPods(): Promise<V1PodList['items']> {
  const list = await kubectlJson<V1PodList>(['-n', ns.name, 'get', 'pods', '-l', `app.kubernetes.io/instance=${NAME}`]);
  return list.items.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

/** A light load: one streamed completion of 8 tokens a second. */
function lightLoad(client: OpenAI): { stop: () => Promise<LoadResult> } {
  const result: LoadResult = { completed: 0, cut: 0, errors: [] };
  let stopping = false;
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      try {
        let finish: string | null | undefined;
        const stream = await client.completions.create({ model: 'jamba-tiny', prompt: `light ${i}`, max_tokens: 8, stream: true });
        for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
        if (finish) result.completed++;
        else result.cut++;
      } catch (error) {
        result.errors.push(`light request ${i}: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return { stop: async () => { stopping = true; await loop; return result; } };
}

test('scales up under streaming load and back down under a light one, on real pods, losing no request', async () => {
  await kubectl(['apply', '-f', '-'], {
    input: jdManifest(ns.name, NAME, {
      ...tinyCpuSpec(),
      autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, targetTokensPerSecondPerReplica: 20, metricsWindowSeconds: 10, scaleDownStabilizationSeconds: 20 },
    }),
  });
  await waitFor(async () => (await readyPods()).length === 1, { description: 'the first replica Ready', timeoutMs: LOADED_MS, intervalMs: 500 });
  const svc = await kubectlJson<{ spec: { clusterIP: string; ports: { port: number }[] } }>(['-n', ns.name, 'get', 'service', NAME]);
  const client = new OpenAI({ baseURL: `http://${svc.spec.clusterIP}:${svc.spec.ports[0]!.port}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 60_000 });

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

  const light = lightLoad(client);
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
