// The autoscaler's Prometheus source, end to end: the operator (in this process) reads a JambaDeployment's
// load from a real Prometheus (built from its Go module) that scrapes real runtimes (in-process servers,
// tiny fixture model, loopback). The pods are KWOK pods, so the test plays each one with a runtime and
// gives Prometheus that runtime as the pod's target, labelled as the chart's PodMonitor labels pod series
// (namespace, jambadeployment, pod), through a file_sd file it rewrites as pods appear. The operator
// needs no address override here: it only queries Prometheus (spec.autoscaling.prometheusUrl).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { V1PodList } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Runtime } from '../../runtime/server/runtime.js';
import { Operator } from '../../operator/controller/operator.js';
import { createLogger } from '../../operator/observability/logger.js';
import { addGpuNodes, kubectl, kubectlJson, makeKubeConfig, waitFor, withNamespace } from '../harness/cluster.js';
import { Prometheus } from '../observability/prometheus.js';
import { startTestRuntime } from '../runtime/helpers.js';
import { createJd, getJd, installCrd } from './support.js';

const ns = withNamespace('op-autoscale-prom');
const TAINT = { key: 'jamba.dev/test', value: 'autoscaling-prometheus', effect: 'NoSchedule' };
let runtimes: Runtime[] = [];
let prometheus: Prometheus | undefined;
let operator: Operator | undefined;
let node: string | undefined;
let sdDir: string;
const playedBy = new Map<string, Runtime>();
let tracking = true;
let tracker: Promise<void> | undefined;

/** Gives each Ready pod a runtime, and Prometheus the targets, labelled as the PodMonitor would. */
async function trackPods(): Promise<void> {
  while (tracking) {
    const pods = (await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', 'serving.jamba.dev/jambadeployment=mini'])).items;
    for (const p of pods) {
      const ready = !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      const free = runtimes.find((r) => ![...playedBy.values()].includes(r));
      if (ready && !playedBy.has(p.metadata!.name!) && free) playedBy.set(p.metadata!.name!, free);
    }
    const live = new Set(pods.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata!.name!));
    for (const name of [...playedBy.keys()]) if (!live.has(name)) playedBy.delete(name);
    writeFileSync(path.join(sdDir, 'pods.yaml'), stringify([...playedBy].map(([pod, r]) => ({
      targets: [`127.0.0.1:${r.port}`], labels: { namespace: ns.name, jambadeployment: 'mini', pod },
    }))));
    await new Promise((r) => setTimeout(r, 500));
  }
}

const jd = () => getJd(ns.name, 'mini');

beforeAll(async () => {
  await installCrd();
  runtimes = await Promise.all([0, 1].map(() => startTestRuntime({ maxNumSeqs: 4 })));
  sdDir = mkdtempSync(path.join(tmpdir(), 'jamba-autoscale-sd-'));
  writeFileSync(path.join(sdDir, 'pods.yaml'), '[]\n');
  prometheus = await Prometheus.start({
    global: { scrape_interval: '1s' },
    scrape_configs: [{ job_name: 'runtime', scrape_interval: '1s', scrape_timeout: '1s', file_sd_configs: [{ files: [path.join(sdDir, 'pods.yaml')], refresh_interval: '1s' }] }],
  });
  [node] = await addGpuNodes(1, { prefix: `${ns.name}-gpu-` });
  await kubectl(['taint', 'nodes', node!, `${TAINT.key}=${TAINT.value}:${TAINT.effect}`]);
  operator = new Operator({
    kubeConfig: makeKubeConfig(), namespace: ns.name, leaderElection: false, workers: 2,
    logger: createLogger({ level: 'warn' }), autoscaling: { intervalMs: 1000 },
  });
  await operator.start();
  await createJd(ns.name, 'mini', {
    gpusPerReplica: 1, replicas: 1,
    autoscaling: {
      enabled: true, minReplicas: 1, maxReplicas: 2, targetTokensPerSecondPerReplica: 5,
      metricsWindowSeconds: 10, scaleDownStabilizationSeconds: 10, prometheusUrl: prometheus.url,
    },
    scheduling: { nodeSelector: { 'kubernetes.io/hostname': node }, tolerations: [{ ...TAINT, operator: 'Equal' }] },
  });
  tracker = trackPods();
  await waitFor(() => playedBy.size === 1, { description: 'the first replica played by a runtime', timeoutMs: 180_000 });
}, 300_000);

afterAll(async () => {
  tracking = false;
  await tracker;
  await operator?.stop();
  await prometheus?.stop();
  await Promise.all(runtimes.map((r) => r.close()));
  if (sdDir) rmSync(sdDir, { recursive: true, force: true });
  if (node) await kubectl(['delete', 'node', node, '--wait=false']);
});

test('scales up under load and back down after it, on what Prometheus says', async () => {
  let loading = true;
  const loops = [0, 1].map(async (w) => {
    for (let i = 0; loading; i++) {
      const targets = [...playedBy.values()];
      const r = targets[(w + i) % Math.max(targets.length, 1)] ?? runtimes[0]!;
      const res = await fetch(`${r.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hello', max_tokens: 16, ignore_eos: true }) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
  });
  try {
    await waitFor(async () => (await jd()).status?.desiredReplicas === 2, { description: 'desiredReplicas 2', timeoutMs: 120_000, intervalMs: 500 });
  } finally {
    loading = false;
    await Promise.all(loops);
  }
  const up = (await jd()).status!.scalingDecisions!.find((d) => d.to > d.from)!;
  expect(up).toMatchObject({ source: 'prometheus', from: 1, to: 2 });
  expect(up.tokensPerSecond).toBeGreaterThan(5);
  await waitFor(async () => (await jd()).status?.desiredReplicas === 1, { description: 'desiredReplicas back to 1', timeoutMs: 120_000, intervalMs: 500 });
  const down = (await jd()).status!.scalingDecisions!.filter((d) => d.to < d.from).pop()!;
  expect(down).toMatchObject({ source: 'prometheus', from: 2, to: 1, reason: 'ScaleDown' });
}, 400_000);
