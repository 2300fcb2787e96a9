import { decide, initialState, scaleUpLimit, type DecisionInput, type PodInput, type ScalingPolicy } from './decision.js';
import { noise, simulate } from './testing/simulation.js';

const policy: ScalingPolicy = {
  minReplicas: 1, maxReplicas: 10, targetTokensPerSecondPerReplica: 100,
  scaleUpStabilizationSeconds: 0, scaleDownStabilizationSeconds: 300, startupTimeoutSeconds: 600, staleAfterSeconds: 30,
};
const NOW = 1_000_000_000;

function ready(name: string, tokensPerSecond: number | undefined, extra: { waiting?: number; kv?: number; state?: number; age?: number; now?: number } = {}): PodInput {
  return {
    name, state: 'ready', ageSeconds: 600,
    ...(tokensPerSecond === undefined ? {} : {
      metrics: {
        tokensPerSecond, runningRequests: 2, waitingRequests: extra.waiting ?? 0, kvCacheUsage: extra.kv ?? 0.2,
        ...(extra.state !== undefined ? { stateUsage: extra.state } : {}), sampledAt: (extra.now ?? NOW) - (extra.age ?? 5) * 1000,
      },
    }),
  };
}
const starting = (name: string, ageSeconds = 20): PodInput => ({ name, state: 'starting', ageSeconds });

/** One decision with no history besides the current size recommended long ago (windows already passed). */
function once(current: number, pods: PodInput[], over: Partial<Omit<DecisionInput, 'policy'>> & { policy?: Partial<ScalingPolicy> } = {}) {
  return decide({
    now: NOW, currentReplicas: current, pods, sourcesFailed: false,
    state: initialState(NOW - 3600_000, current), ...over, policy: { ...policy, ...over.policy },
  });
}

describe('one decision', () => {
  const rows: Array<{ name: string; current: number; pods: PodInput[]; over?: Parameters<typeof once>[2]; desired: number; reason: string; limitedBy?: string; message?: RegExp }> = [
    { name: 'ceil(total ÷ target)', current: 2, pods: [ready('a', 180), ready('b', 170)], desired: 4, reason: 'ScaleUp' },
    { name: 'within the 0.1 tolerance: no change', current: 2, pods: [ready('a', 105), ready('b', 104)], desired: 2, reason: 'WithinTolerance' },
    { name: 'just outside the tolerance', current: 2, pods: [ready('a', 111), ready('b', 111)], desired: 3, reason: 'ScaleUp' },
    { name: 'low load scales down (no recent higher recommendation)', current: 4, pods: [ready('a', 20), ready('b', 20), ready('c', 20), ready('d', 20)], desired: 1, reason: 'ScaleDown' },
    { name: 'missing metric counts as 0 when scaling up', current: 3, pods: [ready('a', 200), ready('b', 200), ready('c', undefined)], desired: 4, reason: 'ScaleUp', message: /1 without fresh metrics.*counted as 0/ },
    { name: 'missing metric counts as the target when scaling down', current: 3, pods: [ready('a', 10), ready('b', 10), ready('c', undefined)], desired: 2, reason: 'ScaleDown', message: /counted as the target/ },
    { name: 'stale metric is missing', current: 3, pods: [ready('a', 10), ready('b', 10), ready('c', 0, { age: 120 })], desired: 2, reason: 'ScaleDown', message: /1 without fresh metrics/ },
    { name: 'all metrics stale: hold, never scale down', current: 3, pods: [ready('a', 0, { age: 120 }), ready('b', 0, { age: 120 }), ready('c', 0, { age: 90 })], desired: 3, reason: 'NoMetrics', message: /none of the 3 ready replicas has fresh metrics/ },
    { name: 'every source failed: hold', current: 3, pods: [ready('a', 0), ready('b', 0), ready('c', 0)], over: { sourcesFailed: true }, desired: 3, reason: 'NoMetrics', message: /every metrics source failed/ },
    { name: 'every source failed: an edited max still applies', current: 5, pods: [], over: { sourcesFailed: true, policy: { maxReplicas: 3 } }, desired: 3, reason: 'NoMetrics', message: /bounds \[1, 3\] make it 3/ },
    { name: 'no ready replica yet: hold', current: 2, pods: [starting('a'), starting('b')], desired: 2, reason: 'NoMetrics', message: /no ready replica/ },
    { name: 'a saturated replica blocks a scale-down', current: 3, pods: [ready('a', 20, { waiting: 5 }), ready('b', 20), ready('c', 20)], desired: 3, reason: 'Saturated', message: /no scale-down/ },
    { name: 'KV ≥ 0.8 is saturation', current: 2, pods: [ready('a', 50, { kv: 0.8 }), ready('b', 50, { kv: 0.85 })], desired: 3, reason: 'Saturated', message: /one more replica/ },
    { name: 'Mamba state pool ≥ 0.8 is saturation', current: 2, pods: [ready('a', 50, { state: 1 }), ready('b', 50, { state: 0.8 })], desired: 3, reason: 'Saturated' },
    { name: 'KV 0.79 and 4 waiting are not', current: 2, pods: [ready('a', 20, { kv: 0.79, waiting: 4 }), ready('b', 20)], desired: 1, reason: 'ScaleDown' },
    { name: 'all saturated, capacity coming: nothing more', current: 4, pods: [ready('a', 100, { waiting: 9 }), ready('b', 100, { waiting: 9 }), starting('c'), starting('d')], desired: 4, reason: 'WaitingForCapacity', message: /2 coming already/ },
    { name: 'a pod past its startup timeout is not coming capacity', current: 3, pods: [ready('a', 100, { waiting: 9 }), ready('b', 100, { waiting: 9 }), starting('c', 700)], desired: 4, reason: 'Saturated', message: /1 not Ready after the 600 s startup timeout/ },
    { name: 'starting pods cover demand: no extra replica', current: 4, pods: [ready('a', 190), ready('b', 190), starting('c'), starting('d')], desired: 4, reason: 'Steady' },
    { name: 'above max: pinned at max', current: 8, pods: Array.from({ length: 8 }, (_, k) => ready(`p${k}`, 200)), desired: 10, reason: 'ScaleUp', limitedBy: 'TooManyReplicas', message: /bounds \[1, 10\] make it 10/ },
    { name: 'a raised min scales up against a low demand: the bounds decided', current: 1, pods: [ready('a', 1)], over: { policy: { minReplicas: 3 } }, desired: 3, reason: 'Bounds', limitedBy: 'TooFewReplicas', message: /^scale up 1 → 3: .*bounds \[3, 10\] make it 3/ },
    { name: 'below min: pinned at min', current: 3, pods: [ready('a', 1), ready('b', 1), ready('c', 1)], over: { policy: { minReplicas: 2 } }, desired: 2, reason: 'ScaleDown', limitedBy: 'TooFewReplicas' },
    { name: 'scale-up rate limit: +4 from 1', current: 1, pods: [ready('a', 2000, { waiting: 50 })], desired: 5, reason: 'ScaleUp', limitedBy: 'ScaleUpLimit' },
    { name: 'scale-up rate limit: ×2 from 6', current: 6, pods: Array.from({ length: 6 }, (_, k) => ready(`p${k}`, 1000)), over: { policy: { maxReplicas: 100 } }, desired: 12, reason: 'ScaleUp', limitedBy: 'ScaleUpLimit' },
  ];
  test.each(rows)('$name', (r) => {
    const d = once(r.current, r.pods, r.over);
    expect({ desired: d.desiredReplicas, reason: d.reason, limitedBy: d.limitedBy }).toEqual({ desired: r.desired, reason: r.reason, limitedBy: r.limitedBy });
    if (r.message) expect(d.message).toMatch(r.message);
  });

  test('the message says what was seen and what was done', () => {
    const d = once(2, [ready('a', 180), ready('b', 170), starting('c')]);
    expect(d.message).toBe('scale up 2 → 4: 350 tok/s from 2 ready replicas; 1 starting; 350 tok/s ÷ 100 tok/s per replica → 4');
    expect(d.inputs).toEqual({ readyReplicas: 2, startingReplicas: 1, stuckReplicas: 0, withoutMetrics: 0, saturatedReplicas: 0 });
    expect(d.tokensPerSecond).toBe(350);
  });
});

describe('stabilization and rate limit over time', () => {
  test('scale-down waits for the highest recommendation of the window to fall', () => {
    let state = initialState(NOW - 3600_000, 4);
    const at = (s: number, tps: number) => {
      const now = NOW + s * 1000;
      const d = decide({ now, policy, currentReplicas: 4, pods: Array.from({ length: 4 }, (_, k) => ready(`p${k}`, tps, { now })), sourcesFailed: false, state });
      state = d.state;
      return d;
    };
    expect(at(0, 100).desiredReplicas).toBe(4);
    const low = at(10, 20);
    expect([low.desiredReplicas, low.reason]).toEqual([4, 'StabilizingDown']);
    expect(low.message).toMatch(/scale-down stabilization \(300 s\) keeps 4/);
    expect(at(299, 20).desiredReplicas).toBe(4);
    expect(at(301, 20).desiredReplicas).toBe(1);
  });

  test('scale-up stabilization takes the lowest recommendation of its window', () => {
    let state = initialState(NOW - 3600_000, 2);
    const p = { ...policy, scaleUpStabilizationSeconds: 30 };
    const at = (s: number, tps: number) => {
      const now = NOW + s * 1000;
      const d = decide({ now, policy: p, currentReplicas: 2, pods: [ready('a', tps, { now }), ready('b', tps, { now })], sourcesFailed: false, state });
      state = d.state;
      return d;
    };
    expect(at(0, 100).desiredReplicas).toBe(2);
    expect(at(10, 200).reason).toBe('StabilizingUp');
    expect(at(20, 200).desiredReplicas).toBe(2);
    expect(at(31, 200).desiredReplicas).toBe(4);
  });

  test('the rate limit counts what was added in the last 15 s', () => {
    expect(scaleUpLimit(5, [{ at: NOW - 5000, from: 1, to: 5 }], NOW)).toBe(5);
    expect(scaleUpLimit(5, [{ at: NOW - 16000, from: 1, to: 5 }], NOW)).toBe(10);
    expect(scaleUpLimit(0, [], NOW)).toBe(4);
  });
});

describe('load profiles (simulated replicas: 100 tok/s target, 150 tok/s capacity, 30 s startup)', () => {
  test('step: up to what the demand needs within the rate limit, back down only after the 300 s window', () => {
    const r = simulate({ policy, initialReplicas: 1, seconds: 900, load: (t) => (t >= 60 && t < 360 ? 750 : 50) });
    const at = (t: number) => r.steps.find((s) => s.t === t)!.decision.desiredReplicas;
    expect(at(50)).toBe(1);
    // Saturated: one replica serves 150 of 750, the guard adds one and the served rate says 2 → then 3 ...
    // until the served tokens show the real demand; never above 8.
    expect(Math.max(...r.desired)).toBeLessThanOrEqual(8);
    expect(at(350)).toBeGreaterThanOrEqual(8);
    expect(at(360 + 290)).toBeGreaterThanOrEqual(8);
    expect(at(900)).toBe(1);
    expect(r.flaps).toBe(1);
    // Reaction: the first scale-up happens in the first round after the step.
    expect(r.steps.find((s) => s.t === 60)!.decision.desiredReplicas).toBeGreaterThan(1);
  });

  test('ramp: desired never goes down while the load rises, and serves it', () => {
    const r = simulate({ policy, initialReplicas: 1, seconds: 600, load: (t) => t * 1.2 });
    for (let k = 1; k < r.desired.length; k++) expect(r.desired[k]).toBeGreaterThanOrEqual(r.desired[k - 1]!);
    const last = r.steps[r.steps.length - 1]!;
    // One decision interval plus one startup behind the load.
    expect(last.decision.desiredReplicas).toBeGreaterThanOrEqual(Math.ceil((600 - 40) * 1.2 / 100));
    expect(r.flaps).toBe(0);
  });

  test('square wave (60 s high, 60 s low): the scale-down window keeps the peak size, no flapping', () => {
    const r = simulate({ policy, initialReplicas: 1, seconds: 720, load: (t) => (Math.floor(t / 60) % 2 === 1 ? 400 : 100) });
    expect(r.flaps).toBe(0);
    expect(Math.max(...r.desired)).toBe(4);
    expect(r.desired[r.desired.length - 1]).toBe(4);
  });

  test('square wave with no scale-down window follows the wave (what the window prevents)', () => {
    const r = simulate({ policy: { ...policy, scaleDownStabilizationSeconds: 0 }, initialReplicas: 1, seconds: 720, load: (t) => (Math.floor(t / 60) % 2 === 1 ? 400 : 100) });
    expect(r.flaps).toBeGreaterThanOrEqual(5);
  });

  test('noise (±8% around 300 tok/s): settles at 3 and never changes', () => {
    const n = noise(7);
    const r = simulate({ policy, initialReplicas: 3, seconds: 1200, load: () => 300 * (1 + 0.08 * n()) });
    expect(new Set(r.desired)).toEqual(new Set([3]));
  });

  test('a pod that never becomes Ready does not stall the loop', () => {
    const r = simulate({ policy: { ...policy, startupTimeoutSeconds: 120 }, initialReplicas: 1, seconds: 400, load: (t) => (t >= 30 ? 350 : 80), neverReady: [1] });
    const at = (t: number) => r.steps.find((s) => s.t === t)!.decision;
    // Saturated: one more (the pod that will never be Ready); while it may still come, nothing more.
    expect(at(30).desiredReplicas).toBe(2);
    expect(at(140).reason).toBe('WaitingForCapacity');
    expect(at(140).desiredReplicas).toBe(2);
    // Past its startup timeout it is not counted as coming: the loop goes on deciding on the ready replicas.
    expect(at(160).message).toMatch(/1 not Ready after the 120 s startup timeout/);
    const last = r.steps[r.steps.length - 1]!;
    expect(last.ready).toBeGreaterThanOrEqual(3);
    expect(last.served).toBeCloseTo(350, 0);
  });

  test('pending replicas: no extra replicas for the same demand while they load (startup 120 s)', () => {
    const r = simulate({ policy, initialReplicas: 2, seconds: 400, startupSeconds: 120, load: (t) => (t >= 10 ? 400 : 150) });
    // 2 replicas saturated at 150 each: the served rate says 3, the guard one more, then they come.
    expect(Math.max(...r.desired)).toBeLessThanOrEqual(5);
    expect(r.desired[r.desired.length - 1]).toBe(4);
  });
});
