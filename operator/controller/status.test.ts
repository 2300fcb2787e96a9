import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { computeStatus, verdicts, type Blocked } from './status.js';
import { deploymentStatus, jambaDeployment, pod } from './testing/fixtures.js';

const now = new Date('2026-11-29T01:00:00Z');

interface Row {
  name: string;
  desired: number;
  deployment?: V1Deployment;
  pods?: V1Pod[];
  blocked?: Blocked;
  ready: string;
  progressing: string;
  degraded: string;
}

const rows: Row[] = [
  { name: 'no Deployment yet', desired: 1, ready: 'False/ReplicasNotReady', progressing: 'True/Scaling', degraded: 'False/AsExpected' },
  { name: 'all ready', desired: 2, deployment: deploymentStatus({ replicas: 2, ready: 2 }), pods: [pod('ready', 'a'), pod('ready', 'b')], ready: 'True/AllReplicasReady', progressing: 'False/RolloutComplete', degraded: 'False/AsExpected' },
  { name: 'loading weights', desired: 1, deployment: deploymentStatus({ replicas: 1, ready: 0 }), pods: [pod('loading')], ready: 'False/Loading', progressing: 'True/Loading', degraded: 'False/AsExpected' },
  { name: 'unschedulable', desired: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [pod('unschedulable')], ready: 'False/Unschedulable', progressing: 'False/Unschedulable', degraded: 'True/Unschedulable' },
  { name: 'crash looping', desired: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [pod('crashloop')], ready: 'False/CrashLoopBackOff', progressing: 'False/CrashLoopBackOff', degraded: 'True/CrashLoopBackOff' },
  { name: 'rollout: one old pod replaced at a time', desired: 2, deployment: deploymentStatus({ replicas: 2, ready: 1, updated: 1, generation: 2 }), pods: [pod('ready', 'a'), pod('pending', 'b')], ready: 'False/RolloutInProgress', progressing: 'True/RolloutInProgress', degraded: 'False/AsExpected' },
  { name: 'new generation not yet seen by the Deployment controller', desired: 1, deployment: deploymentStatus({ replicas: 1, ready: 1, generation: 3, observed: 2 }), ready: 'True/AllReplicasReady', progressing: 'True/RolloutInProgress', degraded: 'False/AsExpected' },
  { name: 'scaling up', desired: 3, deployment: deploymentStatus({ replicas: 1, ready: 1 }), ready: 'False/ReplicasNotReady', progressing: 'True/Scaling', degraded: 'False/AsExpected' },
  { name: 'scaled to zero', desired: 0, deployment: deploymentStatus({ replicas: 0 }), ready: 'True/ScaledToZero', progressing: 'False/RolloutComplete', degraded: 'False/AsExpected' },
  { name: 'progress deadline', desired: 1, deployment: deploymentStatus({ replicas: 1, deadline: true }), ready: 'False/ProgressDeadlineExceeded', progressing: 'False/ProgressDeadlineExceeded', degraded: 'True/ProgressDeadlineExceeded' },
  { name: 'does not fit', desired: 1, blocked: { reason: 'InsufficientGPUMemory', message: 'x' }, ready: 'False/InsufficientGPUMemory', progressing: 'True/Scaling', degraded: 'True/InsufficientGPUMemory' },
  { name: 'apply failed but old pods serve', desired: 1, deployment: deploymentStatus({ replicas: 1, ready: 1 }), blocked: { reason: 'ApplyFailed', message: 'forbidden' }, ready: 'False/ApplyFailed', progressing: 'False/RolloutComplete', degraded: 'True/ApplyFailed' },
];

describe('status verdicts', () => {
  test.each(rows)('$name', (r) => {
    const v = verdicts({ jd: jambaDeployment(), desiredReplicas: r.desired, deployment: r.deployment, pods: r.pods ?? [], blocked: r.blocked, now });
    expect({ ready: `${v.Ready.status}/${v.Ready.reason}`, progressing: `${v.Progressing.status}/${v.Progressing.reason}`, degraded: `${v.Degraded.status}/${v.Degraded.reason}` })
      .toEqual({ ready: r.ready, progressing: r.progressing, degraded: r.degraded });
  });

  test('Unschedulable says which node it needs and quotes the scheduler', () => {
    const jd = jambaDeployment({ gpu: { minMemoryMiB: 200000 } });
    const v = verdicts({ jd, desiredReplicas: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [pod('unschedulable')], now });
    expect(v.Degraded.message).toBe('no node has 8 free nvidia.com/gpu with ≥ 200000 MiB; 1 pod(s) pending (scheduler: 0/5 nodes are available: 5 node(s) didn\'t match Pod\'s node affinity/selector.)');
  });
});

test('a missing PVC is not blamed on the GPUs', () => {
  const p = pod('unschedulable');
  p.status!.conditions![0]!.message = '0/5 nodes are available: persistentvolumeclaim "weights" not found.';
  const v = verdicts({ jd: jambaDeployment(), desiredReplicas: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [p], now });
  expect(v.Degraded).toMatchObject({ reason: 'Unschedulable', message: '1 pod(s) pending (scheduler: 0/5 nodes are available: persistentvolumeclaim "weights" not found.)' });
});

test('a crash-looping runtime: the last exit code and the last line of its termination message', () => {
  const p = pod('crashloop');
  p.status!.containerStatuses![0]!.lastState = { terminated: { exitCode: 2, message: 'Usage: jamba-runtime serve ...\n  -h, --help  show this help\n\njamba-runtime serve: Unknown option \'--bogus\'\n' } };
  const v = verdicts({ jd: jambaDeployment(), desiredReplicas: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [p], now });
  expect(v.Degraded).toMatchObject({ reason: 'CrashLoopBackOff', message: 'pod mini-crashloop: CrashLoopBackOff: back-off 5m0s; last exit code 2: jamba-runtime serve: Unknown option \'--bogus\'' });
});

test('CPU replicas that cannot be placed are not blamed on the GPUs', () => {
  const v = verdicts({ jd: jambaDeployment({ gpusPerReplica: 0, model: { name: 'tiny', source: { hostPath: { path: '/m' } } } }), desiredReplicas: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [pod('unschedulable')], now });
  expect(v.Degraded.message).toBe('1 pod(s) pending (scheduler: 0/5 nodes are available: 5 node(s) didn\'t match Pod\'s node affinity/selector.)');
});

describe('computeStatus', () => {
  test('fills the scale subresource fields and the printer column', () => {
    const s = computeStatus({ jd: jambaDeployment({}, { generation: 4 }), desiredReplicas: 2, deployment: deploymentStatus({ replicas: 2, ready: 1 }), pods: [], now });
    expect(s).toMatchObject({ observedGeneration: 4, replicas: 2, readyReplicas: 1, desiredReplicas: 2, readyText: '1/2', selector: 'serving.jamba.dev/jambadeployment=mini' });
  });

  test('lastTransitionTime moves only when a condition changes status', () => {
    const jd = jambaDeployment();
    const first = computeStatus({ jd, desiredReplicas: 1, deployment: deploymentStatus({ replicas: 1 }), pods: [pod('loading')], now });
    const later = new Date('2026-11-29T01:05:00Z');
    const second = computeStatus({ jd: { ...jd, status: first }, desiredReplicas: 1, deployment: deploymentStatus({ replicas: 1, ready: 1 }), pods: [pod('ready')], now: later });
    const t = (s: typeof first, type: string) => s.conditions!.find((c) => c.type === type)!.lastTransitionTime;
    expect(t(second, 'Ready')).toBe('2026-11-29T01:05:00Z');
    expect(t(second, 'Degraded')).toBe('2026-11-29T01:00:00Z');
  });
});
