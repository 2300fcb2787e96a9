import type { JambaDeploymentStatus } from '../api/jambadeployment.js';
import { decide, initialState, type Decision, type PodInput, type ScalingPolicy } from './decision.js';
import { KEPT_DECISIONS, scalingStatus, type AutoscalerReport } from './status.js';

const policy: ScalingPolicy = {
  minReplicas: 1, maxReplicas: 3, targetTokensPerSecondPerReplica: 100,
  scaleUpStabilizationSeconds: 0, scaleDownStabilizationSeconds: 300, startupTimeoutSeconds: 600, staleAfterSeconds: 30,
};
const T0 = Date.parse('2026-12-02T10:00:00Z');

function decision(current: number, tps: number, at = T0): Decision {
  const pods: PodInput[] = Array.from({ length: current }, (_, k) => ({
    name: `p${k}`, state: 'ready', ageSeconds: 100, metrics: { tokensPerSecond: tps / current, waitingRequests: 0, runningRequests: 1, kvCacheUsage: 0.1, sampledAt: at },
  }));
  return decide({ now: at, policy, currentReplicas: current, pods, sourcesFailed: false, state: initialState(at - 3600_000, current) });
}
const report = (d: Decision, at = T0): AutoscalerReport => ({ decision: d, at, source: 'scrape' });

test('a scale-up: recorded with its inputs, lastScaleTime, tokens/s, an event', () => {
  const s = scalingStatus(undefined, report(decision(1, 250)));
  expect(s.fields).toEqual({
    tokensPerSecond: 250, lastScaleTime: '2026-12-02T10:00:00Z',
    scalingDecisions: [{
      time: '2026-12-02T10:00:00Z', from: 1, to: 3, reason: 'ScaleUp', source: 'scrape', tokensPerSecond: 250, recommendation: 3,
      readyReplicas: 1, startingReplicas: 0, withoutMetrics: 0, saturatedReplicas: 0,
      message: 'scale up 1 → 3: 250 tok/s from 1 ready replica; 250 tok/s ÷ 100 tok/s per replica → 3',
    }],
  });
  expect(s.limited).toMatchObject({ status: 'False', reason: 'DesiredWithinRange' });
  expect(s.events).toEqual([{ type: 'Normal', reason: 'ScaledUp', message: expect.stringMatching(/^scale up 1 → 3/) }]);
});

test('the same round seen by a second reconcile adds nothing; a steady round keeps the record and lastScaleTime', () => {
  const first = scalingStatus(undefined, report(decision(1, 250)));
  const previous: JambaDeploymentStatus = { ...first.fields, conditions: [] };
  expect(scalingStatus(previous, report(decision(1, 250))).fields).toEqual(first.fields);
  expect(scalingStatus(previous, report(decision(1, 250))).events).toEqual([]);
  const steady = scalingStatus({ ...previous, ...scalingStatus(previous, report(decision(3, 290, T0 + 10_000), T0 + 10_000)).fields }, report(decision(3, 300, T0 + 20_000), T0 + 20_000));
  expect(steady.fields.lastScaleTime).toBe('2026-12-02T10:00:00Z');
  expect(steady.fields.tokensPerSecond).toBe(300);
  expect(steady.fields.scalingDecisions!.map((d) => d.reason)).toEqual(['ScaleUp', 'WithinTolerance']);
});

test('pinned at max against demand: ScalingLimited True (TooManyReplicas) and a warning once', () => {
  const s = scalingStatus(undefined, report(decision(3, 900)));
  expect(s.limited).toMatchObject({ status: 'True', reason: 'TooManyReplicas', message: expect.stringMatching(/^demand wants more replicas than autoscaling.maxReplicas: keep 3/) });
  expect(s.events).toEqual([{ type: 'Warning', reason: 'ScalingLimited', message: s.limited.message }]);
  const again = scalingStatus({ conditions: [{ type: 'ScalingLimited', status: 'True', reason: 'TooManyReplicas', message: '', lastTransitionTime: '2026-12-02T10:00:00Z' }] }, report(decision(3, 900, T0 + 10_000), T0 + 10_000));
  expect(again.events).toEqual([]);
});

test(`only the last ${KEPT_DECISIONS} decisions are kept`, () => {
  let status: JambaDeploymentStatus = {};
  for (let k = 0; k < 15; k++) {
    const d = decision(k % 2 === 0 ? 1 : 3, k % 2 === 0 ? 250 : 10, T0 + k * 1000);
    status = { ...status, ...scalingStatus(status, report(d, T0 + k * 1000)).fields };
  }
  expect(status.scalingDecisions).toHaveLength(KEPT_DECISIONS);
  expect(status.scalingDecisions![0]!.time).toBe('2026-12-02T10:00:05Z');
});

test('before the first round: previous fields kept, ScalingLimited says no decision yet', () => {
  expect(scalingStatus({ tokensPerSecond: 12 }, undefined)).toEqual({
    fields: { tokensPerSecond: 12 }, events: [],
    limited: { status: 'False', reason: 'NoDecisionYet', message: 'the autoscaler has not decided yet' },
  });
});
