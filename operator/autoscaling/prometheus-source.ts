// The metrics source for clusters that already run Prometheus: instant queries over its HTTP API
// (/api/v1/query), grouped by pod. The series must carry the labels the chart's PodMonitor gives them
// (namespace, jambadeployment, pod); rates come from Prometheus's rate() over the metrics window (which
// handles counter resets), and each pod's sample time from timestamp(), so a pod Prometheus has stopped
// scraping reads as stale rather than as its last value.
import { Agent, request } from 'undici';
import { RUNTIME_METRICS, errorText, tokenCounters, type MetricsQuery, type MetricsReport, type MetricsSource, type PodReading } from './metrics-source.js';

export interface PrometheusSourceOptions {
  /** Base URL of Prometheus (or anything serving its HTTP API), e.g. http://prometheus.monitoring:9090 */
  url: string;
  timeoutMs?: number;
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

type Field = 'tokens' | 'waiting' | 'running' | 'kv' | 'state' | 'time';

/** PromQL label values are Go strings: escape backslashes and quotes. */
function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The queries of one round, by field. Exported for the documentation and tests. */
export function prometheusQueries(q: MetricsQuery): Record<Field, string> {
  const sel = `{namespace=${quote(q.namespace)}, jambadeployment=${quote(q.jambaDeployment)}}`;
  const w = `${q.windowSeconds}s`;
  const m = RUNTIME_METRICS;
  return {
    tokens: tokenCounters(q.tokens).map((c) => `sum by (pod) (rate(${c}${sel}[${w}]))`).join(' + '),
    waiting: `sum by (pod) (${m.waiting}${sel})`,
    running: `sum by (pod) (${m.running}${sel})`,
    kv: `max by (pod) (${m.kvCacheUsage}${sel})`,
    state: `sum by (pod) (${m.stateSlotsInUse}${sel}) / sum by (pod) (${m.stateSlotsTotal}${sel})`,
    time: `max by (pod) (timestamp(${m.waiting}${sel}))`,
  };
}

export class PrometheusSource implements MetricsSource {
  readonly kind = 'prometheus';
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly base: string;

  constructor(o: PrometheusSourceOptions) {
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.base = o.url.replace(/\/+$/, '');
    this.agent = new Agent({ connect: { timeout: this.timeoutMs }, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
  }

  private async instant(expr: string): Promise<VectorSample[]> {
    const res = await request(`${this.base}/api/v1/query`, {
      method: 'POST', dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query: expr }).toString(),
    });
    const text = await res.body.text();
    let body: { status?: string; error?: string; data?: { resultType?: string; result?: VectorSample[] } };
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`HTTP ${res.statusCode}, not JSON: ${text.slice(0, 200)}`);
    }
    if (body.status !== 'success') throw new Error(`HTTP ${res.statusCode}: ${body.error ?? 'query failed'}`);
    if (body.data?.resultType !== 'vector') throw new Error(`expected a vector, got ${body.data?.resultType}`);
    return body.data.result ?? [];
  }

  async read(q: MetricsQuery): Promise<MetricsReport> {
    const queries = prometheusQueries(q);
    const fields = Object.keys(queries) as Field[];
    let results: VectorSample[][];
    try {
      results = await Promise.all(fields.map((f) => this.instant(queries[f])));
    } catch (e) {
      return { pods: new Map(), errors: [`prometheus ${this.base}: ${errorText(e)}`], failed: true };
    }
    const byField = new Map<Field, Map<string, number>>();
    fields.forEach((f, k) => byField.set(f, new Map(results[k]!.map((s) => [s.metric.pod ?? '', Number(s.value[1])]))));
    const get = (f: Field, pod: string) => {
      const v = byField.get(f)!.get(pod);
      return v !== undefined && Number.isFinite(v) ? v : undefined;
    };
    const pods = new Map<string, PodReading>();
    for (const pod of q.pods) {
      const time = get('time', pod.name);
      if (time === undefined) continue;
      const state = get('state', pod.name);
      pods.set(pod.name, {
        tokensPerSecond: get('tokens', pod.name),
        waitingRequests: get('waiting', pod.name) ?? 0,
        runningRequests: get('running', pod.name) ?? 0,
        kvCacheUsage: get('kv', pod.name) ?? 0,
        ...(state !== undefined ? { stateUsage: state } : {}),
        sampledAt: time * 1000,
      });
    }
    return { pods, errors: [], failed: false };
  }

  forget(): void {
    // Prometheus keeps the history; nothing here.
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
