// Wires the operator together: leader election → informers → work queue → reconciler workers,
// plus the probe/metrics server. Only the leader runs informers and workers.
import { hostname } from 'node:os';
import type { KubeConfig, KubernetesListObject, KubernetesObject, V1Deployment, V1Job, V1OwnerReference, V1Pod, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import { KIND, type JambaDeployment } from '../api/jambadeployment.js';
import { KubeClient, isConflict } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { ResilientInformer } from '../kube/informer.js';
import { LeaderElector } from '../kube/leader-election.js';
import { NamespacedInformers, emptyInformer, type CacheInformer } from '../kube/namespaced-informers.js';
import { isNotFound } from '../kube/client.js';
import type { InferencePool } from './inference-pool.js';
import { RESOURCES, collectionPath, type Resource } from '../kube/resources.js';
import { startProbeServer } from '../observability/http-server.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import { OperatorMetrics } from '../observability/metrics.js';
import { withSpan } from '../observability/tracing.js';
import { Autoscaler, type AutoscalerOptions } from '../autoscaling/autoscaler.js';
import { systemClock, type Clock } from './backoff.js';
import { modelCacheKey, type OperatorDefaults } from './desired.js';
import { FIELD_MANAGER, INSTANCE_LABEL, MODEL_CACHE_LABEL, keyOf } from './labels.js';
import { HttpModelProgressReader, type ModelProgressReader } from '../model/progress-reader.js';
import { ModelProgressCollector, type ModelProgressCollectorOptions } from '../model/progress-collector.js';
import { Reconciler, downloadsOf, servingPodsOf, type Caches, type Lister } from './reconciler.js';
import { WorkQueue } from './workqueue.js';
import type { Server } from 'node:http';

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace, or an allowlist of namespaces; all namespaces when undefined. */
  namespace?: string | readonly string[];
  leaderElection?: { namespace: string; name?: string; leaseDurationSeconds?: number; renewDeadlineSeconds?: number; retryPeriodSeconds?: number } | false;
  identity?: string;
  /** host:port for /metrics, /healthz, /readyz; no server when undefined. */
  metricsAddress?: string;
  workers?: number;
  logger?: Logger;
  clock?: Clock;
  processMetrics?: boolean;
  /** Installation-wide defaults (--default-runtime-image). */
  defaults?: OperatorDefaults;
  /** The autoscaler's interval, metrics sources and (tests only) pod addresses. */
  autoscaling?: AutoscalerOptions;
  /** Reads download and load progress from a pod (default: HTTP to the pod IPs). */
  modelReader?: ModelProgressReader;
  /** How often, and how many at once, pods' progress is read. */
  modelProgress?: ModelProgressCollectorOptions;
  /**
   * Leadership was lost (not handed back by stop()). The CLI exits, as client-go's OnStoppedLeading
   * does by convention; called once the controllers have stopped. Without it, this instance campaigns again.
   */
  onLostLeadership?: () => void;
}

type Informers = { [K in keyof Caches]-?: CacheInformer<NonNullable<Caches[K]> extends Lister<infer T extends KubernetesObject> ? T : never> };

export const LEASE_NAME = 'jamba-operator-leader';
/**
 * Concurrent reconciles. A reconcile mostly waits on the API server (a round trip for its applies, one
 * for its status), so a burst drains at workers ÷ round trip: 8 left 100 new JambaDeployments queued for
 * seconds behind each other on a loaded API server, 32 did not (docs/BENCHMARKS.md).
 */
export const DEFAULT_WORKERS = 32;

export class Operator {
  readonly metrics: OperatorMetrics;
  readonly client: KubeClient;
  readonly identity: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly elector?: LeaderElector;
  private informers?: Informers;
  private queue?: WorkQueue;
  private events?: EventRecorder;
  private autoscaler?: Autoscaler;
  private progress?: ModelProgressCollector;
  private workers: Promise<void>[] = [];
  private server?: Server;
  private controllersStarting?: Promise<void>;
  private controllersRunning = false;
  /** Starts and stops of the controllers, one after another: a stop never interleaves with a start. */
  private lifecycle: Promise<void> = Promise.resolve();
  private stopping = false;
  private modelReader?: HttpModelProgressReader;
  /** Port of the probe server once started (useful with port 0). */
  port?: number;

  constructor(private readonly o: OperatorOptions) {
    this.metrics = new OperatorMetrics({ processMetrics: o.processMetrics, jambaDeployments: () => this.informers?.jambaDeployments.list() ?? [] });
    this.client = new KubeClient(o.kubeConfig);
    this.client.onRequest((verb, resource, code) => this.metrics.apiRequests.inc({ verb, resource, code: String(code) }));
    this.identity = o.identity ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.log = (o.logger ?? silentLogger).child({ component: FIELD_MANAGER, identity: this.identity });
    this.clock = o.clock ?? systemClock;
    if (o.leaderElection) {
      const le = o.leaderElection;
      this.elector = new LeaderElector({
        client: this.client, namespace: le.namespace, name: le.name ?? LEASE_NAME, identity: this.identity, clock: this.clock,
        leaseDurationSeconds: le.leaseDurationSeconds, renewDeadlineSeconds: le.renewDeadlineSeconds, retryPeriodSeconds: le.retryPeriodSeconds,
        onStartedLeading: () => {
          this.metrics.isLeader.set(1);
          this.log.info('became leader', { lease: `${le.namespace}/${le.name ?? LEASE_NAME}` });
          this.controllersStarting = this.serially(() => this.startControllers());
        },
        onStoppedLeading: async (how) => {
          this.metrics.isLeader.set(0);
          if (how === 'stopped') this.log.info('stepping down; stopping controllers');
          else this.log.error('lost leadership (the lease could not be renewed in time); stopping controllers', { renewDeadlineSeconds: le.renewDeadlineSeconds ?? 7 });
          await this.serially(() => this.stopControllers());
          if (how === 'lost' && !this.stopping) this.o.onLostLeadership?.();
        },
        onError: (e) => this.log.warn('leader election round failed', { error: e }),
      });
      // No write leaves this process once its term may have ended.
      this.client.setWriteGate(this.elector);
    }
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : this.controllersRunning;
  }

  private serially(step: () => Promise<void>): Promise<void> {
    const next = this.lifecycle.then(step);
    this.lifecycle = next.catch((e: unknown) => this.log.error('starting or stopping the controllers failed', { error: e }));
    return next;
  }

  /** Ready: a standby is ready; a leader is ready once its caches are filled. */
  ready(): boolean {
    if (!this.informers) return !!this.elector;
    return Object.values(this.informers).every((i) => i.synced);
  }

  async start(): Promise<void> {
    if (this.o.metricsAddress !== undefined) {
      const { server, port } = await startProbeServer({ address: this.o.metricsAddress, registry: this.metrics.registry, ready: () => this.ready() });
      this.server = server;
      this.port = port;
      this.log.info('serving /metrics, /healthz, /readyz', { address: this.o.metricsAddress, port });
    }
    if (this.elector) this.elector.start();
    else {
      this.metrics.isLeader.set(1);
      this.controllersStarting = this.serially(() => this.startControllers());
      await this.controllersStarting;
    }
  }

  /** Resolves once this instance leads and its caches have been listed (tests and tools). */
  async whenControllersStarted(): Promise<void> {
    await this.controllersStarting;
  }

  /** The namespaces watched; [undefined] means all. */
  private get namespaces(): Array<string | undefined> {
    const ns = this.o.namespace;
    if (ns === undefined) return [undefined];
    return typeof ns === 'string' ? [ns] : [...ns];
  }

  private informer<T extends KubernetesObject>(name: string, r: Resource, labelSelector: string | undefined, queue: WorkQueue, toKey: (o: T) => string | string[] | undefined): CacheInformer<T> {
    const namespaces = this.namespaces;
    const informer: CacheInformer<T> = namespaces.length === 1
      ? this.resilientInformer<T>(name, r, labelSelector, namespaces[0])
      : new NamespacedInformers(name, new Map(namespaces.map((ns) => [ns!, this.resilientInformer<T>(name, r, labelSelector, ns)])));
    const enqueue = (verb: string) => (o: T) => {
      const key = toKey(o);
      this.log.debug('watch event', { informer: name, verb, object: keyOf(o.metadata?.namespace, o.metadata?.name), enqueued: key });
      for (const k of Array.isArray(key) ? key : key ? [key] : []) queue.add(k);
    };
    informer.on('add', enqueue('add'));
    informer.on('update', enqueue('update'));
    informer.on('delete', enqueue('delete'));
    return informer;
  }

  private resilientInformer<T extends KubernetesObject>(name: string, r: Resource, labelSelector: string | undefined, namespace: string | undefined): ResilientInformer<T> {
    const path = collectionPath(r, namespace);
    return new ResilientInformer<T>({
      name, kubeConfig: this.o.kubeConfig, path, labelSelector, clock: this.clock,
      list: () => this.client.request<KubernetesListObject<T>>({ method: 'GET', path, verb: 'LIST', resource: r.name, query: { labelSelector } }),
      onWatch: () => this.metrics.apiRequests.inc({ verb: 'WATCH', resource: r.name, code: '' }),
      onError: (e, delayMs) => this.log.warn('watch failed; restarting', { informer: name, namespace, delayMs, error: e }),
    });
  }

  /**
   * Whether the cluster serves InferencePools (Gateway API Inference Extension CRDs installed). Only then
   * are they watched; read once when controllers start (installing the CRDs later needs a restart).
   */
  private async servesInferencePools(): Promise<boolean> {
    try {
      const list = await this.client.request<{ resources?: Array<{ name: string }> }>({
        method: 'GET', path: RESOURCES.inferencePools.prefix, verb: 'GET', resource: 'discovery',
      });
      const served = !!list.resources?.some((r) => r.name === RESOURCES.inferencePools.plural);
      this.log.info(served ? 'watching InferencePools' : 'InferencePool API not served; JambaDeployments asking for one will be Degraded');
      return served;
    } catch (e) {
      if (!isNotFound(e)) this.log.warn('discovering the InferencePool API failed; not watching InferencePools', { error: e });
      else this.log.info('InferencePool API not served; JambaDeployments asking for one will be Degraded');
      return false;
    }
  }

  private async startControllers(): Promise<void> {
    if (this.controllersRunning) return;
    this.controllersRunning = true;
    const queue = new WorkQueue({ clock: this.clock, onDepth: (d) => this.metrics.queueDepth.set(d) });
    const ownerKey = (o: KubernetesObject) => {
      const owner = o.metadata?.ownerReferences?.find((r: V1OwnerReference) => r.controller && r.kind === KIND);
      return owner ? keyOf(o.metadata?.namespace, owner.name) : undefined;
    };
    const managed = `app.kubernetes.io/managed-by=${FIELD_MANAGER}`;
    const cacheUsers = (o: KubernetesObject): string[] => {
      const cacheKey = o.metadata?.labels?.[MODEL_CACHE_LABEL];
      return (this.informers?.jambaDeployments.list(o.metadata?.namespace) ?? [])
        .filter((jd) => jd.spec.model.source.huggingFace?.cacheClaimName && modelCacheKey(jd.spec.model.source.huggingFace) === cacheKey)
        .map((jd) => keyOf(jd.metadata.namespace, jd.metadata.name));
    };
    const poolsServed = await this.servesInferencePools();
    const informers: Informers = {
      inferencePools: poolsServed
        ? this.informer<InferencePool>('inferencepools', RESOURCES.inferencePools, managed, queue, ownerKey)
        : emptyInformer<InferencePool>('inferencepools'),
      jambaDeployments: this.informer<JambaDeployment>('jambadeployments', RESOURCES.jambaDeployments, undefined, queue, (o) => keyOf(o.metadata?.namespace, o.metadata?.name)),
      deployments: this.informer<V1Deployment>('deployments', RESOURCES.deployments, managed, queue, ownerKey),
      services: this.informer<V1Service>('services', RESOURCES.services, managed, queue, ownerKey),
      podDisruptionBudgets: this.informer<V1PodDisruptionBudget>('poddisruptionbudgets', RESOURCES.podDisruptionBudgets, managed, queue, ownerKey),
      pods: this.informer<V1Pod>('pods', RESOURCES.pods, INSTANCE_LABEL, queue, (o) => {
        const owner = o.metadata?.labels?.[INSTANCE_LABEL];
        return owner ? keyOf(o.metadata?.namespace, owner) : undefined;
      }),
      // A download Job and its pods concern every JambaDeployment sharing its (repo, revision, claim).
      jobs: this.informer<V1Job>('jobs', RESOURCES.jobs, MODEL_CACHE_LABEL, queue, (o) => cacheUsers(o)),
      downloadPods: this.informer<V1Pod>('downloadpods', RESOURCES.pods, MODEL_CACHE_LABEL, queue, (o) => cacheUsers(o)),
    };
    this.queue = queue;
    this.informers = informers;
    this.events = new EventRecorder(this.client, this.identity);
    const autoscaler = new Autoscaler({
      caches: informers, client: this.client, metrics: this.metrics, log: this.log.child({ component: 'autoscaler' }), clock: this.clock,
      enqueue: (key) => queue.add(key),
    }, this.o.autoscaling);
    this.autoscaler = autoscaler;
    const progress = new ModelProgressCollector({
      jambaDeployments: informers.jambaDeployments,
      podsOf: (jd) => ({ jobPods: downloadsOf(informers, jd).downloadPods ?? [], servingPods: servingPodsOf(informers, jd) }),
      reader: this.o.modelReader ?? (this.modelReader ??= new HttpModelProgressReader()),
      enqueue: (key) => queue.add(key),
      log: this.log.child({ component: 'model-progress' }),
    }, this.o.modelProgress);
    this.progress = progress;
    const reconciler = new Reconciler({
      client: this.client, caches: informers, events: this.events, clock: this.clock, log: this.log, defaults: this.o.defaults,
      autoscaler: (key) => autoscaler.latest(key),
      autoscalerApplied: (key, at) => autoscaler.markApplied(key, at),
      modelProgress: (jobPods, servingPods, port) => progress.readings(jobPods, servingPods, port),
      requeueAfter: (key, ms) => queue.addAfter(key, ms),
      onDesiredReplicasChanged: (namespace, name, from, to) =>
        this.metrics.scalingDecisions.inc({ namespace, jambadeployment: name, direction: to > from ? 'up' : 'down' }),
    });
    // Children and pods first, so the first reconcile of each JambaDeployment sees them.
    await Promise.all([informers.deployments, informers.services, informers.podDisruptionBudgets, informers.inferencePools, informers.pods, informers.jobs, informers.downloadPods].map((i) => i.start()));
    await informers.jambaDeployments.start();
    const workers = this.o.workers ?? DEFAULT_WORKERS;
    this.workers = Array.from({ length: workers }, () => this.work(queue, reconciler));
    autoscaler.start();
    progress.start();
    this.log.info('controllers started', { namespaces: this.namespaces.map((ns) => ns ?? '(all)'), workers });
  }

  private async work(queue: WorkQueue, reconciler: Reconciler): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const started = process.hrtime.bigint();
      try {
        const result = await withSpan('reconcile JambaDeployment', { 'k8s.jambadeployment': key }, async (span) => {
          const r = await reconciler.reconcile(key);
          span.setAttribute('jamba.reconcile.result', r);
          return r;
        });
        this.metrics.reconciles.inc({ result });
        queue.forget(key);
      } catch (e) {
        const delayMs = queue.addRateLimited(key);
        if (isConflict(e)) {
          // Our cache was behind the object: not a failure, the retry sees the newer version.
          this.metrics.reconciles.inc({ result: 'conflict' });
          this.log.debug('object changed since cached; retrying', { jambaDeployment: key, delayMs });
        } else {
          this.metrics.reconciles.inc({ result: 'error' });
          this.metrics.reconcileErrors.inc();
          this.log.error('reconcile failed; retrying', { jambaDeployment: key, delayMs, attempt: queue.retries(key), error: e });
        }
      } finally {
        this.metrics.reconcileDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
        queue.done(key);
      }
    }
  }

  private async stopControllers(): Promise<void> {
    if (!this.controllersRunning) return;
    this.controllersRunning = false;
    await Promise.all([this.autoscaler?.stop(), this.progress?.stop()]);
    this.autoscaler = undefined;
    this.progress = undefined;
    this.queue?.shutDown();
    await Promise.all(Object.values(this.informers ?? {}).map((i) => i.stop()));
    await Promise.all(this.workers);
    await this.events?.flush();
    this.workers = [];
    this.informers = undefined;
    this.queue = undefined;
    this.log.info('controllers stopped');
  }

  /** Graceful shutdown: finish in-flight reconciles, stop watches, hand the lease back. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.elector) await this.elector.stop();
    await this.serially(() => this.stopControllers());
    this.metrics.isLeader.set(0);
    const server = this.server;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    this.client.close();
    await this.modelReader?.close();
  }
}
