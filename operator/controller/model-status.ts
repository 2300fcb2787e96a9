// Whether a JambaDeployment's model is in place, from what the cluster shows: pure, table-tested.
//
// ModelReady (Hugging Face sources only):
//   True:  Downloaded
//   False: Downloading | Verifying | DownloadFailed
//   Unknown: WaitingForPods (no cache claim and no pod yet: each pod downloads for itself)
// With a cache claim the download is a Job (desired.ts); serving pods start only once it completed.
// Without one, each pod's init container downloads, and the pods' init statuses tell.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { JambaDeployment, JambaDeploymentStatus } from '../api/jambadeployment.js';
import { formatBytes } from '../../runtime/download/errors.js';
import type { ProgressSnapshot } from '../../runtime/download/progress.js';
import { CONTAINER_NAME, DOWNLOAD_ATTEMPT_ANNOTATION, DOWNLOAD_CONTAINER } from './labels.js';

/** What `jamba-runtime download` reports at /progress and in its termination message. */
export type DownloadSnapshot = ProgressSnapshot;

/** Read from the pods by the progress collector (operator/model/progress-collector.ts), keyed by pod name. */
export interface ModelReadings {
  download: Map<string, DownloadSnapshot>;
  /** jamba_model_load_progress_ratio of loading pods. */
  load: Map<string, number>;
}

export type ModelReadyReason = 'Downloading' | 'Verifying' | 'Downloaded' | 'DownloadFailed' | 'WaitingForPods';

export interface ModelVerdict {
  status: 'True' | 'False' | 'Unknown';
  reason: ModelReadyReason;
  message: string;
  /** The files are in place: serving pods may start (always true without a claim: the pods download). */
  filesReady: boolean;
  progress: NonNullable<JambaDeploymentStatus['model']>;
  /** With a claim: the attempt of the newest download Job (0: none yet). */
  latestAttempt: number;
  /** When the next Job may replace a failed one (ms since the epoch). */
  nextAttemptAt?: number;
}

/** Delay before a failed download Job is followed by the next attempt: 1 min, doubling, at most 30 min. */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(60 * 2 ** Math.max(0, attempt - 1), 1800);
}

export function jobAttempt(job: V1Job): number {
  return Number(job.metadata?.annotations?.[DOWNLOAD_ATTEMPT_ANNOTATION] ?? 0) || 0;
}

function jobCondition(job: V1Job, type: 'Complete' | 'Failed') {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/** A download's report (a termination message, a /progress page); undefined when it is not one. */
export function parseSnapshot(message: string | undefined): DownloadSnapshot | undefined {
  if (!message) return undefined;
  try {
    const s = JSON.parse(message) as DownloadSnapshot;
    return typeof s.phase === 'string' && typeof s.bytesTotal === 'number' ? s : undefined;
  } catch {
    return undefined;
  }
}

/** The download container's final report (termination message), or its log tail when it crashed without one. */
function terminated(pod: V1Pod, init: boolean) {
  const statuses = init ? pod.status?.initContainerStatuses : pod.status?.containerStatuses;
  const s = statuses?.find((c) => c.name === DOWNLOAD_CONTAINER);
  const t = s?.state?.terminated ?? s?.lastState?.terminated;
  return { status: s, terminated: t, snapshot: parseSnapshot(t?.message) };
}

function failureText(t: { exitCode?: number; reason?: string; message?: string } | undefined, snapshot: DownloadSnapshot | undefined): string {
  if (snapshot?.error) return `${snapshot.error.code}: ${snapshot.error.message}`;
  if (!t) return 'the download pod failed';
  return `exit ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}${t.message ? `: ${t.message.trim().split('\n').slice(-3).join(' ')}` : ''}`;
}

function progressText(s: DownloadSnapshot): string {
  const rate = s.bytesPerSecond > 0 ? `, ${formatBytes(s.bytesPerSecond)}/s` : '';
  const eta = s.etaSeconds !== undefined && s.phase === 'Downloading' ? `, about ${s.etaSeconds} s left` : '';
  return `${formatBytes(s.bytesDone)} of ${formatBytes(s.bytesTotal)} (${s.percent}%)${rate}${eta}`;
}

/** Sums what several downloads report (one per pod without a claim). */
function combine(snapshots: DownloadSnapshot[]): DownloadSnapshot | undefined {
  if (snapshots.length === 0) return undefined;
  const bytesDone = snapshots.reduce((a, s) => a + s.bytesDone, 0);
  const bytesTotal = snapshots.reduce((a, s) => a + s.bytesTotal, 0);
  const etas = snapshots.map((s) => s.etaSeconds).filter((e): e is number => e !== undefined);
  return {
    ...snapshots[0]!,
    phase: snapshots.every((s) => s.phase === 'Verifying' || s.phase === 'Downloaded') ? 'Verifying' : 'Downloading',
    bytesDone, bytesTotal,
    percent: bytesTotal > 0 ? Math.min(99, Math.floor((bytesDone / bytesTotal) * 100)) : 0,
    bytesPerSecond: snapshots.reduce((a, s) => a + s.bytesPerSecond, 0),
    ...(etas.length > 0 ? { etaSeconds: Math.max(...etas) } : {}),
  };
}

function progressFields(s: DownloadSnapshot | undefined, done: boolean): NonNullable<JambaDeploymentStatus['model']> {
  if (!s) return done ? { downloadPercent: 100 } : { downloadPercent: 0 };
  return {
    downloadPercent: done ? 100 : Math.max(0, Math.min(99, Math.floor(s.percent))),
    bytesDone: done ? s.bytesTotal : s.bytesDone,
    bytesTotal: s.bytesTotal,
    ...(!done && s.bytesPerSecond > 0 ? { bytesPerSecond: Math.round(s.bytesPerSecond) } : {}),
    ...(!done && s.etaSeconds !== undefined ? { etaSeconds: Math.round(s.etaSeconds) } : {}),
  };
}

function live(pods: V1Pod[]): V1Pod[] {
  return pods.filter((p) => !p.metadata?.deletionTimestamp);
}

function withCache(jd: JambaDeployment, jobs: V1Job[], jobPods: V1Pod[], readings: ModelReadings, now: Date): Omit<ModelVerdict, 'progress'> & { snapshot?: DownloadSnapshot; done: boolean } {
  const hf = jd.spec.model.source.huggingFace!;
  const what = `${hf.repo}@${hf.revision}`;
  const latest = [...jobs].sort((a, b) => jobAttempt(b) - jobAttempt(a))[0];
  if (!latest) {
    return { status: 'False', reason: 'Downloading', message: `starting a download Job for ${what} into claim ${hf.cacheClaimName}`, filesReady: false, latestAttempt: 0, done: false };
  }
  const attempt = jobAttempt(latest);
  const pods = live(jobPods).filter((p) => p.metadata?.labels?.['job-name'] === latest.metadata?.name || p.metadata?.labels?.['batch.kubernetes.io/job-name'] === latest.metadata?.name);
  const byTime = (p: V1Pod) => Date.parse(String(p.metadata?.creationTimestamp ?? 0)) || 0;
  pods.sort((a, b) => byTime(b) - byTime(a));
  const finals = pods.map((p) => terminated(p, false));
  if (jobCondition(latest, 'Complete')) {
    const s = finals.find((f) => f.snapshot?.phase === 'Downloaded')?.snapshot;
    const detail = s ? ` (${formatBytes(s.bytesTotal)}${s.filesTotal !== undefined ? ` in ${s.filesTotal} files` : ''}${s.commit ? `, commit ${s.commit.slice(0, 12)}` : ''})` : '';
    return { status: 'True', reason: 'Downloaded', message: `${what}${detail} is in claim ${hf.cacheClaimName}`, filesReady: true, latestAttempt: attempt, snapshot: s, done: true };
  }
  const lastFailure = finals.find((f) => f.terminated && f.terminated.exitCode !== 0);
  const failed = jobCondition(latest, 'Failed');
  if (failed) {
    const at = Date.parse(String(failed.lastTransitionTime ?? latest.status?.completionTime ?? now.toISOString())) || now.getTime();
    const next = at + retryDelaySeconds(attempt) * 1000;
    const wait = Math.max(0, Math.ceil((next - now.getTime()) / 1000));
    return {
      status: 'False', reason: 'DownloadFailed', filesReady: false, latestAttempt: attempt, nextAttemptAt: next, done: false, snapshot: lastFailure?.snapshot,
      message: `download Job ${latest.metadata?.name} (attempt ${attempt}) failed: ${failureText(lastFailure?.terminated, lastFailure?.snapshot)}; next attempt in ${wait} s`,
    };
  }
  const running = pods.find((p) => p.status?.phase === 'Running');
  const snapshot = (running && readings.download.get(running.metadata!.name!)) ?? lastFailure?.snapshot;
  const retries = latest.status?.failed ?? 0;
  const retryNote = retries > 0 ? `; pod retried ${retries} time(s), last: ${failureText(lastFailure?.terminated, lastFailure?.snapshot)}` : '';
  const verifying = snapshot?.phase === 'Verifying';
  const body = snapshot && running ? progressText(snapshot) : running ? 'listing the files' : 'waiting for the download pod to start';
  return {
    status: 'False', reason: verifying ? 'Verifying' : 'Downloading', filesReady: false, latestAttempt: attempt, done: false, snapshot: running ? snapshot : undefined,
    message: `${verifying ? 'verifying' : 'downloading'} ${what} into claim ${hf.cacheClaimName} (Job ${latest.metadata?.name}): ${body}${retryNote}`,
  };
}

function withoutCache(jd: JambaDeployment, servingPods: V1Pod[], readings: ModelReadings): Omit<ModelVerdict, 'progress'> & { snapshot?: DownloadSnapshot; done: boolean } {
  const hf = jd.spec.model.source.huggingFace!;
  const what = `${hf.repo}@${hf.revision}`;
  const pods = live(servingPods);
  if (pods.length === 0) return { status: 'Unknown', reason: 'WaitingForPods', message: `each pod downloads ${what} when it starts (no cache claim)`, filesReady: true, latestAttempt: 0, done: false };
  let done = 0;
  const failures: string[] = [];
  const downloading: DownloadSnapshot[] = [];
  for (const pod of pods) {
    const init = terminated(pod, true);
    if (init.status?.state?.terminated?.exitCode === 0 || pod.status?.containerStatuses?.some((c) => c.name === CONTAINER_NAME && (c.state?.running || c.state?.terminated))) {
      done++;
      continue;
    }
    if (init.terminated && init.terminated.exitCode !== 0) failures.push(`pod ${pod.metadata?.name}: ${failureText(init.terminated, init.snapshot)}`);
    const reading = readings.download.get(pod.metadata?.name ?? '');
    if (init.status?.state?.running && reading) downloading.push(reading);
  }
  const snapshot = combine(downloading);
  if (done === pods.length) {
    return { status: 'True', reason: 'Downloaded', message: `${what} downloaded by each of ${pods.length} pod(s) (no cache claim)`, filesReady: true, latestAttempt: 0, done: true };
  }
  if (failures.length > 0 && downloading.length === 0) {
    return { status: 'False', reason: 'DownloadFailed', message: `${failures[0]} (the kubelet retries the init container with backoff)`, filesReady: true, latestAttempt: 0, done: false };
  }
  const verifying = snapshot?.phase === 'Verifying';
  return {
    status: 'False', reason: verifying ? 'Verifying' : 'Downloading', filesReady: true, latestAttempt: 0, done: false, snapshot,
    message: `${pods.length - done} of ${pods.length} pod(s) downloading ${what} (no cache claim)${snapshot ? `: ${progressText(snapshot)}` : ''}`,
  };
}

/** Undefined for sources that need no download (pvc, hostPath). */
export function modelVerdict(jd: JambaDeployment, jobs: V1Job[], jobPods: V1Pod[], servingPods: V1Pod[], readings: ModelReadings, now: Date): ModelVerdict | undefined {
  const hf = jd.spec.model.source.huggingFace;
  if (!hf) return undefined;
  const v = hf.cacheClaimName ? withCache(jd, jobs, jobPods, readings, now) : withoutCache(jd, servingPods, readings);
  const loads = [...readings.load.values()];
  const { snapshot, done, ...verdict } = v;
  return {
    ...verdict,
    progress: { ...progressFields(snapshot, done), ...(loads.length > 0 ? { loadPercent: Math.floor(Math.min(...loads) * 100) } : {}) },
  };
}

/** Load progress also matters for pvc and hostPath sources: the status.model block with just loadPercent. */
export function loadOnlyProgress(readings: ModelReadings): NonNullable<JambaDeploymentStatus['model']> | undefined {
  const loads = [...readings.load.values()];
  return loads.length > 0 ? { loadPercent: Math.floor(Math.min(...loads) * 100) } : undefined;
}
