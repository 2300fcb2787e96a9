// The Grafana dashboards the chart ships, declared once here and written as JSON into
// charts/jamba-operator/dashboards/ by generate-dashboards.ts (a test fails when the committed JSON
// differs). Every query reads only what the runtime and the operator export (test/monitoring checks
// each metric against their real registries; test/observability queries each against a Prometheus
// scraping them).

export interface Target {
  expr: string;
  legend: string;
}

export interface Panel {
  title: string;
  description: string;
  unit: string;
  targets: Target[];
  /** Bars instead of lines (counts per interval). */
  bars?: boolean;
  /** Full width instead of half. */
  wide?: boolean;
}

export interface Dashboard {
  uid: string;
  title: string;
  description: string;
  /** Query variables, in order: name → label_values() query. */
  variables: Array<{ name: string; label: string; query: string }>;
  panels: Panel[];
}

/** Runtime series of the selected JambaDeployments (labels from the PodMonitor). */
const SEL = 'namespace=~"$namespace", jambadeployment=~"$jambadeployment"';
const RATE = '$__rate_interval';
const GENERATION = 'route=~"/v1/(chat/)?completions"';

const quantiles = (metric: string): Target[] =>
  [0.5, 0.95, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le) (rate(${metric}_bucket{${SEL}}[${RATE}])))`,
    legend: `p${q * 100}`,
  }));

export const SERVING: Dashboard = {
  uid: 'jamba-serving',
  title: 'Jamba serving',
  description: 'JambaDeployments: throughput, latency, queues, cache and state pools, replicas and scaling, weight loading.',
  variables: [
    { name: 'namespace', label: 'Namespace', query: 'label_values(jamba_requests_running, namespace)' },
    { name: 'jambadeployment', label: 'JambaDeployment', query: 'label_values(jamba_requests_running{namespace=~"$namespace"}, jambadeployment)' },
  ],
  panels: [
    {
      title: 'Tokens/s per JambaDeployment',
      description: 'Generated (and prompt) tokens per second over all replicas of each JambaDeployment.',
      unit: 'suffix: tok/s',
      targets: [
        { expr: `sum by (namespace, jambadeployment) (rate(jamba_generation_tokens_total{${SEL}}[${RATE}]))`, legend: '{{namespace}}/{{jambadeployment}} generated' },
        { expr: `sum by (namespace, jambadeployment) (rate(jamba_prompt_tokens_total{${SEL}}[${RATE}]))`, legend: '{{namespace}}/{{jambadeployment}} prompt' },
      ],
    },
    {
      title: 'Generated tokens/s per replica',
      description: 'Each runtime pod\'s generated tokens per second: the autoscaler\'s signal, per replica.',
      unit: 'suffix: tok/s',
      targets: [{ expr: `sum by (jambadeployment, pod) (rate(jamba_generation_tokens_total{${SEL}}[${RATE}]))`, legend: '{{jambadeployment}} {{pod}}' }],
    },
    {
      title: 'Time to first token',
      description: 'From a request\'s arrival to its first generated token (queue wait and prefill included).',
      unit: 's',
      targets: quantiles('jamba_time_to_first_token_seconds'),
    },
    {
      title: 'Inter-token latency',
      description: 'Time between two consecutive tokens of a request (vLLM\'s inter_token_latency).',
      unit: 's',
      targets: quantiles('jamba_inter_token_latency_seconds'),
    },
    {
      title: 'Requests running and waiting',
      description: 'Requests in the running batch, and requests queued for admission.',
      unit: 'short',
      targets: [
        { expr: `sum by (jambadeployment) (jamba_requests_running{${SEL}})`, legend: '{{jambadeployment}} running' },
        { expr: `sum by (jambadeployment) (jamba_requests_waiting{${SEL}})`, legend: '{{jambadeployment}} waiting' },
      ],
    },
    {
      title: 'Generation requests by status',
      description: 'Completions and chat completions answered per second, by HTTP status (5xx feeds the error-rate alert).',
      unit: 'reqps',
      targets: [{ expr: `sum by (code) (rate(jamba_http_requests_total{${SEL}, ${GENERATION}}[${RATE}]))`, legend: '{{code}}' }],
    },
    {
      title: 'KV-cache usage',
      description: 'Share of KV-cache blocks in use per replica (attention layers only: 1 layer in 8).',
      unit: 'percentunit',
      targets: [{ expr: `max by (jambadeployment, pod) (jamba_kv_cache_usage_ratio{${SEL}})`, legend: '{{jambadeployment}} {{pod}}' }],
    },
    {
      title: 'Mamba state slots in use',
      description: 'Share of Mamba state slots held by sequences per replica (one per running sequence, constant in length).',
      unit: 'percentunit',
      targets: [{ expr: `max by (jambadeployment, pod) (jamba_mamba_state_slots_in_use{${SEL}} / jamba_mamba_state_slots_total{${SEL}})`, legend: '{{jambadeployment}} {{pod}}' }],
    },
    {
      title: 'Replicas: desired vs ready',
      description: 'What the operator wants, what is ready, and the autoscaling ceiling.',
      unit: 'short',
      targets: [
        { expr: `max by (namespace, jambadeployment) (jamba_jambadeployment_replicas_desired{${SEL}})`, legend: '{{jambadeployment}} desired' },
        { expr: `max by (namespace, jambadeployment) (jamba_jambadeployment_replicas_ready{${SEL}})`, legend: '{{jambadeployment}} ready' },
        { expr: `max by (namespace, jambadeployment) (jamba_jambadeployment_autoscaling_max_replicas{${SEL}})`, legend: '{{jambadeployment}} max' },
      ],
    },
    {
      title: 'Scaling decisions',
      description: 'Changes of desired replicas, by direction.',
      unit: 'short',
      bars: true,
      targets: [{ expr: `sum by (jambadeployment, direction) (increase(jamba_operator_scaling_decisions_total{${SEL}}[${RATE}]))`, legend: '{{jambadeployment}} {{direction}}' }],
    },
    {
      title: 'Weight loading progress',
      description: 'Share of the checkpoint loaded, per replica (1 once serving).',
      unit: 'percentunit',
      targets: [{ expr: `max by (jambadeployment, pod) (jamba_model_load_progress_ratio{${SEL}})`, legend: '{{jambadeployment}} {{pod}}' }],
    },
    {
      title: 'Request phases (mean)',
      description: 'Mean time per request waiting for admission, in prefill, and in decode.',
      unit: 's',
      targets: ['queue', 'prefill', 'decode'].map((phase) => ({
        expr: `sum(rate(jamba_request_${phase}_time_seconds_sum{${SEL}}[${RATE}])) / sum(rate(jamba_request_${phase}_time_seconds_count{${SEL}}[${RATE}]))`,
        legend: phase,
      })),
    },
  ],
};

export const OPERATOR: Dashboard = {
  uid: 'jamba-operator',
  title: 'Jamba operator',
  description: 'jamba-operator: reconciles, their latency and errors, the work queue, leadership, API requests and the autoscaler.',
  variables: [],
  panels: [
    {
      title: 'Reconciles/s by result',
      description: 'applied: children or status written; unchanged: nothing to do; gone: deleted; error: retried with backoff.',
      unit: 'ops',
      targets: [{ expr: `sum by (result) (rate(jamba_operator_reconcile_total[${RATE}]))`, legend: '{{result}}' }],
    },
    {
      title: 'Reconcile latency',
      description: 'Time per reconcile, quantiles over all JambaDeployments.',
      unit: 's',
      targets: [0.5, 0.95, 0.99].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(jamba_operator_reconcile_duration_seconds_bucket[${RATE}])))`,
        legend: `p${q * 100}`,
      })),
    },
    {
      title: 'Reconcile errors/s',
      description: 'Failed reconciles (each is retried with per-key exponential backoff).',
      unit: 'ops',
      targets: [{ expr: `sum(rate(jamba_operator_reconcile_errors_total[${RATE}]))`, legend: 'errors' }],
    },
    {
      title: 'Work queue depth',
      description: 'JambaDeployments waiting for a worker, on the leader.',
      unit: 'short',
      targets: [{ expr: 'max by (pod) (jamba_operator_workqueue_depth)', legend: '{{pod}}' }],
    },
    {
      title: 'Leader',
      description: '1 for the operator pod holding the leader lease; exactly one should.',
      unit: 'short',
      targets: [{ expr: 'max by (pod) (jamba_operator_is_leader)', legend: '{{pod}}' }],
    },
    {
      title: 'Kubernetes API requests/s',
      description: 'Every request the operator makes, by verb and resource (at rest: lease renewals only).',
      unit: 'reqps',
      targets: [{ expr: `sum by (verb, resource) (rate(jamba_operator_api_requests_total[${RATE}]))`, legend: '{{verb}} {{resource}}' }],
    },
    {
      title: 'Autoscaler: metrics it could not read/s',
      description: 'Pods whose /metrics did not answer (source scrape) or Prometheus queries that failed (source prometheus). Missing metrics never scale down; all of them missing holds the count.',
      unit: 'ops',
      targets: [{ expr: `sum by (namespace, jambadeployment, source) (rate(jamba_operator_autoscaler_scrape_errors_total[${RATE}]))`, legend: '{{namespace}}/{{jambadeployment}} {{source}}' }],
    },
    {
      title: 'Autoscaler: decision latency',
      description: 'Time of one autoscaling decision, reading the metrics included.',
      unit: 's',
      targets: [0.5, 0.99].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(jamba_operator_autoscaler_decision_duration_seconds_bucket[${RATE}])))`,
        legend: `p${q * 100}`,
      })),
    },
  ],
};

export const DASHBOARDS = [SERVING, OPERATOR];

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

/** The Grafana dashboard JSON model (schema 39) of a declaration. */
export function toGrafana(d: Dashboard): Record<string, unknown> {
  const panels = d.panels.map((p, i) => {
    const width = p.wide ? 24 : 12;
    return {
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      description: p.description,
      datasource: DATASOURCE,
      gridPos: { h: 8, w: width, x: p.wide ? 0 : (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      targets: p.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), datasource: DATASOURCE, expr: t.expr, legendFormat: t.legend, range: true })),
      fieldConfig: {
        defaults: {
          unit: p.unit,
          min: 0,
          custom: p.bars ? { drawStyle: 'bars', fillOpacity: 80, lineWidth: 1 } : { drawStyle: 'line', fillOpacity: 10, lineWidth: 1, showPoints: 'never' },
        },
        overrides: [],
      },
      options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    };
  });
  const variables = d.variables.map((v) => ({
    name: v.name,
    label: v.label,
    type: 'query',
    datasource: DATASOURCE,
    definition: v.query,
    query: { query: v.query, refId: `${v.name}-query` },
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  }));
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: ['jamba'],
    timezone: 'browser',
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    templating: {
      list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 }, ...variables],
    },
    panels,
  };
}

/**
 * What Grafana sends Prometheus for a dashboard query: variables at "All" (.*), $__rate_interval as
 * given, and label_values(selector, label) reduced to its selector.
 */
export function grafanaToPromQL(query: string, rateInterval = '1m'): string {
  const q = query.replaceAll('$__rate_interval', rateInterval).replaceAll(/\$(namespace|jambadeployment)\b/g, '.*');
  const labelValues = /^label_values\((.*),\s*[a-zA-Z_]+\)$/.exec(q);
  return labelValues ? labelValues[1]! : q;
}

/** Every PromQL query a dashboard runs: panel targets and variable queries. */
export function dashboardQueries(json: { panels?: Array<{ targets?: Array<{ expr: string }> }>; templating?: { list?: Array<{ type: string; definition?: string }> } }): string[] {
  const panels = (json.panels ?? []).flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const variables = (json.templating?.list ?? []).filter((v) => v.type === 'query' && v.definition).map((v) => v.definition!);
  return [...panels, ...variables];
}
