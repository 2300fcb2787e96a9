// What the runtime and the operator really export: their own registries, rendered as /metrics renders
// them (the runtime with the vLLM aliases on, the operator with process metrics and a JambaDeployment in
// its cache), reduced to the series names a query can select.
import { OperatorMetrics } from '../../operator/observability/metrics.js';
import { jambaDeployment } from '../../operator/controller/testing/fixtures.js';
import { RuntimeMetrics } from '../../runtime/metrics/metrics.js';
import { parseExposition, type Exposition } from './exposition.js';

/** Series Prometheus adds to every scrape. */
export const SCRAPE_SERIES = ['up', 'scrape_duration_seconds', 'scrape_samples_scraped'];

/** Names a selector can match: counters and gauges by name, histograms by _bucket/_sum/_count. */
export function selectableNames(e: Exposition): Set<string> {
  const names = new Set<string>();
  for (const [name, type] of e.types) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

export async function exportedSeriesNames(): Promise<Set<string>> {
  const runtime = new RuntimeMetrics('jamba-tiny', { vllmAliases: true });
  const jd = jambaDeployment({ autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, targetTokensPerSecondPerReplica: 100 } });
  const operator = new OperatorMetrics({ processMetrics: true, jambaDeployments: () => [jd] });
  const names = new Set(SCRAPE_SERIES);
  for (const text of [(await runtime.render()).body, await operator.registry.metrics()]) {
    for (const n of selectableNames(parseExposition(text))) names.add(n);
  }
  return names;
}
