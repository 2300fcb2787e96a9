// The executor: reads the informers' caches, asks the pure planners what to do, and does only that
// (server-side apply of children that differ, a status write when the status differs, events on
// transitions). Nothing is written when the world already matches, so a quiet cluster costs no calls.
import type { KubernetesObject, V1Deployment, V1Job, V1PodDisruptionBudget, V1Pod, V1Service } from '@kubernetes/client-node';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { isNotFound, isTransient, type KubeClient } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import { RESOURCES, objectPath, type Resource } from '../kube/resources.js';
import type { Logger } from '../observability/logger.js';
import type { AutoscalerReport } from '../autoscaling/status.js';
import type { Clock } from './backoff.js';
import { INSTANCE_LABEL, MODEL_CACHE_LABEL } from './labels.js';
import { modelCacheKey } from './desired.js';
import type { ModelReadings } from './model-status.js';
import { RecentWrites } from './recent-writes.js';
import type { OperatorDefaults } from './desired.js';
import type { InferencePool } from './inference-pool.js';
import { childEvents, planChildren, planStatus, type ChildAction, type ChildKind, type Observed, type PlannedEvent } from './plan.js';

export interface Lister<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface Caches {
  jambaDeployments: Lister<JambaDeployment>;
  deployments: Lister<V1Deployment>;
  services: Lister<V1Service>;
  podDisruptionBudgets: Lister<V1PodDisruptionBudget>;
  /** Empty where the InferencePool API is not served. */
  inferencePools: Lister<InferencePool>;
  pods: Lister<V1Pod>;
  /** Model download Jobs and their pods (by the model-cache label); absent: no Hugging Face cache support. */
  jobs?: Lister<V1Job>;
  downloadPods?: Lister<V1Pod>;
}

export type ReconcileResult = 'applied' | 'unchanged' | 'gone';

const CHILD_RESOURCE: Record<ChildKind, Resource> = {
  Deployment: RESOURCES.deployments,
  Service: RESOURCES.services,
  PodDisruptionBudget: RESOURCES.podDisruptionBudgets,
  InferencePool: RESOURCES.inferencePools,
  Job: RESOURCES.jobs,
};

function controlledBy(o: KubernetesObject | undefined, jd: JambaDeployment): boolean {
  return !!o?.metadata?.ownerReferences?.some((r) => r.controller && r.uid === jd.metadata.uid);
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** The JambaDeployment's serving pods, from the cache. */
export function servingPodsOf(caches: Caches, jd: JambaDeployment): V1Pod[] {
  return caches.pods.list(jd.metadata.namespace).filter((p) => p.metadata?.labels?.[INSTANCE_LABEL] === jd.metadata.name);
}

/** The download Jobs (and their pods) of the JambaDeployment's (repo, revision, claim), whoever created them. */
export function downloadsOf(caches: Caches, jd: JambaDeployment): Pick<Observed, 'downloadJobs' | 'downloadPods'> {
  const hf = jd.spec.model.source.huggingFace;
  if (!hf?.cacheClaimName) return {};
  const cacheKey = modelCacheKey(hf);
  const mine = (o: KubernetesObject) => o.metadata?.labels?.[MODEL_CACHE_LABEL] === cacheKey;
  return {
    downloadJobs: (caches.jobs?.list(jd.metadata.namespace) ?? []).filter(mine),
    downloadPods: (caches.downloadPods?.list(jd.metadata.namespace) ?? []).filter(mine),
  };
}

export class Reconciler {
  private readonly recent = new RecentWrites();

  constructor(private readonly d: {
    client: KubeClient; caches: Caches; events: EventRecorder; clock: Clock; log: Logger;
    defaults?: OperatorDefaults;
    /** The autoscaler's latest round for a JambaDeployment (namespace/name key). */
    autoscaler?: (key: string) => AutoscalerReport | undefined;
    /** The autoscaler's round of time `at` is applied (children and status written). */
    autoscalerApplied?: (key: string, at: number) => void;
    /**
     * The latest download and load progress read from these pods (the progress collector's readings:
     * a lookup, no I/O); without it, status has no progress figures.
     */
    modelProgress?: (jobPods: readonly V1Pod[], servingPods: readonly V1Pod[], runtimePort: number) => ModelReadings;
    /** Reconcile `key` again after `ms` (a download retry due). */
    requeueAfter?: (key: string, ms: number) => void;
    /** The written status changed desiredReplicas (a scaling decision). */
    onDesiredReplicasChanged?: (namespace: string, name: string, from: number, to: number) => void;
  }) {}

  private observe(jd: JambaDeployment): { observed: Observed; foreign: string[] } {
    const { namespace, name } = { namespace: jd.metadata.namespace!, name: jd.metadata.name! };
    const c = this.d.caches;
    const foreign: string[] = [];
    const owned = <T extends KubernetesObject>(kind: ChildKind, cached: T | undefined): T | undefined => {
      const o = this.recent.fresher(`${kind}/${namespace}/${name}`, cached);
      if (o && !controlledBy(o, jd)) foreign.push(kind);
      return controlledBy(o, jd) ? o : undefined;
    };
    return {
      observed: {
        deployment: owned('Deployment', c.deployments.get(name, namespace)),
        service: owned('Service', c.services.get(name, namespace)),
        pdb: owned('PodDisruptionBudget', c.podDisruptionBudgets.get(name, namespace)),
        inferencePool: owned('InferencePool', c.inferencePools.get(name, namespace)),
        pods: servingPodsOf(c, jd),
        ...downloadsOf(c, jd),
      },
      foreign,
    };
  }

  /** Events are best effort and must not slow the reconcile; the recorder tracks them for shutdown. */
  private record(jd: JambaDeployment, events: PlannedEvent[], log: Logger, now = new Date(this.d.clock.now())): void {
    for (const event of events) this.d.events.recordInBackground(jd, event, now, (e) => log.warn('recording event failed', { reason: event.reason, error: e }));
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const cachedJd = this.d.caches.jambaDeployments.get(name, namespace);
    // Deleted: the garbage collector removes the children through their owner references.
    if (!cachedJd || cachedJd.metadata.deletionTimestamp) {
      this.recent.forget(key);
      return 'gone';
    }
    const jdId = `JambaDeployment/${key}`;
    const jd = this.recent.fresher(jdId, cachedJd)!;
    const log = this.d.log.child({ jambaDeployment: key, generation: jd.metadata.generation });
    const { observed, foreign } = this.observe(jd);
    if (this.d.modelProgress) observed.readings = this.d.modelProgress(observed.downloadPods ?? [], observed.pods, jd.spec.runtime.port);
    const children = planChildren(jd, observed, this.d.defaults, this.d.autoscaler?.(key), new Date(this.d.clock.now()));
    // What the caches show before the writes leave: the versions our writes supersede. Read after the
    // writes, a cache could already hold a newer version (the Deployment controller's status update
    // of our write), which would then be mistaken for a superseded one and hidden behind our older
    // write for good: the status would keep the replicas our write saw ("waiting for pods to start").
    const cache = this.d.caches;
    const cachedChild: Record<ChildKind, KubernetesObject | undefined> = {
      Deployment: cache.deployments.get(name, namespace),
      Service: cache.services.get(name, namespace),
      PodDisruptionBudget: cache.podDisruptionBudgets.get(name, namespace),
      InferencePool: cache.inferencePools.get(name, namespace),
      Job: undefined,
    };

    // The children are independent: apply them concurrently (one reconcile's latency, not three).
    const results = await Promise.allSettled(children.apply.map(async (action) => {
      // A same-named object we do not control is someone else's: never take it over.
      if (foreign.includes(action.kind)) throw new Error(`${action.kind} ${key} exists and is not controlled by this JambaDeployment; delete or rename it`);
      const path = objectPath(CHILD_RESOURCE[action.kind], namespace, action.object.metadata?.name ?? name);
      return this.d.client.apply(path, CHILD_RESOURCE[action.kind].name, action.object);
    }));
    let deployment = observed.deployment;
    let applyError: Error | undefined;
    let retryError: Error | undefined;
    const applied: ChildAction[] = [];
    results.forEach((r, i) => {
      const action = children.apply[i]!;
      if (r.status === 'rejected' && isTransient(r.reason)) {
        retryError ??= new Error(`applying ${action.kind} ${key}: ${(r.reason as Error).message}`, { cause: r.reason });
        return;
      }
      if (r.status === 'rejected') {
        const missingApi = action.kind === 'InferencePool' && isNotFound(r.reason);
        const why = missingApi
          ? 'the InferencePool API (inference.networking.k8s.io/v1) is not served: install the Gateway API Inference Extension CRDs, then restart the operator'
          : (r.reason as Error).message;
        applyError ??= new Error(`applying ${action.kind} ${key}: ${why}`, { cause: r.reason });
        return;
      }
      if (action.kind === 'Deployment') deployment = r.value as V1Deployment;
      if (action.kind !== 'Job') this.recent.remember(`${action.kind}/${key}`, cachedChild[action.kind], r.value);
      applied.push(action);
      log.info(`${action.reason.toLowerCase()} ${action.kind}`, { field: action.field });
    });

    // No answer in time, or an overloaded API server: the work queue retries; the status (Degraded/ApplyFailed)
    // and its events are for failures a retry would not fix, not for a busy moment.
    if (retryError) {
      this.record(jd, childEvents(applied), log);
      throw retryError;
    }

    // Children the spec no longer asks for; one already gone (a stale cache) is fine.
    for (const kind of children.remove) {
      const r = CHILD_RESOURCE[kind];
      await this.d.client.request({ method: 'DELETE', path: objectPath(r, namespace, name), verb: 'DELETE', resource: r.name })
        .catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      log.info(`deleted ${kind}`, { reason: 'no longer in the spec' });
    }

    // Failed download Jobs the new attempt replaces (their pods go with them).
    for (const job of children.deleteJobs ?? []) {
      await this.d.client.request({
        method: 'DELETE', path: objectPath(RESOURCES.jobs, namespace, job), verb: 'DELETE', resource: RESOURCES.jobs.name,
        body: { propagationPolicy: 'Background' },
      }).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
      log.info('deleted failed download Job', { job });
    }
    if (children.requeueAfterMs !== undefined) this.d.requeueAfter?.(key, children.requeueAfterMs);

    const now = new Date(this.d.clock.now());
    const statusPlan = planStatus(jd, children, deployment, observed.pods, now, applyError);
    if (statusPlan.status) {
      // Conditional on the version the status was computed from: a stale cache gets 409 (and a retry
      // once it catches up) instead of overwriting a newer status.
      const updated = await this.d.client.request<JambaDeployment>({
        method: 'PATCH', path: objectPath(RESOURCES.jambaDeployments, namespace, name, 'status'), verb: 'PATCH', resource: 'jambadeployments/status',
        body: { metadata: { resourceVersion: jd.metadata.resourceVersion }, status: statusPlan.status }, contentType: 'application/merge-patch+json',
      });
      this.recent.remember(jdId, cachedJd, updated);
      const [from, to] = [jd.status?.desiredReplicas, statusPlan.status.desiredReplicas];
      if (from !== undefined && to !== undefined && from !== to) this.d.onDesiredReplicasChanged?.(namespace, name, from, to);
    }
    this.record(jd, [...childEvents(applied), ...statusPlan.events], log, now);
    if (applyError) throw applyError;
    if (children.autoscaler) this.d.autoscalerApplied?.(key, children.autoscaler.at);
    return applied.length > 0 || statusPlan.status ? 'applied' : 'unchanged';
  }
}
