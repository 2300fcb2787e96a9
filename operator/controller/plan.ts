// Reconcile plans, then acts. planChildren decides which children to apply (only those that differ
// from what the cluster shows, so a quiet cluster costs no API calls); planStatus decides the status
// and the events once the children are applied. Both are pure.
import { isDeepStrictEqual } from 'node:util';
import type { V1Deployment, V1Job, V1PodDisruptionBudget, V1Pod, V1Service } from '@kubernetes/client-node';
import type { Condition, JambaDeployment, JambaDeploymentStatus } from '../api/jambadeployment.js';
import { checkFit, fitMessage, type FitInput } from '../api/sizing.js';
import { desiredDeployment, desiredDownloadJob, desiredPodDisruptionBudget, desiredReplicas, desiredService, type OperatorDefaults } from './desired.js';
import { jobAttempt, loadOnlyProgress, modelVerdict, type ModelReadings } from './model-status.js';
import { desiredInferencePool, type InferencePool } from './inference-pool.js';
import { firstDrift } from './drift.js';
import { FIELD_MANAGER } from './labels.js';
import { computeStatus, type Blocked, type StatusInput } from './status.js';
import { scalingStatus, type AutoscalerReport } from '../autoscaling/status.js';

export type ChildKind = 'Deployment' | 'Service' | 'PodDisruptionBudget' | 'InferencePool' | 'Job';
export type Child = V1Deployment | V1Service | V1PodDisruptionBudget | InferencePool | V1Job;

export interface Observed {
  deployment?: V1Deployment;
  service?: V1Service;
  pdb?: V1PodDisruptionBudget;
  inferencePool?: InferencePool;
  pods: V1Pod[];
  /** Download Jobs of this JambaDeployment's (repo, revision, claim), whoever created them, and their pods. */
  downloadJobs?: V1Job[];
  downloadPods?: V1Pod[];
  /** Progress read from the pods (download and load). */
  readings?: ModelReadings;
}

export interface ChildAction {
  kind: ChildKind;
  object: Child;
  /** Created: the child is missing. Updated: the spec changed or someone edited the child (drift). */
  reason: 'Created' | 'Updated';
  /** First field that differs, for the event and log. */
  field?: string;
}

export interface ChildPlan {
  desiredReplicas: number;
  /** The autoscaler's latest round, while autoscaling is enabled. */
  autoscaler?: AutoscalerReport;
  apply: ChildAction[];
  /** Children the spec no longer asks for (an InferencePool whose field was removed, a PDB at one replica). */
  remove: ChildKind[];
  blocked?: Blocked;
  /** The model's state, for the status (status.ts). */
  model?: StatusInput['model'];
  /** Failed download Jobs replaced by this plan's new attempt. */
  deleteJobs?: string[];
  /** Reconcile again after this long (a download retry due). */
  requeueAfterMs?: number;
}

export function fitInput(jd: JambaDeployment): FitInput {
  const s = jd.spec;
  return { modelName: s.model.name, quantization: s.quantization, maxContextLength: s.maxContextLength, gpusPerReplica: s.gpusPerReplica, minMemoryMiB: s.gpu.minMemoryMiB };
}

function action(kind: ChildKind, desired: Child, observed: Child | undefined): ChildAction | undefined {
  if (!observed) return { kind, object: desired, reason: 'Created' };
  const field = firstDrift(observed, desired, FIELD_MANAGER);
  return field ? { kind, object: desired, reason: 'Updated', field } : undefined;
}

const NO_READINGS: ModelReadings = { download: new Map(), load: new Map() };

export function planChildren(jd: JambaDeployment, observed: Observed, defaults: OperatorDefaults = {}, autoscaler?: AutoscalerReport, now = new Date()): ChildPlan {
  const autoscaling = jd.spec.autoscaling?.enabled ? { autoscaler } : {};
  const fresh = autoscaler && !autoscaler.applied ? autoscaler.decision.desiredReplicas : undefined;
  const replicas = desiredReplicas(jd.spec, fresh ?? jd.status?.desiredReplicas ?? autoscaler?.decision.desiredReplicas);
  // Defence in depth: the CRD's CEL rule refuses these, but an older CRD or a status-only edit could let one in.
  const fit = checkFit(fitInput(jd));
  if (!fit.fits) return { desiredReplicas: replicas, ...autoscaling, apply: [], remove: [], blocked: { reason: fit.cpu ? 'ModelTooLargeForCPU' : 'InsufficientGPUMemory', message: fitMessage(fitInput(jd), fit) } };
  const readings = observed.readings ?? NO_READINGS;
  const jobs = observed.downloadJobs ?? [];
  const model = modelVerdict(jd, jobs, observed.downloadPods ?? [], observed.pods, readings, now);
  const pool = desiredInferencePool(jd);
  const pdb = desiredPodDisruptionBudget(jd);
  const download = model && jd.spec.model.source.huggingFace?.cacheClaimName ? planDownloadJob(jd, model, jobs, defaults, now) : {};
  const actions = [
    download.job,
    // Serving pods start only once the files are in place; pods of an earlier revision keep serving meanwhile.
    model && !model.filesReady ? undefined : action('Deployment', desiredDeployment(jd, defaults, replicas), observed.deployment),
    action('Service', desiredService(jd), observed.service),
    pdb ? action('PodDisruptionBudget', pdb, observed.pdb) : undefined,
    pool ? action('InferencePool', pool, observed.inferencePool) : undefined,
  ];
  const remove: ChildKind[] = [
    ...(!pdb && observed.pdb ? ['PodDisruptionBudget' as const] : []),
    ...(!pool && observed.inferencePool ? ['InferencePool' as const] : []),
  ];
  return {
    desiredReplicas: replicas,
    ...autoscaling,
    apply: actions.filter((a): a is ChildAction => a !== undefined),
    remove,
    model: { ...(model ? { verdict: model } : {}), progress: model?.progress ?? loadOnlyProgress(readings) },
    ...(download.deleteJobs?.length ? { deleteJobs: download.deleteJobs } : {}),
    // New progress readings enqueue the JambaDeployment themselves (the progress collector): no polling here.
    ...(download.requeueAfterMs !== undefined ? { requeueAfterMs: download.requeueAfterMs } : {}),
  };
}

/** The first download Job, or the next attempt once a failed one's backoff has passed. */
function planDownloadJob(jd: JambaDeployment, model: NonNullable<ReturnType<typeof modelVerdict>>, jobs: V1Job[], defaults: OperatorDefaults, now: Date):
  { job?: ChildAction; deleteJobs?: string[]; requeueAfterMs?: number } {
  if (model.latestAttempt === 0) return { job: { kind: 'Job', object: desiredDownloadJob(jd, 1, defaults)!, reason: 'Created' } };
  if (model.reason !== 'DownloadFailed' || model.nextAttemptAt === undefined) return {};
  const wait = model.nextAttemptAt - now.getTime();
  if (wait > 0) return { requeueAfterMs: wait };
  return {
    job: { kind: 'Job', object: desiredDownloadJob(jd, model.latestAttempt + 1, defaults)!, reason: 'Created' },
    deleteJobs: jobs.filter((j) => jobAttempt(j) <= model.latestAttempt).map((j) => j.metadata!.name!),
  };
}

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface StatusPlan {
  /** Undefined when the status is already what it should be: nothing to write. */
  status?: JambaDeploymentStatus;
  events: PlannedEvent[];
}

function find(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Events on transitions only, so an unchanged world emits nothing. */
export function transitionEvents(before: Condition[] | undefined, after: Condition[]): PlannedEvent[] {
  const events: PlannedEvent[] = [];
  const [rb, ra] = [find(before, 'Ready'), find(after, 'Ready')];
  const [db, da] = [find(before, 'Degraded'), find(after, 'Degraded')];
  if (ra?.status === 'True' && rb?.status !== 'True') events.push({ type: 'Normal', reason: ra.reason, message: ra.message });
  if (da?.status === 'True' && (db?.status !== 'True' || db.reason !== da.reason)) events.push({ type: 'Warning', reason: da.reason, message: da.message });
  if (da?.status === 'False' && db?.status === 'True') events.push({ type: 'Normal', reason: 'Recovered', message: `no longer ${db.reason}` });
  return events;
}

/** An event when a download starts and when it ends (a failure is a Degraded transition, reported there). */
export function modelEvents(before: Condition[] | undefined, after: Condition[]): PlannedEvent[] {
  const [b, a] = [find(before, 'ModelReady'), find(after, 'ModelReady')];
  if (!a || (b?.status === a.status && b.reason === a.reason)) return [];
  if (a.reason === 'Downloading' && b?.reason !== 'Verifying') return [{ type: 'Normal', reason: 'DownloadStarted', message: a.message }];
  if (a.status === 'True' && b?.status !== 'True') return [{ type: 'Normal', reason: 'Downloaded', message: a.message }];
  return [];
}

/** One event per reconcile for what it created and one per update (with the field that differed). */
export function childEvents(applied: ChildAction[]): PlannedEvent[] {
  const events: PlannedEvent[] = [];
  const created = applied.filter((a) => a.reason === 'Created');
  if (created.length > 0) {
    events.push({ type: 'Normal', reason: 'Created', message: `created ${created.map((a) => `${a.kind} ${a.object.metadata?.name}`).join(', ')}` });
  }
  for (const a of applied.filter((x) => x.reason === 'Updated')) {
    events.push({ type: 'Normal', reason: 'Updated', message: `updated ${a.kind} ${a.object.metadata?.name} (${a.field} differed from the spec)` });
  }
  return events;
}

/** Key order differs between what we build and what the server returns (sorted), so compare deeply. */
function sameStatus(a: JambaDeploymentStatus | undefined, b: JambaDeploymentStatus): boolean {
  return isDeepStrictEqual(a ?? {}, b);
}

/** The Deployment's controller has not yet seen its latest spec (an apply of ours just changed it). */
export function awaitingDeploymentController(d: V1Deployment | undefined): boolean {
  return !!d && (d.metadata?.generation ?? 0) > (d.status?.observedGeneration ?? 0);
}

/**
 * A status computed from a Deployment its controller has not yet seen is about to change, and that
 * controller's status update brings another reconcile within moments: write it now only when it says
 * what cannot wait (a problem, an event, an autoscaling decision, the model's state). Otherwise the
 * write waits for the controller: one write less per creation and per edit, and none that shows a
 * Deployment's status for a spec it has not seen yet.
 */
function canWaitForDeploymentController(jd: JambaDeployment, status: JambaDeploymentStatus, deployment: V1Deployment | undefined, events: PlannedEvent[], blocked: Blocked | undefined): boolean {
  if (!awaitingDeploymentController(deployment) || blocked || events.length > 0 || jd.spec.autoscaling?.enabled) return false;
  const before = jd.status;
  const model = (s: JambaDeploymentStatus | undefined) => find(s?.conditions, 'ModelReady');
  return find(status.conditions, 'Degraded')?.status !== 'True'
    && model(before)?.status === model(status)?.status && model(before)?.reason === model(status)?.reason
    && isDeepStrictEqual(before?.model, status.model);
}

export function planStatus(jd: JambaDeployment, children: ChildPlan, deployment: V1Deployment | undefined, pods: V1Pod[], now: Date, applyError?: Error): StatusPlan {
  const blocked: Blocked | undefined = children.blocked ?? (applyError ? { reason: 'ApplyFailed', message: applyError.message } : undefined);
  const scaling = jd.spec.autoscaling?.enabled ? scalingStatus(jd.status, children.autoscaler) : undefined;
  const status = computeStatus({ jd, desiredReplicas: children.desiredReplicas, deployment, pods, blocked, now, scaling, model: children.model });
  const events = [...modelEvents(jd.status?.conditions, status.conditions ?? []), ...transitionEvents(jd.status?.conditions, status.conditions ?? []), ...(scaling?.events ?? [])];
  if (sameStatus(jd.status, status) || canWaitForDeploymentController(jd, status, deployment, events, blocked)) return { events };
  return { status, events };
}
