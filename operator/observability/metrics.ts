// The operator's Prometheus metrics, in a registry of its own (two operators in one process stay apart).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { registerJambaDeploymentMetrics } from './jambadeployment-metrics.js';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({ name: 'jamba_operator_reconcile_total', help: 'Reconciles by result.', labelNames: ['result'] as const, registers: [this.registry] });
  readonly reconcileErrors = new Counter({ name: 'jamba_operator_reconcile_errors_total', help: 'Reconciles that failed and were requeued.', registers: [this.registry] });
  readonly reconcileDuration = new Histogram({
    name: 'jamba_operator_reconcile_duration_seconds', help: 'Time per reconcile.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'jamba_operator_workqueue_depth', help: 'Keys waiting in the work queue.', registers: [this.registry] });
  readonly isLeader = new Gauge({ name: 'jamba_operator_is_leader', help: '1 while this instance holds the leader lease.', registers: [this.registry] });
  readonly apiRequests = new Counter({
    name: 'jamba_operator_api_requests_total', help: 'Requests this operator made to the Kubernetes API.',
    labelNames: ['verb', 'resource', 'code'] as const, registers: [this.registry],
  });

  readonly autoscalerScrapeErrors = new Counter({
    name: 'jamba_operator_autoscaler_scrape_errors_total',
    help: 'Metrics the autoscaler could not read: a pod\'s /metrics (source scrape) or a Prometheus query (source prometheus).',
    labelNames: ['namespace', 'jambadeployment', 'source'] as const, registers: [this.registry],
  });
  readonly autoscalerDecisionDuration = new Histogram({
    name: 'jamba_operator_autoscaler_decision_duration_seconds', help: 'Time of one autoscaling decision, reading the metrics included.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });

  readonly scalingDecisions: Counter<'namespace' | 'jambadeployment' | 'direction'>;

  constructor(opts: { processMetrics?: boolean; jambaDeployments?: () => readonly JambaDeployment[] } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
    const list = opts.jambaDeployments ?? (() => []);
    this.scalingDecisions = new Counter({
      name: 'jamba_operator_scaling_decisions_total', help: 'Changes of a JambaDeployment\'s desired replicas, by direction (up, down).',
      labelNames: ['namespace', 'jambadeployment', 'direction'] as const, registers: [this.registry],
      // Every known JambaDeployment has both series from its first scrape (at 0), so increase() sees its first decision.
      collect(this: Counter<'namespace' | 'jambadeployment' | 'direction'>) {
        for (const jd of list()) {
          for (const direction of ['up', 'down']) this.inc({ namespace: jd.metadata.namespace ?? '', jambadeployment: jd.metadata.name ?? '', direction }, 0);
        }
      },
    });
    if (opts.jambaDeployments) registerJambaDeploymentMetrics(this.registry, opts.jambaDeployments);
  }

  /** Requests by "VERB resource", apart from watches and the leader lease: what the operator's work cost. */
  async apiRequestsByCall(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const v of (await this.apiRequests.get()).values) {
      if (v.labels.resource === 'leases' || v.labels.verb === 'WATCH') continue;
      const k = `${v.labels.verb} ${v.labels.resource}`;
      out[k] = (out[k] ?? 0) + v.value;
    }
    return out;
  }

  /** Sum of API requests, optionally only some verbs and excluding some resources (e.g. leases). */
  async apiRequestCount(filter: { verbs?: string[]; excludeResources?: string[] } = {}): Promise<number> {
    const m = await this.apiRequests.get();
    return m.values
      .filter((v) => !filter.verbs || filter.verbs.includes(String(v.labels.verb)))
      .filter((v) => !filter.excludeResources?.includes(String(v.labels.resource)))
      .reduce((sum, v) => sum + v.value, 0);
  }
}
