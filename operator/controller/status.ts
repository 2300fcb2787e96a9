// Status of a JambaDeployment from what the cluster shows: pure, so every reason is table-tested.
//
// Conditions (each with a machine-readable reason and a sentence for people):
//   Ready       True: AllReplicasReady | ScaledToZero
//               False: Blocked reasons below | Unschedulable | CrashLoopBackOff | ImagePullBackOff | Loading |
//                      RolloutInProgress | ReplicasNotReady
//   Progressing True: RolloutInProgress | Scaling | Loading
//               False: RolloutComplete | ProgressDeadlineExceeded | a pod problem above (the rollout is stalled)
//   ScalingLimited (autoscaling enabled only) True: TooManyReplicas | TooFewReplicas | ScaleUpLimit
//               False: DesiredWithinRange | NoDecisionYet
//   Degraded    True: Unschedulable | CrashLoopBackOff | ImagePullBackOff | ProgressDeadlineExceeded |
//                     InsufficientGPUMemory | ModelTooLargeForCPU | ApplyFailed     False: AsExpected
import type { V1ContainerStateTerminated, V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { Condition, JambaDeployment, JambaDeploymentStatus } from '../api/jambadeployment.js';
import type { ScalingStatus } from '../autoscaling/status.js';
import { selectorString } from './labels.js';
import type { ModelVerdict } from './model-status.js';

export type ConditionType = 'Ready' | 'Progressing' | 'Degraded' | 'ScalingLimited' | 'ModelReady';

/** Why the operator could not even apply the children (the Deployment may be missing or stale). */
export interface Blocked {
  reason: 'InsufficientGPUMemory' | 'ModelTooLargeForCPU' | 'ApplyFailed';
  message: string;
}

export interface StatusInput {
  jd: JambaDeployment;
  desiredReplicas: number;
  deployment?: V1Deployment;
  pods: V1Pod[];
  blocked?: Blocked;
  /** Hugging Face sources: the download's verdict (model-status.ts); else only the pods' load progress. */
  model?: { verdict?: ModelVerdict; progress?: JambaDeploymentStatus['model'] };
  now: Date;
  /** The autoscaler's part of the status, while autoscaling is enabled (operator/autoscaling/status.ts). */
  scaling?: ScalingStatus;
}

interface Verdict {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

const BAD_WAITING = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'CreateContainerConfigError', 'InvalidImageName']);

interface PodSummary {
  unschedulable: V1Pod[];
  failing: { pod: V1Pod; reason: string; message: string }[];
  loading: V1Pod[];
}

function podCondition(pod: V1Pod, type: string) {
  return pod.status?.conditions?.find((c) => c.type === type);
}

/** Why a crash-looping container last exited: its exit code and the last line of its termination message. */
function lastExit(t: V1ContainerStateTerminated | undefined): string {
  if (!t) return '';
  const lastLine = (t.message ?? '').trim().split('\n').pop()?.trim();
  return `; last exit code ${t.exitCode}${lastLine ? `: ${lastLine}` : ''}`;
}

export function summarizePods(pods: V1Pod[]): PodSummary {
  const s: PodSummary = { unschedulable: [], failing: [], loading: [] };
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp) continue;
    const scheduled = podCondition(pod, 'PodScheduled');
    if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
      s.unschedulable.push(pod);
      continue;
    }
    const bad = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
      .find((c) => c.state?.waiting?.reason && BAD_WAITING.has(c.state.waiting.reason));
    if (bad) {
      const waiting = bad.state!.waiting!;
      s.failing.push({ pod, reason: waiting.reason === 'ErrImagePull' ? 'ImagePullBackOff' : waiting.reason!, message: `${waiting.message ?? ''}${lastExit(bad.lastState?.terminated)}` });
      continue;
    }
    const ready = podCondition(pod, 'Ready')?.status === 'True';
    if (pod.status?.phase === 'Running' && !ready) s.loading.push(pod);
  }
  return s;
}

/**
 * Blames the GPUs only when the scheduler does (capacity, affinity, taints); a missing PVC or quota
 * is reported as the scheduler says it.
 */
export function unschedulableMessage(jd: JambaDeployment, pods: V1Pod[]): string {
  const g = jd.spec.gpu;
  const scheduler = podCondition(pods[0]!, 'PodScheduled')?.message ?? '';
  const gpuRelated = jd.spec.gpusPerReplica > 0 && (scheduler === '' || scheduler.includes(`Insufficient ${g.resourceName}`) || /node affinity|didn't match|untolerated taint/.test(scheduler));
  const products = g.products && g.products.length > 0 ? ` and product in [${g.products.join(', ')}]` : '';
  const why = gpuRelated ? `no node has ${jd.spec.gpusPerReplica} free ${g.resourceName} with ≥ ${g.minMemoryMiB} MiB${products}; ` : '';
  return `${why}${pods.length} pod(s) pending${scheduler ? ` (scheduler: ${scheduler})` : ''}`;
}

function rolloutState(d: V1Deployment | undefined, desired: number) {
  const st = d?.status ?? {};
  const generationSeen = (st.observedGeneration ?? 0) >= (d?.metadata?.generation ?? 0);
  const updated = st.updatedReplicas ?? 0;
  const total = st.replicas ?? 0;
  const deadline = st.conditions?.find((c) => c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded');
  return {
    ready: st.readyReplicas ?? 0,
    total,
    rolling: !d || !generationSeen || updated < desired || total > updated,
    scaling: total !== desired,
    deadline: deadline ? deadline.message ?? 'the Deployment made no progress within its deadline' : undefined,
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function verdicts(i: StatusInput): Record<Exclude<ConditionType, 'ScalingLimited' | 'ModelReady'>, Verdict> {
  const desired = i.desiredReplicas;
  const r = rolloutState(i.deployment, desired);
  const pods = summarizePods(i.pods);
  const readyText = `${r.ready}/${desired} replicas ready`;

  // Degraded: the first problem that needs a person, in order of how much it explains.
  let degraded: Verdict = { status: 'False', reason: 'AsExpected', message: 'no problems detected' };
  if (i.blocked) degraded = { status: 'True', reason: i.blocked.reason, message: i.blocked.message };
  else if (pods.unschedulable.length > 0) degraded = { status: 'True', reason: 'Unschedulable', message: unschedulableMessage(i.jd, pods.unschedulable) };
  else if (pods.failing.length > 0) {
    const f = pods.failing[0]!;
    degraded = { status: 'True', reason: f.reason, message: `pod ${f.pod.metadata?.name}: ${f.reason}${f.message ? `: ${f.message}` : ''}` };
  } else if (r.deadline) degraded = { status: 'True', reason: 'ProgressDeadlineExceeded', message: r.deadline };

  let progressing: Verdict;
  if (r.deadline) progressing = { status: 'False', reason: 'ProgressDeadlineExceeded', message: r.deadline };
  // Pods that cannot be placed or keep failing stall the rollout: say so rather than "in progress".
  else if (degraded.status === 'True' && !i.blocked) progressing = { status: 'False', reason: degraded.reason, message: degraded.message };
  else if (r.rolling && i.deployment && (i.deployment.status?.updatedReplicas ?? 0) < (i.deployment.status?.replicas ?? 0))
    progressing = { status: 'True', reason: 'RolloutInProgress', message: `replacing pods one at a time: ${i.deployment.status?.updatedReplicas ?? 0}/${desired} updated` };
  else if (r.scaling) progressing = { status: 'True', reason: 'Scaling', message: `scaling from ${r.total} to ${desired} replicas` };
  else if (r.rolling) progressing = { status: 'True', reason: 'RolloutInProgress', message: `${i.deployment?.status?.updatedReplicas ?? 0}/${desired} replicas updated` };
  else if (pods.loading.length > 0) progressing = { status: 'True', reason: 'Loading', message: loadingMessage(i, pods.loading.length) };
  else progressing = { status: 'False', reason: 'RolloutComplete', message: `${plural(desired, 'replica')} on the current spec` };

  let ready: Verdict;
  if (desired === 0) ready = { status: 'True', reason: 'ScaledToZero', message: 'no replicas requested' };
  else if (r.ready >= desired && !i.blocked) ready = { status: 'True', reason: 'AllReplicasReady', message: readyText };
  else if (degraded.status === 'True') ready = { status: 'False', reason: degraded.reason, message: `${readyText}; ${degraded.message}` };
  else if (pods.loading.length > 0) ready = { status: 'False', reason: 'Loading', message: `${readyText}; ${loadingMessage(i, pods.loading.length)}` };
  else if (progressing.reason === 'RolloutInProgress') ready = { status: 'False', reason: 'RolloutInProgress', message: `${readyText}; ${progressing.message}` };
  else ready = { status: 'False', reason: 'ReplicasNotReady', message: `${readyText}; waiting for pods to start` };

  return { Ready: ready, Progressing: progressing, Degraded: degraded };
}

function loadingMessage(i: StatusInput, n: number): string {
  return `${plural(n, 'replica')} loading weights (startup allows up to ${i.jd.spec.runtime.startupTimeoutSeconds} s)`;
}

/**
 * Adds ModelReady, and while the model is not in place says so in Ready and Progressing (rather than
 * "waiting for pods", which do not exist yet); a failed download is Degraded unless something else is.
 */
function withModel(v: Record<Exclude<ConditionType, 'ScalingLimited' | 'ModelReady'>, Verdict>, model: ModelVerdict | undefined): Partial<Record<ConditionType, Verdict>> {
  if (!model) return v;
  const out: Partial<Record<ConditionType, Verdict>> = { ...v, ModelReady: { status: model.status as Verdict['status'], reason: model.reason, message: model.message } };
  if (model.status !== 'False') return out;
  const readyPrefix = v.Ready.message.split(';')[0];
  if (v.Ready.status === 'False' && ['ReplicasNotReady', 'RolloutInProgress', 'Loading'].includes(v.Ready.reason) && !model.filesReady) {
    out.Ready = { status: 'False', reason: model.reason, message: `${readyPrefix}; ${model.message}` };
  }
  if (model.reason === 'DownloadFailed' && v.Degraded.status === 'False') {
    out.Degraded = { status: 'True', reason: 'DownloadFailed', message: model.message };
    if (v.Ready.status === 'False') out.Ready = { status: 'False', reason: 'DownloadFailed', message: `${readyPrefix}; ${model.message}` };
  }
  if (v.Degraded.status === 'False' && !model.filesReady) {
    out.Progressing = model.reason === 'DownloadFailed'
      ? { status: 'False', reason: 'DownloadFailed', message: model.message }
      : { status: 'True', reason: model.reason, message: model.message };
  }
  return out;
}

/** Keeps lastTransitionTime when the status of a condition did not change, so an unchanged world writes nothing. */
export function mergeConditions(previous: Condition[] | undefined, next: Partial<Record<ConditionType, Verdict>>, generation: number, now: Date): Condition[] {
  return (Object.keys(next) as ConditionType[]).map((type) => {
    const v = next[type]!;
    const old = previous?.find((c) => c.type === type);
    const lastTransitionTime = old && old.status === v.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    return { type, status: v.status, reason: v.reason, message: v.message, lastTransitionTime, observedGeneration: generation };
  });
}

export function computeStatus(i: StatusInput): JambaDeploymentStatus {
  const d = i.deployment?.status ?? {};
  const ready = d.readyReplicas ?? 0;
  const generation = i.jd.metadata.generation ?? 0;
  const status: JambaDeploymentStatus = {
    observedGeneration: generation,
    replicas: d.replicas ?? 0,
    readyReplicas: ready,
    desiredReplicas: i.desiredReplicas,
    readyText: `${ready}/${i.desiredReplicas}`,
    selector: selectorString(i.jd),
    conditions: mergeConditions(i.jd.status?.conditions, {
      ...withModel(verdicts(i), i.model?.verdict),
      ...(i.scaling ? { ScalingLimited: i.scaling.limited } : {}),
    }, generation, i.now),
  };
  const model = i.model?.verdict?.progress ?? i.model?.progress;
  if (model) status.model = model;
  // The autoscaler's fields; with autoscaling off, what it last measured stays (a merge patch would keep it anyway).
  const prev = i.jd.status;
  const scaling = i.scaling?.fields ?? {
    ...(prev?.tokensPerSecond !== undefined ? { tokensPerSecond: prev.tokensPerSecond } : {}),
    ...(prev?.lastScaleTime ? { lastScaleTime: prev.lastScaleTime } : {}),
    ...(prev?.scalingDecisions ? { scalingDecisions: prev.scalingDecisions } : {}),
  };
  return { ...status, ...scaling };
}
