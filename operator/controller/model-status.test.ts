// The model's state (download Job or init containers, progress read from pods) into plans and status.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { ProgressSnapshot } from '../../runtime/download/progress.js';
import { desiredDownloadJob } from './desired.js';
import { DOWNLOAD_CONTAINER, INSTANCE_LABEL, MODEL_CACHE_LABEL } from './labels.js';
import { modelVerdict, retryDelaySeconds, type ModelReadings } from './model-status.js';
import { planChildren, planStatus, type Observed } from './plan.js';
import { deploymentStatus, jambaDeployment, pod } from './testing/fixtures.js';

const NOW = new Date('2026-12-02T10:00:00Z');
const REPO = 'ai21labs/AI21-Jamba-1.5-Mini';
const cached = jambaDeployment({ model: { name: REPO, source: { huggingFace: { repo: REPO, revision: 'v1', cacheClaimName: 'hf-cache' } } } });
const perPod = jambaDeployment({ model: { name: REPO, source: { huggingFace: { repo: REPO } } } });

function snapshot(s: Partial<ProgressSnapshot>): ProgressSnapshot {
  return {
    phase: 'Downloading', repo: REPO, revision: 'v1', bytesDone: 0, bytesTotal: 100 * 2 ** 30, percent: 0, filesDone: 0, filesTotal: 20,
    bytesPerSecond: 0, bytesResumed: 0, updatedAt: NOW.toISOString(), ...s,
  };
}

function readings(download: Record<string, ProgressSnapshot> = {}, load: Record<string, number> = {}): ModelReadings {
  return { download: new Map(Object.entries(download)), load: new Map(Object.entries(load)) };
}

function job(attempt: number, state: 'active' | 'complete' | 'failed', at = NOW): V1Job {
  const j = desiredDownloadJob(cached, attempt)!;
  const time = at.toISOString();
  const conditions = state === 'complete' ? [{ type: 'Complete', status: 'True', lastTransitionTime: time as unknown as Date }]
    : state === 'failed' ? [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: time as unknown as Date }] : [];
  return { ...j, status: { active: state === 'active' ? 1 : 0, failed: state === 'failed' ? 5 : 0, conditions } };
}

/** A download pod of `j` (a Job's pod, or, with `init`, a serving pod whose init container downloads). */
function downloadPod(name: string, state: 'running' | { exitCode: number; message?: string }, j?: V1Job): V1Pod {
  const status = state === 'running'
    ? { name: DOWNLOAD_CONTAINER, image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: {} } }
    : { name: DOWNLOAD_CONTAINER, image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: state.exitCode, message: state.message } } };
  return {
    metadata: { name, namespace: 'ns', labels: { [MODEL_CACHE_LABEL]: j!.metadata!.labels![MODEL_CACHE_LABEL]!, 'job-name': j!.metadata!.name! }, creationTimestamp: NOW },
    status: { phase: state === 'running' ? 'Running' : state.exitCode === 0 ? 'Succeeded' : 'Failed', podIP: '10.0.0.9', containerStatuses: [status as never] },
  };
}

function servingPod(name: string, init: 'running' | 'done' | { exitCode: number; message?: string }): V1Pod {
  const initStatus = init === 'running'
    ? { state: { running: {} } }
    : init === 'done' ? { state: { terminated: { exitCode: 0 } } } : { state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: init } };
  return {
    metadata: { name, namespace: 'ns', labels: { [INSTANCE_LABEL]: 'mini' } },
    status: {
      phase: init === 'done' ? 'Running' : 'Pending', podIP: '10.0.0.7',
      initContainerStatuses: [{ name: DOWNLOAD_CONTAINER, image: 'x', imageID: '', ready: false, restartCount: 0, ...initStatus } as never],
      ...(init === 'done' ? { containerStatuses: [{ name: 'runtime', image: 'x', imageID: '', ready: false, restartCount: 0, state: { running: {} } }] } : {}),
    },
  };
}

const observe = (o: Partial<Observed>): Observed => ({ pods: [], ...o });

describe('with a cache claim: a download Job', () => {
  test('no Job yet: the first attempt is created, no Deployment until the files are there; nothing polled (the progress collector enqueues)', () => {
    const plan = planChildren(cached, observe({}), {}, undefined, NOW);
    expect(plan.apply.map((a) => `${a.kind} ${a.object.metadata?.name}`)).toEqual([
      expect.stringMatching(/^Job jamba-download-[0-9a-f]{16}-1$/), 'Service mini',
    ]);
    expect(plan.requeueAfterMs).toBeUndefined();
    const status = planStatus(cached, plan, undefined, [], NOW).status!;
    expect(status.conditions).toContainEqual(expect.objectContaining({ type: 'ModelReady', status: 'False', reason: 'Downloading' }));
    expect(status.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'False', reason: 'Downloading' }));
    expect(status.conditions).toContainEqual(expect.objectContaining({ type: 'Progressing', status: 'True', reason: 'Downloading' }));
    expect(status.model).toEqual({ downloadPercent: 0 });
    expect(planStatus(cached, plan, undefined, [], NOW).events).toContainEqual(expect.objectContaining({ type: 'Normal', reason: 'DownloadStarted' }));
  });

  test('running: bytes, percent, throughput and ETA from the pod\'s /progress; Verifying once every byte is there', () => {
    const j = job(1, 'active');
    const p = downloadPod('dl-1', 'running', j);
    const reading = snapshot({ bytesDone: 40 * 2 ** 30, percent: 40, bytesPerSecond: 500 * 2 ** 20, etaSeconds: 123 });
    const v = modelVerdict(cached, [j], [p], [], readings({ 'dl-1': reading }), NOW)!;
    expect(v).toMatchObject({ status: 'False', reason: 'Downloading', filesReady: false, latestAttempt: 1 });
    expect(v.message).toContain('40.0 GiB of 100.0 GiB (40%), 500.0 MiB/s, about 123 s left');
    expect(v.progress).toEqual({ downloadPercent: 40, bytesDone: 40 * 2 ** 30, bytesTotal: 100 * 2 ** 30, bytesPerSecond: 500 * 2 ** 20, etaSeconds: 123 });
    const plan = planChildren(cached, observe({ downloadJobs: [j], downloadPods: [p], readings: readings({ 'dl-1': reading }) }), {}, undefined, NOW);
    expect(plan.apply.map((a) => a.kind)).toEqual(['Service']);
    const verifying = modelVerdict(cached, [j], [p], [], readings({ 'dl-1': snapshot({ phase: 'Verifying', bytesDone: 100 * 2 ** 30, percent: 99 }) }), NOW)!;
    expect(verifying.reason).toBe('Verifying');
  });

  test('complete: ModelReady True with the size and commit from the termination message; the Deployment mounts the claim', () => {
    const j = job(1, 'complete');
    const final = snapshot({ phase: 'Downloaded', bytesDone: 100 * 2 ** 30, percent: 100, commit: 'abcdef0123456789', etaSeconds: 0 });
    const p = downloadPod('dl-1', { exitCode: 0, message: JSON.stringify(final) }, j);
    const v = modelVerdict(cached, [j], [p], [], readings(), NOW)!;
    expect(v).toMatchObject({ status: 'True', reason: 'Downloaded', filesReady: true, progress: { downloadPercent: 100, bytesDone: 100 * 2 ** 30, bytesTotal: 100 * 2 ** 30 } });
    expect(v.message).toBe(`${REPO}@v1 (100.0 GiB in 20 files, commit abcdef012345) is in claim hf-cache`);
    const plan = planChildren(cached, observe({ downloadJobs: [j], downloadPods: [p] }), {}, undefined, NOW);
    expect(plan.apply.map((a) => a.kind)).toEqual(['Deployment', 'Service']);
    expect(plan.requeueAfterMs).toBeUndefined();
    const before = { ...cached, status: planStatus(cached, planChildren(cached, observe({}), {}, undefined, NOW), undefined, [], NOW).status };
    expect(planStatus(before, plan, deploymentStatus({ replicas: 1, ready: 1 }), [pod('ready')], NOW).events)
      .toContainEqual({ type: 'Normal', reason: 'Downloaded', message: v.message });
  });

  test('failed: the reason from the termination message, Degraded, and the next attempt after the backoff (the old Job deleted)', () => {
    const failedAt = new Date(NOW.getTime() - 20_000);
    const j = job(1, 'failed', failedAt);
    const final = snapshot({ phase: 'Failed', error: { code: 'GatedRepo', message: 'the repository is gated: set HF_TOKEN' } });
    const p = downloadPod('dl-1', { exitCode: 1, message: JSON.stringify(final) }, j);
    const v = modelVerdict(cached, [j], [p], [], readings(), NOW)!;
    expect(v).toMatchObject({ status: 'False', reason: 'DownloadFailed', latestAttempt: 1, nextAttemptAt: failedAt.getTime() + 60_000 });
    expect(v.message).toMatch(/attempt 1\) failed: GatedRepo: the repository is gated: set HF_TOKEN; next attempt in 40 s$/);
    const waiting = planChildren(cached, observe({ downloadJobs: [j], downloadPods: [p] }), {}, undefined, NOW);
    expect(waiting.apply.map((a) => a.kind)).toEqual(['Service']);
    expect(waiting.requeueAfterMs).toBe(40_000);
    const status = planStatus(cached, waiting, undefined, [], NOW);
    expect(status.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Degraded', status: 'True', reason: 'DownloadFailed' }));
    expect(status.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'False', reason: 'DownloadFailed' }));
    expect(status.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'DownloadFailed' }));

    const later = new Date(failedAt.getTime() + 60_000);
    const retry = planChildren(cached, observe({ downloadJobs: [j], downloadPods: [p] }), {}, undefined, later);
    expect(retry.apply[0]).toMatchObject({ kind: 'Job', reason: 'Created', object: { metadata: { name: j.metadata!.name!.replace(/-1$/, '-2') } } });
    expect(retry.deleteJobs).toEqual([j.metadata!.name]);
    expect([1, 2, 3, 6, 10].map(retryDelaySeconds)).toEqual([60, 120, 240, 1800, 1800]);
  });

  test('a new revision downloads while the pods of the old one keep serving (the Deployment is left alone)', () => {
    const oldRevision = jambaDeployment({ model: { name: REPO, source: { huggingFace: { repo: REPO, revision: 'v0', cacheClaimName: 'hf-cache' } } } });
    const running = planChildren(oldRevision, observe({ downloadJobs: [] }), {}, undefined, NOW);
    expect(running.apply.some((a) => a.kind === 'Deployment')).toBe(false);
    const deployment = { ...deploymentStatus({ replicas: 1, ready: 1 }) };
    const status = planStatus(cached, planChildren(cached, observe({ deployment }), {}, undefined, NOW), deployment, [pod('ready')], NOW).status!;
    expect(status.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'True' }));
    expect(status.conditions).toContainEqual(expect.objectContaining({ type: 'ModelReady', status: 'False', reason: 'Downloading' }));
  });
});

describe('without a cache claim: each pod downloads in an init container', () => {
  test('no pods yet: Unknown; the Deployment is created (its pods download)', () => {
    const plan = planChildren(perPod, observe({}), {}, undefined, NOW);
    expect(plan.apply.map((a) => a.kind)).toEqual(['Deployment', 'Service']);
    expect(plan.model?.verdict).toMatchObject({ status: 'Unknown', reason: 'WaitingForPods' });
  });

  test('downloading pods sum their progress; done when every pod\'s init container exited 0', () => {
    const pods = [servingPod('a', 'running'), servingPod('b', 'running')];
    const half = snapshot({ bytesDone: 50 * 2 ** 30, percent: 50, bytesPerSecond: 100, etaSeconds: 30 });
    const quarter = snapshot({ bytesDone: 25 * 2 ** 30, percent: 25, bytesPerSecond: 100, etaSeconds: 60 });
    const v = modelVerdict(perPod, [], [], pods, readings({ a: half, b: quarter }), NOW)!;
    expect(v).toMatchObject({ status: 'False', reason: 'Downloading', filesReady: true });
    expect(v.progress).toEqual({ downloadPercent: 37, bytesDone: 75 * 2 ** 30, bytesTotal: 200 * 2 ** 30, bytesPerSecond: 200, etaSeconds: 60 });
    const done = modelVerdict(perPod, [], [], [servingPod('a', 'done'), servingPod('b', 'done')], readings(), NOW)!;
    expect(done).toMatchObject({ status: 'True', reason: 'Downloaded', progress: { downloadPercent: 100 } });
  });

  test('a failing init container (the kubelet retries it with backoff) is DownloadFailed with its reason', () => {
    const message = JSON.stringify(snapshot({ phase: 'Failed', error: { code: 'RepoNotFound', message: 'repository not found' } }));
    const v = modelVerdict(perPod, [], [], [servingPod('a', { exitCode: 1, message })], readings(), NOW)!;
    expect(v).toMatchObject({ status: 'False', reason: 'DownloadFailed' });
    expect(v.message).toContain('pod a: RepoNotFound: repository not found');
  });
});

test('loading pods: the slowest pod\'s jamba_model_load_progress_ratio, for every kind of source', () => {
  const plan = planChildren(jambaDeployment(), observe({ pods: [pod('loading', 'a'), pod('loading', 'b')], readings: readings({}, { a: 0.42, b: 0.9 }) }), {}, undefined, NOW);
  expect(plan.model?.progress).toEqual({ loadPercent: 42 });
  // The reconcile does not poll: new readings enqueue the JambaDeployment (progress-collector.ts).
  expect(plan.requeueAfterMs).toBeUndefined();
  expect(planStatus(jambaDeployment(), plan, deploymentStatus({ replicas: 2 }), [pod('loading', 'a')], NOW).status!.model).toEqual({ loadPercent: 42 });
});
