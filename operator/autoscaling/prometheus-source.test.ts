// The Prometheus source against a real Prometheus (built from its Go module into .tools/bin, as the
// monitoring tests use it) scraping real runtimes (in-process servers over the tiny fixture model) every
// second, with the labels the chart's PodMonitor gives runtime pods (namespace, jambadeployment, pod).
import type { Runtime } from '../../runtime/server/runtime.js';
import { Prometheus } from '../../test/observability/prometheus.js';
import { postJson, startTestRuntime, waitFor } from '../../test/runtime/helpers.js';
import type { MetricsQuery } from './metrics-source.js';
import { PrometheusSource, prometheusQueries } from './prometheus-source.js';

let runtimes: Runtime[] = [];
let prometheus: Prometheus;
let source: PrometheusSource;
const query: MetricsQuery = {
  namespace: 'team-a', jambaDeployment: 'mini', windowSeconds: 30, tokens: 'Generation',
  pods: [{ uid: '1', name: 'mini-a' }, { uid: '2', name: 'mini-b' }, { uid: '3', name: 'mini-never-scraped' }],
};

beforeAll(async () => {
  runtimes = await Promise.all([0, 1].map(() => startTestRuntime()));
  const target = (r: Runtime, pod: string, namespace = 'team-a') => ({ targets: [new URL(r.url).host], labels: { namespace, jambadeployment: 'mini', pod } });
  prometheus = await Prometheus.start({
    global: { scrape_interval: '1s' },
    scrape_configs: [{
      job_name: 'runtime', scrape_interval: '1s', scrape_timeout: '1s',
      // The same pod name in another namespace must not be read.
      static_configs: [target(runtimes[0]!, 'mini-a'), target(runtimes[1]!, 'mini-b'), target(runtimes[1]!, 'mini-a', 'team-b')],
    }],
  });
  source = new PrometheusSource({ url: prometheus.url });
  await waitFor('three targets scraped twice', async () => (await prometheus.query('count_over_time(up[1m]) >= 2')).length === 3, 30_000);
}, 90_000);

afterAll(async () => {
  await source?.close();
  await prometheus?.stop();
  await Promise.all(runtimes.map((r) => r.close()));
});

test('reads each pod of the JambaDeployment: tokens/s from rate(), gauges, and when it was sampled', async () => {
  for (let k = 0; k < 6; k++) {
    const res = await postJson(runtimes[0]!, '/v1/completions', { prompt: 'Hello', max_tokens: 10, ignore_eos: true });
    expect(res.status).toBe(200);
  }
  // Scraped after the load: rate() sees all 60 tokens within its 30 s window.
  const after = Date.now();
  await waitFor('a scrape after the load', async () => Number((await prometheus.query('max(timestamp(jamba_generation_tokens_total))'))[0]?.value?.[1] ?? 0) * 1000 > after + 1000, 20_000);
  const r = await source.read(query);
  expect(r).toMatchObject({ failed: false, errors: [] });
  expect([...r.pods.keys()].sort()).toEqual(['mini-a', 'mini-b']);
  const a = r.pods.get('mini-a')!;
  const b = r.pods.get('mini-b')!;
  // rate() extrapolates to the window's edges, so the 60 tokens read as a little more.
  expect(a.tokensPerSecond! * 30).toBeGreaterThan(60 * 0.8);
  expect(a.tokensPerSecond! * 30).toBeLessThan(60 * 1.6);
  expect(b.tokensPerSecond).toBe(0);
  expect(a).toMatchObject({ waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, stateUsage: 0 });
  expect(Date.now() - a.sampledAt).toBeLessThan(5000);
});

test('a pod Prometheus can no longer scrape is missing (stale), not its last value', async () => {
  await runtimes[1]!.close();
  const closed = Date.now();
  await waitFor('mini-b gone from the source', async () => !(await source.read(query)).pods.has('mini-b'), 20_000);
  expect(Date.now() - closed).toBeLessThan(15_000);
  expect((await source.read(query)).pods.has('mini-a')).toBe(true);
});

test('queries select by the JambaDeployment\'s labels and escape them', () => {
  const q = prometheusQueries({ ...query, namespace: 'a"b', tokens: 'PromptAndGeneration' });
  expect(q.tokens).toBe(
    'sum by (pod) (rate(jamba_prompt_tokens_total{namespace="a\\"b", jambadeployment="mini"}[30s])) + ' +
    'sum by (pod) (rate(jamba_generation_tokens_total{namespace="a\\"b", jambadeployment="mini"}[30s]))');
});

test('an unreachable or failing Prometheus fails the source (the decision holds)', async () => {
  const down = new PrometheusSource({ url: 'http://127.0.0.1:1', timeoutMs: 1000 });
  const r = await down.read(query);
  expect(r.failed).toBe(true);
  expect(r.errors[0]).toMatch(/prometheus http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  await down.close();
  const bad = new PrometheusSource({ url: `${prometheus.url}/nothing-here` });
  expect((await bad.read(query)).failed).toBe(true);
  await bad.close();
});
