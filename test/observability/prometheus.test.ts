// A real Prometheus scrapes real runtime pods under a streaming load and the chart's two operator pods,
// all on the real node, through scrape configs generated from the ServiceMonitor and PodMonitor the
// chart installed, the way the Prometheus Operator generates them: Kubernetes SD against the local API
// server, the monitors' selectors and relabelings applied by Prometheus itself; the chart's rules are
// loaded. On the way: the autoscaler's bounds scale the JambaDeployment down and back up (two scaling
// decisions, read by the operator from the pods themselves); the pod that leaves drains, answering 503
// meanwhile; a second JambaDeployment's pod crash-loops (a target down) and its autoscaler cannot reach
// the Prometheus it names (autoscaler errors). Then every dashboard query and every operand of every
// alert returns data, and every rule evaluates without error. The serving dashboard's panels are
// rendered from this Prometheus to PNGs (docs/monitoring/ has them).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { V1Pod, V1PodList } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { renderDashboardPngs } from '../../tools/monitoring/render-panels.js';
import { REAL_NODE, helm, kubeconfigPath, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { CHART_DIR, committedDashboards, dashboardPromQL, findObject, promqlOperands, type K8sObject } from '../monitoring/chart.js';
import { getJd, installCrd, installThirdPartyCrds, jdManifest, waitForCondition } from '../operator/support.js';
import { tinyCpuSpec } from '../e2e/specs.js';
import { serviceClient, startStreamingLoad } from '../e2e/support.js';
import { Prometheus } from './prometheus.js';
import { kubernetesSd, podMonitorScrapeConfigs, serviceMonitorScrapeConfigs } from './scrape-config.js';

const ns = withNamespace('obs');
const release = `obs-${randomBytes(3).toString('hex')}`;
const JD_LABEL = 'serving.jamba.dev/jambadeployment';
const LOADED_MS = 180_000;
let monitoring: K8sObject[];
let runtimeJob: string;
let operatorJob: string;
let prometheus: Prometheus | undefined;
let loadStarted = 0;
let stopLoad: (() => Promise<unknown>) | undefined;

async function apply(name: string, spec: Record<string, unknown>): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: jdManifest(ns.name, name, spec) });
}

async function pods(selector: string): Promise<V1Pod[]> {
  return (await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', selector])).items;
}

const names = (list: V1Pod[]): string[] => list.map((p) => p.metadata!.name!).sort();

/** The runtime's own address: the pod IP and its `http` port (the host routes to the real node's pods). */
function podUrl(pod: V1Pod): string {
  const port = pod.spec!.containers[0]!.ports!.find((p) => p.name === 'http')!.containerPort;
  return `http://${pod.status!.podIP}:${port}`;
}

async function complete(url: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'jamba-tiny', ...body }), signal });
  await res.arrayBuffer();
  return res.status;
}

/**
 * Keeps `count` long streams in flight on `url` (each started again when it ends) until the server refuses
 * or cuts them: sharing the engine, each lasts many seconds, so SIGTERM finds them there and they hold the drain.
 */
function holdStreams(url: string, count: number): { ended: Promise<unknown>; stop: () => Promise<void> } {
  const abort = new AbortController();
  const hold = async () => {
    while (!abort.signal.aborted) {
      const status = await complete(url, { prompt: 'Once upon a time', max_tokens: 3000, ignore_eos: true, stream: true }, abort.signal).catch(() => 0);
      if (status !== 200) return;
    }
  };
  const ended = Promise.all(Array.from({ length: count }, hold));
  return { ended, stop: async () => { abort.abort(); await ended; } };
}

beforeAll(async () => {
  await installCrd();
  await installThirdPartyCrds('prometheus-operator');
  // The operator as users install it, monitoring included, watching this namespace only; the autoscaler
  // every 2 s so that the bounds below take effect at once.
  await helm(['install', release, CHART_DIR, '-n', ns.name, '--set', 'crds.install=false', '--set', 'watch.scope=namespaces',
    '--set', `watch.namespaces={${ns.name}}`, '--set', 'autoscaler.intervalSeconds=2', '--wait', '--timeout', '180s']);
  // What a Prometheus Operator would read: the monitors and rules the release created.
  monitoring = (await kubectlJson<{ items: K8sObject[] }>(['get', 'servicemonitors,podmonitors,prometheusrules', '-n', ns.name, '-l', `app.kubernetes.io/instance=${release}`])).items;
  const serviceMonitor = findObject(monitoring, 'ServiceMonitor');
  const podMonitor = findObject(monitoring, 'PodMonitor');
  runtimeJob = `${ns.name}/${podMonitor.metadata.name}`;
  const services = (await kubectlJson<{ items: K8sObject[] }>(['get', 'services', '-n', ns.name, '-l', `app.kubernetes.io/instance=${release}`])).items;
  operatorJob = findObject(services, 'Service').metadata.name;

  // Bounds of 2..2 hold the replica count while the autoscaler measures the pods.
  await apply('mini', { ...tinyCpuSpec({ replicas: 2, drainTimeoutSeconds: 4 }), autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 2, targetTokensPerSecondPerReplica: 50 } });
  // A pod that crash-loops (its port never answers), and an autoscaler source that cannot be read.
  await apply('faulty', { ...tinyCpuSpec({ args: ['--no-such-flag'] }), autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 1, targetTokensPerSecondPerReplica: 50, prometheusUrl: 'http://127.0.0.1:9' } });
  await Promise.all([
    waitForCondition(ns.name, 'mini', 'Ready', 'True', undefined, LOADED_MS),
    waitForCondition(ns.name, 'faulty', 'Degraded', 'True', 'CrashLoopBackOff', LOADED_MS),
  ]);
  await waitFor(async () => (await getJd(ns.name, 'mini')).status?.readyReplicas === 2, { description: 'mini with 2 ready replicas', timeoutMs: LOADED_MS });

  const discovery = { sd: kubernetesSd(kubeconfigPath()), interval: '1s', timeout: '1s' };
  prometheus = await Prometheus.start({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: ['rules.yaml'],
    scrape_configs: [...serviceMonitorScrapeConfigs(serviceMonitor, discovery), ...podMonitorScrapeConfigs(podMonitor, discovery)],
  }, { 'rules.yaml': stringify({ groups: findObject(monitoring, 'PrometheusRule').spec.groups }) });

  // Every target scraped before anything happens, so rates and increases see it all.
  const count = async (expr: string) => Number((await prometheus!.query(`count(${expr})`))[0]?.value?.[1] ?? 0);
  await waitFor(async () => (await count(`up{job="${operatorJob}"} == 1`)) === 2 && (await count(`up{job="${runtimeJob}", jambadeployment="mini"} == 1`)) === 2 &&
    (await count(`up{job="${runtimeJob}", jambadeployment="faulty"}`)) === 1, { description: 'both operator pods and all three runtime pods discovered, the healthy ones up', timeoutMs: 60_000 });
  await new Promise((r) => setTimeout(r, 2000));

  // A streaming load through the Service, as users send it (the client's default retries).
  loadStarted = Date.now() / 1000;
  const load = startStreamingLoad(await serviceClient(ns.name, 'mini', 2), { workers: 2, maxTokens: 24 });
  stopLoad = load.stop;
  await waitFor(() => load.completed() >= 10, { description: 'the load to get going', timeoutMs: 60_000 });
  await new Promise((r) => setTimeout(r, 5000));

  // Bounds of 1..1: a scaling decision down. The pod that leaves drains (preStop, then SIGTERM) with long
  // streams in flight; asked directly meanwhile, it answers 503; the streams are cut at its drain timeout.
  const before = names(await pods(`${JD_LABEL}=mini`));
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":1,"maxReplicas":1}}}']);
  const leaving = await waitFor(async () => (await pods(`${JD_LABEL}=mini`)).find((p) => p.metadata?.deletionTimestamp), { description: 'a mini pod terminating', timeoutMs: 60_000, intervalMs: 200 });
  const url = podUrl(leaving);
  const held = holdStreams(url, 4);
  await waitFor(async () => {
    const res = await fetch(`${url}/ready`);
    return res.status === 503 && ((await res.json()) as { status: string }).status === 'draining';
  }, { description: `${leaving.metadata!.name} draining`, timeoutMs: 60_000, intervalMs: 100 });
  const refused = await Promise.all(Array.from({ length: 5 }, () => complete(url, { prompt: 'Hello', max_tokens: 4 }).catch(() => 0)));
  expect(refused.filter((s) => s === 503).length).toBeGreaterThan(0);
  // Not aborted: a client gone would end the drain early; the pod cuts the streams itself.
  await Promise.race([held.ended, new Promise((r) => setTimeout(r, 30_000))]);
  await held.stop();
  await waitFor(async () => names(await pods(`${JD_LABEL}=mini`)).length === 1, { description: 'the leaving pod gone', timeoutMs: 60_000 });

  // Bounds of 2..2 again: a scaling decision up, a new pod that loads its weights under the load.
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":2,"maxReplicas":2}}}']);
  await waitFor(async () => {
    const list = await pods(`${JD_LABEL}=mini`);
    return list.length === 2 && list.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }, { description: 'mini back at 2 ready pods', timeoutMs: LOADED_MS, intervalMs: 500 });
  expect(names(await pods(`${JD_LABEL}=mini`))).not.toEqual(before);
  await new Promise((r) => setTimeout(r, 5000));
  const result = await load.stop();
  stopLoad = undefined;
  expect(result.errors).toEqual([]);
  expect(result.completed).toBeGreaterThan(20);
  await new Promise((r) => setTimeout(r, 2000));
}, 600_000);

afterAll(async () => {
  await stopLoad?.();
  await prometheus?.stop();
  await helm(['uninstall', release, '-n', ns.name, '--ignore-not-found', '--wait', '--timeout', '120s']).catch(() => undefined);
}, 150_000);

const nonEmpty = async (expr: string) => ({ expr, series: (await prometheus!.query(expr)).length > 0 });

test('the monitors select what they should: every runtime pod, both operator pods, nothing else, with the chart\'s labels', async () => {
  const up = await prometheus!.query('up');
  const byJob = (job: string) => up.filter((s) => s.metric.job === job).map((s) => s.metric.pod).sort();
  // The PodMonitor: exactly the pods with the JambaDeployment label (the operator pods beside them are dropped).
  const runtimePods = names(await pods(JD_LABEL));
  expect(runtimePods).toHaveLength(3);
  expect(byJob(runtimeJob)).toEqual(runtimePods);
  // The ServiceMonitor: the metrics Service's endpoints, the two operator pods.
  expect(byJob(operatorJob)).toEqual(names(await pods(`app.kubernetes.io/instance=${release}`)));
  expect(byJob(operatorJob)).toHaveLength(2);
  const tokens = await prometheus!.query('jamba_generation_tokens_total');
  expect(tokens.length).toBeGreaterThan(0);
  for (const s of tokens) expect(s.metric).toMatchObject({ namespace: ns.name, jambadeployment: 'mini', container: 'runtime', endpoint: 'http', node: REAL_NODE });
  // honorLabels: the per-JambaDeployment series keep the JambaDeployment's namespace; the leader alone exports them.
  const desired = await prometheus!.query('jamba_jambadeployment_replicas_desired');
  expect(desired.map((s) => [s.metric.namespace, s.metric.jambadeployment, s.metric.job]).sort()).toEqual([[ns.name, 'faulty', operatorJob], [ns.name, 'mini', operatorJob]]);
  expect((await prometheus!.query('sum(jamba_operator_is_leader)'))[0]!.value![1]).toBe('1');
});

test('every dashboard query returns data', async () => {
  const results = await Promise.all(dashboardPromQL('1m').map(async (q) => ({ where: q.where, ...(await nonEmpty(q.expr)) })));
  expect(results.filter((r) => !r.series)).toEqual([]);
});

test('every operand of every alert returns data, and every rule evaluates without error', async () => {
  const groups = findObject(monitoring, 'PrometheusRule').spec.groups as Array<{ rules: Array<{ alert: string; expr: string }> }>;
  const exprs = groups.flatMap((g) => g.rules.map((r) => r.expr));
  const parsed = await promqlOperands(exprs);
  const operands = parsed.flatMap((p) => p.operands ?? []);
  expect(operands.length).toBeGreaterThanOrEqual(exprs.length);
  const results = await Promise.all(operands.map(nonEmpty));
  expect(results.filter((r) => !r.series)).toEqual([]);

  const rules = await prometheus!.api<{ groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> }>('rules');
  const loaded = rules.groups.flatMap((g) => g.rules);
  expect(loaded).toHaveLength(9);
  expect(loaded.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
});

test('what happened is what the metrics say: 503s while draining, the crash-looping pod down, two scaling decisions, real tokens/s', async () => {
  const value = async (expr: string) => Number((await prometheus!.query(expr))[0]?.value?.[1] ?? NaN);
  // The drained pod is gone: its series are stale now, so look back over the last minutes.
  expect(await value('sum(last_over_time(jamba_http_requests_total{jambadeployment="mini", code="503", route="/v1/completions"}[5m]))')).toBeGreaterThan(0);
  expect((await prometheus!.query(`up{job="${runtimeJob}"} == 0`)).map((s) => s.metric.jambadeployment)).toEqual(['faulty']);
  expect(await value('sum(jamba_operator_scaling_decisions_total{jambadeployment="mini", direction="down"})')).toBe(1);
  expect(await value('sum(jamba_operator_scaling_decisions_total{jambadeployment="mini", direction="up"})')).toBe(1);
  expect(await value('sum(jamba_operator_scaling_decisions_total{jambadeployment="faulty"})')).toBe(0);
  expect(await value('sum(jamba_operator_autoscaler_scrape_errors_total{jambadeployment="faulty", source="prometheus"})')).toBeGreaterThan(0);
  // The operator pods read the runtime pods' own /metrics: the autoscaler measured the load.
  expect(await value('max(max_over_time(jamba_jambadeployment_tokens_per_second{jambadeployment="mini"}[5m]))')).toBeGreaterThan(0);
  expect(await value('sum(increase(jamba_generation_tokens_total[5m]))')).toBeGreaterThan(100);
});

test('the serving dashboard\'s panels render to PNG from this Prometheus (JAMBA_MONITORING_PICTURES=DIR keeps them)', async () => {
  const outDir = process.env.JAMBA_MONITORING_PICTURES ?? mkdtempSync(path.join(tmpdir(), 'jamba-panels-'));
  const written = await renderDashboardPngs({ prometheus: prometheus!.url, uid: 'jamba-serving', start: loadStarted - 5, end: Date.now() / 1000, outDir });
  expect(written.length).toBe(committedDashboards().find((d) => d.json.uid === 'jamba-serving')!.json.panels.length);
  for (const file of written) expect(readFileSync(file).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  if (!process.env.JAMBA_MONITORING_PICTURES) rmSync(outDir, { recursive: true, force: true });
}, 60_000);
