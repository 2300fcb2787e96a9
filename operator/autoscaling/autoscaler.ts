// The autoscaler's loop (Kubernetes and HTTP I/O; the decision itself is decision.ts): every interval, for
// each autoscaled JambaDeployment, read its pods' metrics from the source, decide, mark the pods to remove
// on a scale-down (deletion-cost.ts), keep the result and enqueue the JambaDeployment. The reconciler then
// applies the replicas and writes the status (operator/autoscaling/status.ts), as for any other change.
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { JambaDeployment } from '../api/jambadeployment.js';
import type { KubeClient } from '../kube/client.js';
import { RESOURCES, objectPath } from '../kube/resources.js';
import type { Logger } from '../observability/logger.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { Clock } from '../controller/backoff.js';
import { desiredReplicas } from '../controller/desired.js';
import { INSTANCE_LABEL, keyOf } from '../controller/labels.js';
import type { Lister } from '../controller/reconciler.js';
import { decide, initialState, type PodInput, type ScalingPolicy, type ScalingState } from './decision.js';
import { DELETION_COST_ANNOTATION, deletionCostPatches } from './deletion-cost.js';
import type { MetricsReport, MetricsSource, PodTarget } from './metrics-source.js';
import { PrometheusSource } from './prometheus-source.js';
import { ScrapeSource, type ScrapeSourceOptions } from './scrape-source.js';
import { PeriodicLoop } from '../pods/periodic.js';
import { podAddress } from '../pods/pod-http.js';
import type { AutoscalerReport } from './status.js';

export interface AutoscalerOptions {
  /** Between rounds (default 10 s). */
  intervalMs?: number;
  scrape?: ScrapeSourceOptions;
  /** The operator-wide Prometheus source (--prometheus-url); a JambaDeployment's prometheusUrl wins. */
  prometheusUrl?: string;
  /**
   * host:port where a pod's runtime answers. Default: the pod's IP and the runtime port. Only tests
   * change it: their KWOK pods have no runtime behind their IPs, so they point it at real runtimes on loopback.
   */
  podAddress?: (pod: V1Pod, port: number) => string | undefined;
}

interface Deps {
  caches: { jambaDeployments: Lister<JambaDeployment>; deployments: Lister<V1Deployment>; pods: Lister<V1Pod> };
  client: KubeClient;
  metrics: OperatorMetrics;
  log: Logger;
  clock: Clock;
  enqueue: (key: string) => void;
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && !!pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

export function policyOf(jd: JambaDeployment, staleAfterSeconds: number): ScalingPolicy | undefined {
  const a = jd.spec.autoscaling;
  if (!a?.enabled || a.targetTokensPerSecondPerReplica === undefined) return undefined;
  return {
    minReplicas: a.minReplicas, maxReplicas: a.maxReplicas, targetTokensPerSecondPerReplica: a.targetTokensPerSecondPerReplica,
    scaleUpStabilizationSeconds: a.scaleUpStabilizationSeconds, scaleDownStabilizationSeconds: a.scaleDownStabilizationSeconds,
    startupTimeoutSeconds: jd.spec.runtime.startupTimeoutSeconds, staleAfterSeconds,
  };
}

export class Autoscaler {
  private readonly reports = new Map<string, AutoscalerReport>();
  private readonly states = new Map<string, ScalingState>();
  private readonly applied = new Map<string, number>();
  private readonly scrape: ScrapeSource;
  private readonly prometheus = new Map<string, PrometheusSource>();
  private readonly intervalMs: number;
  private readonly loop: PeriodicLoop;

  constructor(private readonly d: Deps, private readonly o: AutoscalerOptions = {}) {
    this.intervalMs = o.intervalMs ?? 10_000;
    this.scrape = new ScrapeSource(o.scrape);
    this.loop = new PeriodicLoop(this.intervalMs, () => this.runRound(), (e) => this.d.log.warn('autoscaling round failed', { error: e }));
  }

  /** The latest round's result for `key` (namespace/name), while its autoscaling is enabled. */
  latest(key: string): AutoscalerReport | undefined {
    const r = this.reports.get(key);
    return r && { ...r, applied: (this.applied.get(key) ?? -Infinity) >= r.at };
  }

  /** The reconciler applied the round of time `at` (its status is written). */
  markApplied(key: string, at: number): void {
    this.applied.set(key, Math.max(at, this.applied.get(key) ?? -Infinity));
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await Promise.all([this.scrape.close(), ...[...this.prometheus.values()].map((p) => p.close())]);
  }

  private source(jd: JambaDeployment): MetricsSource {
    const url = jd.spec.autoscaling?.prometheusUrl ?? this.o.prometheusUrl;
    if (!url) return this.scrape;
    let p = this.prometheus.get(url);
    if (!p) this.prometheus.set(url, (p = new PrometheusSource({ url })));
    return p;
  }

  /** One round over every autoscaled JambaDeployment; one that fails does not stop the others. */
  async runRound(): Promise<void> {
    const live = new Set<string>();
    await Promise.all(this.d.caches.jambaDeployments.list().map(async (jd) => {
      const key = keyOf(jd.metadata.namespace, jd.metadata.name);
      if (!jd.spec.autoscaling?.enabled || jd.metadata.deletionTimestamp) return;
      live.add(key);
      try {
        await this.evaluate(key, jd);
      } catch (e) {
        this.d.log.warn('autoscaling round failed', { jambaDeployment: key, error: e });
      }
    }));
    for (const key of [...this.reports.keys(), ...this.states.keys()]) {
      if (live.has(key)) continue;
      const [namespace, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
      this.reports.delete(key);
      this.states.delete(key);
      this.applied.delete(key);
      this.scrape.forget(namespace, name);
    }
  }

  private async evaluate(key: string, jd: JambaDeployment): Promise<void> {
    const namespace = jd.metadata.namespace!;
    const name = jd.metadata.name!;
    const window = jd.spec.autoscaling!.metricsWindowSeconds;
    // Metrics older than two rounds (or half the window, when longer) are stale.
    const policy = policyOf(jd, Math.max((2 * this.intervalMs) / 1000, window / 2));
    if (!policy) return;
    const started = process.hrtime.bigint();
    const pods = this.d.caches.pods.list(namespace)
      .filter((p) => p.metadata?.labels?.[INSTANCE_LABEL] === name && !p.metadata.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    const port = jd.spec.runtime.port;
    const targets: PodTarget[] = pods.filter(isReady).map((p) => ({
      uid: p.metadata!.uid ?? p.metadata!.name!, name: p.metadata!.name!,
      address: (this.o.podAddress ?? podAddress)(p, port),
    }));
    const source = this.source(jd);
    const report: MetricsReport = await source.read({ namespace, jambaDeployment: name, pods: targets, windowSeconds: window, tokens: jd.spec.autoscaling!.tokens });
    if (report.errors.length > 0) {
      this.d.metrics.autoscalerScrapeErrors.inc({ namespace, jambadeployment: name, source: source.kind }, report.errors.length);
      this.d.log.info('some metrics could not be read', { jambaDeployment: key, source: source.kind, errors: report.errors.slice(0, 5) });
    }
    const now = this.d.clock.now();
    const inputs: PodInput[] = pods.map((p) => {
      const reading = report.pods.get(p.metadata!.name!);
      const created = p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).getTime() : now;
      return {
        name: p.metadata!.name!, state: isReady(p) ? 'ready' : 'starting', ageSeconds: (now - created) / 1000,
        ...(reading?.tokensPerSecond !== undefined ? { metrics: { ...reading, tokensPerSecond: reading.tokensPerSecond } } : {}),
      };
    });
    const deployment = this.d.caches.deployments.get(name, namespace);
    const current = deployment?.spec?.replicas ?? desiredReplicas(jd.spec, jd.status?.desiredReplicas);
    const decision = decide({ now, policy, currentReplicas: current, pods: inputs, sourcesFailed: report.failed, state: this.states.get(key) ?? initialState(now, current) });
    this.states.set(key, decision.state);
    this.d.metrics.autoscalerDecisionDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    if (decision.desiredReplicas < current) await this.markForRemoval(namespace, pods, report);
    const previous = this.reports.get(key)?.decision;
    this.reports.set(key, { decision, at: now, source: source.kind });
    if (previous?.desiredReplicas !== decision.desiredReplicas || previous.reason !== decision.reason) {
      this.d.log.info('autoscaling decision', { jambaDeployment: key, from: current, to: decision.desiredReplicas, reason: decision.reason, message: decision.message });
    }
    this.d.enqueue(key);
  }

  /** Before a scale-down: pods with the fewest requests in flight cost the least to remove. */
  private async markForRemoval(namespace: string, pods: V1Pod[], report: MetricsReport): Promise<void> {
    const patches = deletionCostPatches(pods.filter(isReady).map((p) => {
      const r = report.pods.get(p.metadata!.name!);
      return {
        name: p.metadata!.name!,
        ...(r ? { inFlight: r.runningRequests + r.waitingRequests } : {}),
        currentCost: p.metadata?.annotations?.[DELETION_COST_ANNOTATION],
      };
    }));
    await Promise.all(patches.map((p) => this.d.client.request({
      method: 'PATCH', path: objectPath(RESOURCES.pods, namespace, p.name), verb: 'PATCH', resource: 'pods',
      body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: p.cost } } }, contentType: 'application/merge-patch+json',
    }).catch((e: unknown) => this.d.log.warn('marking a pod for scale-down failed', { pod: `${namespace}/${p.name}`, error: e }))));
  }
}
