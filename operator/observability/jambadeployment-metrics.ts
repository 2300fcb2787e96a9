// Per-JambaDeployment gauges, read from the leader's informer cache at scrape time (the kube-state-metrics
// pattern): what dashboards and alerts need to compare demand with capacity. Only the leader has a
// cache, so only the leader exports these; a standby exports none (no duplicates to dedupe).
// Labels `namespace` and `jambadeployment` are the JambaDeployment's; the ServiceMonitor keeps them
// (honorLabels) instead of the operator pod's namespace.
import { Gauge, type Registry } from 'prom-client';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { desiredReplicas } from '../controller/desired.js';

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const FAMILIES: Record<string, string> = {
  jamba_jambadeployment_replicas_desired: 'Replicas the operator wants (status.desiredReplicas; from the spec until first reconciled).',
  jamba_jambadeployment_replicas: 'Pods of the current Deployment (status.replicas).',
  jamba_jambadeployment_replicas_ready: 'Ready replicas (status.readyReplicas).',
  jamba_jambadeployment_autoscaling_min_replicas: 'autoscaling.minReplicas, while autoscaling is enabled.',
  jamba_jambadeployment_autoscaling_max_replicas: 'autoscaling.maxReplicas, while autoscaling is enabled.',
  jamba_jambadeployment_autoscaling_target_tokens_per_second: 'autoscaling.targetTokensPerSecondPerReplica, while autoscaling is enabled and it is set.',
  jamba_jambadeployment_tokens_per_second: 'Generated tokens/s over all replicas as the operator last measured it (status.tokensPerSecond).',
  jamba_jambadeployment_status_condition: 'Current conditions: 1 for each (condition, status, reason) the status holds.',
};

/** The series of one JambaDeployment. Pure. */
export function jambaDeploymentSeries(jd: JambaDeployment): Series[] {
  const labels = { namespace: jd.metadata.namespace ?? '', jambadeployment: jd.metadata.name ?? '' };
  const s = jd.status ?? {};
  const out: Series[] = [
    { name: 'jamba_jambadeployment_replicas_desired', labels, value: s.desiredReplicas ?? desiredReplicas(jd.spec) },
    { name: 'jamba_jambadeployment_replicas', labels, value: s.replicas ?? 0 },
    { name: 'jamba_jambadeployment_replicas_ready', labels, value: s.readyReplicas ?? 0 },
  ];
  const a = jd.spec.autoscaling;
  if (a?.enabled) {
    out.push({ name: 'jamba_jambadeployment_autoscaling_min_replicas', labels, value: a.minReplicas });
    out.push({ name: 'jamba_jambadeployment_autoscaling_max_replicas', labels, value: a.maxReplicas });
    if (a.targetTokensPerSecondPerReplica !== undefined) {
      out.push({ name: 'jamba_jambadeployment_autoscaling_target_tokens_per_second', labels, value: a.targetTokensPerSecondPerReplica });
    }
  }
  if (s.tokensPerSecond !== undefined) out.push({ name: 'jamba_jambadeployment_tokens_per_second', labels, value: s.tokensPerSecond });
  for (const c of s.conditions ?? []) {
    out.push({ name: 'jamba_jambadeployment_status_condition', labels: { ...labels, condition: c.type, status: c.status, reason: c.reason }, value: 1 });
  }
  return out;
}

/** Registers the families; each scrape rebuilds them from `list` (deleted JambaDeployments disappear). */
export function registerJambaDeploymentMetrics(registry: Registry, list: () => readonly JambaDeployment[]): void {
  for (const [name, help] of Object.entries(FAMILIES)) {
    const labelNames = name === 'jamba_jambadeployment_status_condition'
      ? ['namespace', 'jambadeployment', 'condition', 'status', 'reason']
      : ['namespace', 'jambadeployment'];
    new Gauge({
      name, help, labelNames, registers: [registry],
      collect(this: Gauge) {
        this.reset();
        for (const jd of list()) for (const s of jambaDeploymentSeries(jd)) if (s.name === name) this.set(s.labels, s.value);
      },
    });
  }
}
