// Reads download and load progress from pods periodically, outside the reconcile, so a slow or hung
// pod never holds a reconcile worker. Every interval it reads each pod that has progress to show
// (progressTargets: a running download, a runtime loading its weights), at most `concurrency` at once,
// keeps the latest reading per pod, and enqueues the JambaDeployments whose readings changed. The
// reconciler's status computation only looks readings up (readings()): no I/O.
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { CONTAINER_NAME, DOWNLOAD_CONTAINER, DOWNLOAD_PROGRESS_PORT, keyOf } from '../controller/labels.js';
import type { DownloadSnapshot, ModelReadings } from '../controller/model-status.js';
import type { Lister } from '../controller/reconciler.js';
import type { Logger } from '../observability/logger.js';
import { PeriodicLoop } from '../pods/periodic.js';
import { bounded, podAddress } from '../pods/pod-http.js';
import type { ModelProgressReader } from './progress-reader.js';

/** A pod to read: a download's /progress, or a loading runtime's /metrics. */
export interface ProgressTarget {
  /** The pod's uid and the kind: a pod that moves from downloading to loading is a new target. */
  id: string;
  pod: string;
  kind: 'download' | 'load';
  /** host:port; undefined while the pod has no IP. */
  address?: string;
}

function ready(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/**
 * Which pods have progress to read: a running download (a Job's pod, or a serving pod's init container)
 * and a runtime that runs but is not ready yet (loading its weights). Pure.
 */
export function progressTargets(jobPods: readonly V1Pod[], servingPods: readonly V1Pod[], runtimePort: number): ProgressTarget[] {
  const targets: ProgressTarget[] = [];
  const target = (pod: V1Pod, kind: ProgressTarget['kind'], port: number) => targets.push({
    id: `${pod.metadata!.uid ?? pod.metadata!.name}/${kind}`, pod: pod.metadata!.name!, kind, address: podAddress(pod, port),
  });
  const live = (p: V1Pod) => !p.metadata?.deletionTimestamp && !!p.metadata?.name;
  for (const pod of jobPods.filter(live)) {
    if (pod.status?.containerStatuses?.some((c) => c.name === DOWNLOAD_CONTAINER && c.state?.running)) target(pod, 'download', DOWNLOAD_PROGRESS_PORT);
  }
  for (const pod of servingPods.filter(live)) {
    if (pod.status?.initContainerStatuses?.some((c) => c.name === DOWNLOAD_CONTAINER && c.state?.running)) target(pod, 'download', DOWNLOAD_PROGRESS_PORT);
    else if (!ready(pod) && pod.status?.containerStatuses?.some((c) => c.name === CONTAINER_NAME && c.state?.running)) target(pod, 'load', runtimePort);
  }
  return targets;
}

type Reading = DownloadSnapshot | number;

/** Whether a new reading says something the status would show differently (the snapshot's own time aside). */
function changed(before: Reading | undefined, after: Reading | undefined): boolean {
  if (typeof before === 'object' && typeof after === 'object') return !isDeepStrictEqual({ ...before, updatedAt: '' }, { ...after, updatedAt: '' });
  return before !== after;
}

export interface ModelProgressCollectorOptions {
  /** Between rounds (default 2 s). */
  intervalMs?: number;
  /** Reads in flight at once, over all pods (default 16). */
  concurrency?: number;
  /** A reading not refreshed for this long is dropped (default three intervals). */
  staleAfterMs?: number;
}

export interface ModelProgressCollectorDeps {
  jambaDeployments: Lister<JambaDeployment>;
  /** The JambaDeployment's download pods (its cache's Job pods) and serving pods, from the informers' caches. */
  podsOf: (jd: JambaDeployment) => { jobPods: readonly V1Pod[]; servingPods: readonly V1Pod[] };
  reader: ModelProgressReader;
  /** A JambaDeployment whose readings changed: reconcile it so its status shows them. */
  enqueue: (key: string) => void;
  log: Logger;
  now?: () => number;
}

export class ModelProgressCollector {
  /** Latest reading by target id, with when it was read. */
  private readonly kept = new Map<string, { reading: Reading; at: number }>();
  private readonly loop: PeriodicLoop;
  private readonly concurrency: number;
  private readonly staleAfterMs: number;
  private readonly now: () => number;

  constructor(private readonly d: ModelProgressCollectorDeps, o: ModelProgressCollectorOptions = {}) {
    const intervalMs = o.intervalMs ?? 2000;
    this.concurrency = o.concurrency ?? 16;
    this.staleAfterMs = o.staleAfterMs ?? 3 * intervalMs;
    this.now = d.now ?? Date.now;
    this.loop = new PeriodicLoop(intervalMs, () => this.runRound(), (e) => d.log.warn('model progress round failed', { error: e }));
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** The kept readings of the pods that have progress to show now (no I/O). */
  readings(jobPods: readonly V1Pod[], servingPods: readonly V1Pod[], runtimePort: number): ModelReadings {
    const readings: ModelReadings = { download: new Map(), load: new Map() };
    for (const t of progressTargets(jobPods, servingPods, runtimePort)) {
      const r = this.kept.get(t.id)?.reading;
      if (t.kind === 'download' && typeof r === 'object') readings.download.set(t.pod, r);
      if (t.kind === 'load' && typeof r === 'number') readings.load.set(t.pod, r);
    }
    return readings;
  }

  /** One round: read every target once (a download Job's pod may serve several JambaDeployments). */
  async runRound(): Promise<void> {
    const targets = new Map<string, { target: ProgressTarget; users: string[] }>();
    for (const jd of this.d.jambaDeployments.list()) {
      if (jd.metadata.deletionTimestamp) continue;
      const { jobPods, servingPods } = this.d.podsOf(jd);
      for (const t of progressTargets(jobPods, servingPods, jd.spec.runtime.port)) {
        if (!t.address) continue;
        const entry = targets.get(t.id) ?? { target: t, users: [] };
        entry.users.push(keyOf(jd.metadata.namespace, jd.metadata.name));
        targets.set(t.id, entry);
      }
    }
    const toEnqueue = new Set<string>();
    await bounded([...targets.values()], this.concurrency, async ({ target, users }) => {
      const reading = await this.read(target);
      const before = this.kept.get(target.id);
      const at = this.now();
      if (reading !== undefined) this.kept.set(target.id, { reading, at });
      else if (before && at - before.at > this.staleAfterMs) this.kept.delete(target.id);
      if (changed(before?.reading, this.kept.get(target.id)?.reading)) for (const key of users) toEnqueue.add(key);
    });
    // Pods that no longer have progress to show: their change of state already reached the work queue.
    for (const id of this.kept.keys()) if (!targets.has(id)) this.kept.delete(id);
    for (const key of toEnqueue) this.d.enqueue(key);
  }

  private async read(t: ProgressTarget): Promise<Reading | undefined> {
    try {
      return t.kind === 'download' ? await this.d.reader.download(t.address!) : await this.d.reader.loadRatio(t.address!);
    } catch (e) {
      this.d.log.debug('reading progress failed', { pod: t.pod, kind: t.kind, error: e });
      return undefined;
    }
  }
}
