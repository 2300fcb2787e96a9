// A real Prometheus scrapes real runtime processes under load and two real operator processes (leader
// election between them), through scrape configs generated from the chart's ServiceMonitor and
// PodMonitor, with the chart's rules loaded. Until runtime pods run on a real node, the "pods" are the
// JambaDeployment's real pods in the local cluster (KWOK), each played by a `jamba-runtime serve` process
// on loopback: file SD gives each the meta labels Kubernetes SD would, so the monitors' selectors and
// relabelings are applied by Prometheus itself. Then every dashboard query and every operand of every
// alert returns data, and every rule evaluates without error.
// The serving dashboard's panels are rendered from this Prometheus to PNGs (docs/monitoring/ has them).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { renderDashboardPngs } from '../../tools/monitoring/render-panels.js';
import { addGpuNodes, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { committedDashboards, dashboardPromQL, findObject, helmTemplate, promqlOperands, type K8sObject } from '../monitoring/chart.js';
import { createJd, ensureOperatorBuilt, installCrd, spawnOperator, waitForCondition, type OperatorProcess } from '../operator/support.js';
import { loadReference, spawnServe, type ServeProcess } from '../runtime/helpers.js';
import { Prometheus } from './prometheus.js';
import {
  endpointSdLabels, fileSdGroup, podMonitorScrapeConfigs, podSdLabels, serviceMonitorScrapeConfigs, type EndpointTarget, type PodTarget,
} from './scrape-config.js';

const ns = withNamespace('obs');
const RELEASE = 'jamba-operator';
const prompt = loadReference('jamba-tiny').cases[0]!.prompt;
let objects: K8sObject[];
let operators: OperatorProcess[] = [];
let runtimes: ServeProcess[] = [];
let prometheus: Prometheus | undefined;
let sdDir: string;
let loadStarted = 0;
let node: string | undefined;
const TAINT = 'jamba.dev/test=observability';

async function post(url: string, body: Record<string, unknown>): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}

/** Bounded load: `workers` loops of completions and chat completions for `ms`. */
async function load(urls: string[], ms: number, workers = 4): Promise<number> {
  const end = Date.now() + ms;
  let done = 0;
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; Date.now() < end && i < 10_000; i++) {
      const url = urls[(w + i) % urls.length]!;
      const stream = i % 3 === 0;
      if (i % 4 === 1) {
        const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 12, stream }) });
        await res.arrayBuffer();
      } else {
        await post(url, { prompt, max_tokens: 8 + (i % 16), temperature: 0.7, stream });
      }
      done++;
    }
  }));
  return done;
}

beforeAll(async () => {
  ensureOperatorBuilt();
  await installCrd();
  objects = await helmTemplate({ release: RELEASE, namespace: ns.name });
  // Two operators elect a leader (Lease in the namespace, as the chart's POD_NAMESPACE makes it).
  operators = [spawnOperator(ns.name), spawnOperator(ns.name)];
  // A GPU node of its own (tainted for this test only), so other test files filling the GPU nodes cannot delay it.
  [node] = await addGpuNodes(1, { prefix: `${ns.name}-gpu-` });
  await kubectl(['taint', 'nodes', node!, `${TAINT}:NoSchedule`]);
  await createJd(ns.name, 'mini', {
    gpusPerReplica: 1, replicas: 2, autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, targetTokensPerSecondPerReplica: 50 },
    scheduling: { nodeSelector: { 'kubernetes.io/hostname': node }, tolerations: [{ key: TAINT.split('=')[0], operator: 'Equal', value: TAINT.split('=')[1], effect: 'NoSchedule' }] },
  });
  await waitForCondition(ns.name, 'mini', 'Ready', 'True', undefined, 180_000).catch(async (e: Error) => {
    // Say why: the JambaDeployment's status, its pods, and what the operators logged.
    const [jd, pods] = await Promise.all([kubectl(['get', 'jd', 'mini', '-n', ns.name, '-o', 'yaml']), kubectl(['get', 'pods', '-n', ns.name, '-o', 'wide'])]);
    throw new Error(`${e.message}\n${jd}\n${pods}\n${operators.map((o) => o.lines.slice(-15).join('\n')).join('\n---\n')}`);
  });
  await waitFor(() => operators.every((o) => o.port() !== undefined), { description: 'both operators serving /metrics', timeoutMs: 30_000 });
  runtimes = await Promise.all([0, 1].map(() => spawnServe(['--max-num-seqs', '4', '--drain-timeout', '4'])));

  // The JambaDeployment's real pods, each played by a runtime process; a decoy pod without the label must be dropped.
  const pods = await kubectlJson<{ items: Array<{ metadata: { name: string; labels: Record<string, string> }; spec: { nodeName: string; containers: Array<{ name: string; ports?: Array<{ name: string }> }> } }> }>(
    ['get', 'pods', '-n', ns.name, '-l', 'serving.jamba.dev/jambadeployment=mini']);
  expect(pods.items).toHaveLength(2);
  const podTargets: PodTarget[] = pods.items.map((p, i) => ({
    namespace: ns.name, name: p.metadata.name, labels: p.metadata.labels, nodeName: p.spec.nodeName, phase: 'Running',
    container: p.spec.containers[0]!.name, portName: p.spec.containers[0]!.ports![0]!.name, address: new URL(runtimes[i]!.url).host,
  }));
  podTargets.push({ ...podTargets[0]!, name: 'decoy', labels: { app: 'something-else' } });
  const service = findObject(objects, 'Service');
  const endpointTargets: EndpointTarget[] = operators.map((o, i) => ({
    namespace: ns.name, service: service.metadata.name, serviceLabels: service.metadata.labels ?? {}, portName: 'metrics',
    pod: `${RELEASE}-${i}`, container: 'operator', address: `127.0.0.1:${o.port()}`,
  }));

  sdDir = mkdtempSync(path.join(tmpdir(), 'jamba-sd-'));
  writeFileSync(path.join(sdDir, 'pods.yaml'), stringify(podTargets.map((p) => fileSdGroup(p.address, podSdLabels(p)))));
  writeFileSync(path.join(sdDir, 'endpoints.yaml'), stringify(endpointTargets.map((e) => fileSdGroup(e.address, endpointSdLabels(e)))));
  const discovery = (file: string) => ({ sd: () => ({ file_sd_configs: [{ files: [path.join(sdDir, file)], refresh_interval: '1s' }] }), interval: '1s', timeout: '1s' });
  const rules = { groups: findObject(objects, 'PrometheusRule').spec.groups };
  prometheus = await Prometheus.start({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: ['rules.yaml'],
    scrape_configs: [
      ...serviceMonitorScrapeConfigs(findObject(objects, 'ServiceMonitor'), discovery('endpoints.yaml')),
      ...podMonitorScrapeConfigs(findObject(objects, 'PodMonitor'), discovery('pods.yaml')),
    ],
  }, { 'rules.yaml': stringify(rules) });

  // Every target scraped at least once before anything happens, so rates and increases see it all.
  await waitFor(async () => ((await prometheus!.query('up == 1')).length === 4 ? true : undefined), { description: 'all four targets up in Prometheus', timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 2000));

  // Load on both replicas; a scale down and back up (two scaling decisions) on the way.
  loadStarted = Date.now() / 1000;
  const urls = runtimes.map((r) => r.url);
  const loading = load(urls, 40_000);
  await new Promise((r) => setTimeout(r, 5000));
  // The operators own the replica count (autoscaling is on) but cannot read these KWOK pods' metrics, so
  // they hold it; the bounds still apply: max 1 scales down, then min 2 back up.
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"maxReplicas":1}}}']);
  await waitFor(async () => (await kubectlJson<{ status?: { desiredReplicas?: number } }>(['get', 'jd', 'mini', '-n', ns.name])).status?.desiredReplicas === 1, { description: 'desired 1' });
  await new Promise((r) => setTimeout(r, 8000));
  await kubectl(['patch', 'jd', 'mini', '-n', ns.name, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":2,"maxReplicas":2}}}']);
  expect(await loading).toBeGreaterThan(20);

  // One replica shuts down: a stream far longer than its 4 s drain timeout keeps it draining (scraped
  // every second meanwhile), requests meanwhile get 503, then the stream is cut and the process is gone.
  const leaving = runtimes[1]!;
  const stream = fetch(`${leaving.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, max_tokens: 3000, ignore_eos: true, stream: true }) }).then((r) => r.arrayBuffer()).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  leaving.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  const refused = await Promise.all(Array.from({ length: 5 }, () => post(leaving.url, { prompt, max_tokens: 4 }).catch(() => 0)));
  expect(refused.filter((s) => s === 503).length).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, 2500));
  await stream;
  await leaving.exited;
  await new Promise((r) => setTimeout(r, 3000));
}, 330_000);

afterAll(async () => {
  await prometheus?.stop();
  for (const r of runtimes) r.child.kill('SIGKILL');
  for (const o of operators) o.child.kill('SIGTERM');
  await Promise.all(operators.map((o) => o.exited));
  if (sdDir) rmSync(sdDir, { recursive: true, force: true });
  if (node) await kubectl(['delete', 'node', node, '--wait=false']);
});

const nonEmpty = async (expr: string) => ({ expr, series: (await prometheus!.query(expr)).length > 0 });

test('the monitors select what they should: both replicas and both operators, not the decoy, with the chart\'s labels', async () => {
  const up = await prometheus!.query('up');
  const byJob = (job: string) => up.filter((s) => s.metric.job === job).map((s) => s.metric.pod).sort();
  expect(byJob(`${ns.name}/${RELEASE}-runtime`)).toHaveLength(2);
  expect(byJob(`${ns.name}/${RELEASE}-runtime`)).not.toContain('decoy');
  expect(byJob(`${RELEASE}-metrics`)).toEqual([`${RELEASE}-0`, `${RELEASE}-1`]);
  const tokens = await prometheus!.query('jamba_generation_tokens_total');
  for (const s of tokens) expect(s.metric).toMatchObject({ namespace: ns.name, jambadeployment: 'mini', container: 'runtime', endpoint: 'http' });
  // honorLabels: the per-JambaDeployment series keep the JambaDeployment's namespace.
  const desired = await prometheus!.query('jamba_jambadeployment_replicas_desired');
  expect(desired.map((s) => [s.metric.namespace, s.metric.jambadeployment, s.metric.job])).toEqual([[ns.name, 'mini', `${RELEASE}-metrics`]]);
  // Exactly one operator leads.
  expect((await prometheus!.query('sum(jamba_operator_is_leader)'))[0]!.value![1]).toBe('1');
});

test('every dashboard query returns data', async () => {
  const results = await Promise.all(dashboardPromQL('1m').map(async (q) => ({ where: q.where, ...(await nonEmpty(q.expr)) })));
  expect(results.filter((r) => !r.series)).toEqual([]);
});

test('every operand of every alert returns data, and every rule evaluates without error', async () => {
  const groups = findObject(objects, 'PrometheusRule').spec.groups as Array<{ rules: Array<{ alert: string; expr: string }> }>;
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

test('what the load did is what the metrics say: 503s while draining, a target down, two scaling decisions', async () => {
  const value = async (expr: string) => Number((await prometheus!.query(expr))[0]?.value?.[1] ?? NaN);
  // The drained replica is gone: its series are stale now, so look back over the last minutes.
  expect(await value('sum(last_over_time(jamba_http_requests_total{code="503", route="/v1/completions"}[5m]))')).toBeGreaterThan(0);
  expect(await value(`count(up{job="${ns.name}/${RELEASE}-runtime"} == 0)`)).toBe(1);
  expect(await value('sum(jamba_operator_scaling_decisions_total{direction="down"})')).toBe(1);
  expect(await value('sum(jamba_operator_scaling_decisions_total{direction="up"})')).toBe(1);
  expect(await value('sum(increase(jamba_generation_tokens_total[5m]))')).toBeGreaterThan(100);
});

test('the serving dashboard\'s panels render to PNG from this Prometheus (JAMBA_MONITORING_PICTURES=DIR keeps them)', async () => {
  const outDir = process.env.JAMBA_MONITORING_PICTURES ?? mkdtempSync(path.join(tmpdir(), 'jamba-panels-'));
  const written = await renderDashboardPngs({ prometheus: prometheus!.url, uid: 'jamba-serving', start: loadStarted - 5, end: Date.now() / 1000, outDir });
  expect(written.length).toBe(findObjectPanels());
  for (const file of written) expect(readFileSync(file).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  if (!process.env.JAMBA_MONITORING_PICTURES) rmSync(outDir, { recursive: true, force: true });
}, 60_000);

function findObjectPanels(): number {
  return committedDashboards().find((d) => d.json.uid === 'jamba-serving')!.json.panels.length;
}
