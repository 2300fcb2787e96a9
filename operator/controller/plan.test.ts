import { desiredDeployment, desiredPodDisruptionBudget, desiredService } from './desired.js';
import { childEvents, planChildren, planStatus, transitionEvents } from './plan.js';
import { deploymentStatus, jambaDeployment, pod } from './testing/fixtures.js';
import { asApplied } from './testing/managed-fields.js';
import type { Condition } from '../api/jambadeployment.js';

const now = new Date('2026-11-29T01:00:00Z');

/** What the server returns: our fields, our apply recorded in managedFields. */
const asServerReturns = asApplied;

describe('planChildren', () => {
  const jd = jambaDeployment({ replicas: 2 });
  const inSync = { deployment: asServerReturns(desiredDeployment(jd)), service: asServerReturns(desiredService(jd)), pdb: asServerReturns(desiredPodDisruptionBudget(jd)!), pods: [] };

  test('nothing observed → create all three', () => {
    const p = planChildren(jd, { pods: [] });
    expect(p.apply.map((a) => `${a.reason} ${a.kind}`)).toEqual(['Created Deployment', 'Created Service', 'Created PodDisruptionBudget']);
  });

  test('one replica: no PDB; scaled to one, the PDB goes; scaled back up, it returns', () => {
    const one = jambaDeployment({ replicas: 1 });
    expect(planChildren(one, { pods: [] }).apply.map((a) => a.kind)).toEqual(['Deployment', 'Service']);
    const scaledDown = planChildren(one, { ...inSync, deployment: asServerReturns(desiredDeployment(one)) });
    expect(scaledDown.apply).toEqual([]);
    expect(scaledDown.remove).toEqual(['PodDisruptionBudget']);
    const scaledUp = planChildren(jd, { ...inSync, pdb: undefined });
    expect(scaledUp.apply.map((a) => `${a.reason} ${a.kind}`)).toEqual(['Created PodDisruptionBudget']);
    expect(scaledUp.remove).toEqual([]);
  });

  test('in sync → no API calls planned', () => {
    expect(planChildren(jd, inSync).apply).toEqual([]);
  });

  test('objects from a LIST (no apiVersion/kind on items) are in sync too', () => {
    const strip = <T extends object>(o: T) => { const { apiVersion: _a, kind: _k, ...rest } = o as Record<string, unknown>; return rest as T; };
    expect(planChildren(jd, { deployment: strip(inSync.deployment), service: strip(inSync.service), pdb: strip(inSync.pdb), pods: [] }).apply).toEqual([]);
  });

  test.each([
    ['replicas scaled by hand', (d: any) => { d.spec.replicas = 5; }, 'spec.replicas'],
    ['container image edited', (d: any) => { d.spec.template.spec.containers[0].image = 'other'; }, 'spec.template.spec.containers[0].image'],
    ['toleration removed', (d: any) => { d.spec.template.spec.tolerations = []; }, 'spec.template.spec.tolerations'],
  ])('drift: %s → Updated Deployment at %s', (_n, edit, field) => {
    const dep = structuredClone(inSync.deployment);
    edit(dep);
    const p = planChildren(jd, { ...inSync, deployment: dep });
    expect(p.apply.map((a) => [a.reason, a.kind, a.field])).toEqual([['Updated', 'Deployment', field]]);
  });

  test('spec change → only the Deployment is re-applied', () => {
    const changed = jambaDeployment({ maxContextLength: 131072 });
    expect(planChildren(changed, inSync).apply.map((a) => a.kind)).toEqual(['Deployment']);
  });

  test('a known model that cannot fit is blocked and nothing is applied', () => {
    const big = jambaDeployment({ model: { name: 'ai21labs/AI21-Jamba-1.5-Large', source: { hostPath: { path: '/m' } } }, quantization: 'None' });
    const p = planChildren(big, { pods: [] });
    expect(p.apply).toEqual([]);
    expect(p.blocked?.reason).toBe('InsufficientGPUMemory');
    expect(p.blocked?.message).toContain('needs ~796 GB of weights');
  });

  test('a known model on the CPU is blocked with its own reason', () => {
    const p = planChildren(jambaDeployment({ gpusPerReplica: 0 }), { pods: [] });
    expect(p.apply).toEqual([]);
    expect(p.blocked?.reason).toBe('ModelTooLargeForCPU');
    expect(p.blocked?.message).toContain('too large for the CPU backend');
  });
});

test('childEvents: one event for what was created, one per drift repair', () => {
  const jd = jambaDeployment({ replicas: 2 });
  const created = planChildren(jd, { pods: [] }).apply;
  expect(childEvents(created)).toEqual([{ type: 'Normal', reason: 'Created', message: 'created Deployment mini, Service mini, PodDisruptionBudget mini' }]);
  const dep = asApplied(desiredDeployment(jd)) as any;
  dep.spec.replicas = 7;
  const drift = planChildren(jd, { deployment: dep, service: asApplied(desiredService(jd)), pdb: asApplied(desiredPodDisruptionBudget(jd)!), pods: [] }).apply;
  expect(childEvents(drift)).toEqual([{ type: 'Normal', reason: 'Updated', message: 'updated Deployment mini (spec.replicas differed from the spec)' }]);
});

describe('planStatus', () => {
  test('writes status once; the same world again writes nothing', () => {
    const jd = jambaDeployment();
    const children = planChildren(jd, { pods: [] });
    const first = planStatus(jd, children, deploymentStatus({ replicas: 1 }), [pod('unschedulable')], now);
    expect(first.status).toBeDefined();
    expect(first.events.map((e) => `${e.type} ${e.reason}`)).toEqual(['Warning Unschedulable']);
    // The server returns status keys sorted; order must not matter.
    const stored = JSON.parse(JSON.stringify(first.status, Object.keys(first.status!).sort().concat(['type', 'status', 'reason', 'message', 'lastTransitionTime', 'observedGeneration'])));
    const again = planStatus({ ...jd, status: stored }, children, deploymentStatus({ replicas: 1 }), [pod('unschedulable')], new Date('2026-11-29T02:00:00Z'));
    expect(again.status).toBeUndefined();
    expect(again.events).toEqual([]);
  });

  test('a Deployment its controller has not seen yet: the write waits for that controller, unless something cannot wait', () => {
    const jd = jambaDeployment();
    const children = planChildren(jd, { pods: [] });
    // Just created by our apply (generation 1, no status yet): the controller's update is due any moment.
    const created = { metadata: { name: 'mini', namespace: 'ns', generation: 1 }, status: {} };
    expect(planStatus(jd, children, created, [], now)).toEqual({ events: [] });
    // Once the controller has seen it, its status is written.
    expect(planStatus(jd, children, deploymentStatus({ replicas: 1 }), [], now).status).toMatchObject({ observedGeneration: 1, replicas: 1, readyText: '0/1' });
    // An edit of ours not yet seen (generation 3, observed 2) waits as well.
    const ready = planStatus(jd, children, deploymentStatus({ replicas: 1, ready: 1 }), [pod('ready')], now).status!;
    const edited = jambaDeployment({ maxContextLength: 131072 }, { generation: 2 });
    expect(planStatus({ ...edited, status: ready }, planChildren(edited, { pods: [] }), deploymentStatus({ replicas: 1, ready: 1, generation: 3, observed: 2 }), [pod('ready')], now).status).toBeUndefined();
    // What cannot wait: a problem (with its event), and a failed apply.
    const problem = planStatus(jd, children, created, [pod('unschedulable')], now);
    expect(problem.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'Unschedulable' });
    expect(planStatus(jd, children, created, [], now, new Error('applying Service ns/mini: forbidden')).status).toBeDefined();
  });

  test('apply error becomes Degraded/ApplyFailed', () => {
    const jd = jambaDeployment();
    const s = planStatus(jd, planChildren(jd, { pods: [] }), undefined, [], now, new Error('applying Deployment ns/mini: forbidden'));
    expect(s.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'ApplyFailed', message: 'applying Deployment ns/mini: forbidden' });
  });
});

describe('transitionEvents', () => {
  const c = (type: string, status: 'True' | 'False', reason: string): Condition => ({ type, status, reason, message: reason, lastTransitionTime: 't' });
  test.each([
    ['became ready', [c('Ready', 'False', 'Loading')], [c('Ready', 'True', 'AllReplicasReady')], ['Normal AllReplicasReady']],
    ['stays ready', [c('Ready', 'True', 'AllReplicasReady')], [c('Ready', 'True', 'AllReplicasReady')], []],
    ['degraded reason changes', [c('Degraded', 'True', 'Unschedulable')], [c('Degraded', 'True', 'CrashLoopBackOff')], ['Warning CrashLoopBackOff']],
    ['recovered', [c('Degraded', 'True', 'Unschedulable')], [c('Degraded', 'False', 'AsExpected')], ['Normal Recovered']],
  ])('%s', (_n, before, after, expected) => {
    expect(transitionEvents(before, after).map((e) => `${e.type} ${e.reason}`)).toEqual(expected);
  });
});

describe('autoscaling', () => {
  const autoscaled = jambaDeployment({ replicas: 2, autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 6, targetTokensPerSecondPerReplica: 100 } });
  const report = (desired: number) => ({
    at: Date.parse('2026-11-29T01:00:00Z'), source: 'scrape' as const,
    decision: {
      desiredReplicas: desired, currentReplicas: 2, recommendation: desired, tokensPerSecond: desired * 100, reason: 'ScaleUp' as const,
      message: `scale up 2 → ${desired}`, inputs: { readyReplicas: 2, startingReplicas: 0, stuckReplicas: 0, withoutMetrics: 0, saturatedReplicas: 0 },
      state: { recommendations: [], scaleEvents: [] },
    },
  });

  test('the autoscaler\'s decision sets the Deployment\'s replicas and the status', () => {
    const p = planChildren(autoscaled, { pods: [] }, {}, report(5));
    expect(p.desiredReplicas).toBe(5);
    expect((p.apply.find((a) => a.kind === 'Deployment')!.object as { spec: { replicas: number } }).spec.replicas).toBe(5);
    const s = planStatus(autoscaled, p, deploymentStatus({ replicas: 2, ready: 2 }), [], now);
    expect(s.status).toMatchObject({ desiredReplicas: 5, tokensPerSecond: 500, lastScaleTime: '2026-11-29T01:00:00Z' });
    expect(s.status!.conditions!.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=False', 'Progressing=True', 'Degraded=False', 'ScalingLimited=False']);
    expect(s.events.map((e) => e.reason)).toContain('ScaledUp');
  });

  test('before its first decision, the count recorded in status stands (an operator restart does not reset it)', () => {
    const restarted = { ...autoscaled, status: { desiredReplicas: 4 } };
    expect(planChildren(restarted, { pods: [] }).desiredReplicas).toBe(4);
  });

  test('a decision already applied does not undo bounds edited since: the count in status stands', () => {
    const raised = jambaDeployment({ replicas: 2, autoscaling: { enabled: true, minReplicas: 4, maxReplicas: 6, targetTokensPerSecondPerReplica: 100 } });
    // min was raised to 4 (status says 4), then lowered again: the older decision (2) must not come back.
    const lowered = { ...autoscaled, status: { desiredReplicas: 4 } };
    expect(planChildren(raised, { pods: [] }, {}, { ...report(2), applied: true }).desiredReplicas).toBe(4);
    expect(planChildren(lowered, { pods: [] }, {}, { ...report(2), applied: true }).desiredReplicas).toBe(4);
    expect(planChildren(lowered, { pods: [] }, {}, { ...report(2), applied: false }).desiredReplicas).toBe(2);
  });

  test('autoscaling off: spec.replicas rules (the scale subresource) and a stale decision is ignored', () => {
    const off = jambaDeployment({ replicas: 2, autoscaling: { enabled: false, minReplicas: 1, maxReplicas: 6, targetTokensPerSecondPerReplica: 100 } });
    const p = planChildren({ ...off, status: { desiredReplicas: 4 } }, { pods: [] }, {}, report(5));
    expect(p.desiredReplicas).toBe(2);
    const s = planStatus(off, p, undefined, [], now);
    expect(s.status!.conditions!.map((c) => c.type)).not.toContain('ScalingLimited');
  });
});
