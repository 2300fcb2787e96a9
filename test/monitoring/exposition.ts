// Helpers over the Prometheus text exposition format (the parser itself is common/exposition.ts).
import type { Exposition } from '../../common/exposition.js';

export { parseExposition, type Exposition, type MetricType, type Sample } from '../../common/exposition.js';

/** Every series name a scrape can return: samples' names (histograms add _bucket, _sum, _count). */
export function seriesNames(e: Exposition): Set<string> {
  return new Set(e.samples.map((s) => s.name));
}

/** Sum of the samples of `name` whose labels include `labels`. */
export function sampleSum(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const matching = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matching.length === 0) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
  return matching.reduce((sum, s) => sum + s.value, 0);
}

/** The `le` bounds of a histogram's buckets, without +Inf, in order. */
export function bucketBounds(e: Exposition, histogram: string): number[] {
  const les = e.samples.filter((s) => s.name === `${histogram}_bucket`).map((s) => s.labels.le!);
  return [...new Set(les)].filter((le) => le !== '+Inf').map(Number);
}
