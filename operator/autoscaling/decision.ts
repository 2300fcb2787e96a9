// The autoscaler's decision: a pure function from what the pods report to the replicas wanted, with the
// reason in words. It follows the HorizontalPodAutoscaler's algorithm where one exists (tolerance, missing
// metrics, stabilization windows, scale-up rate limit) and adds what an LLM server needs:
//   - the signal is tokens/s: desired = ceil(total tokens/s ÷ target per replica);
//   - a saturation guard (llm-d's definition: KV cache ≥ 0.8 or ≥ 5 waiting; here also the Mamba state
//     pool ≥ 0.8): a saturated replica serves fewer tokens than are asked of it, so its rate understates demand;
//   - pods still Pending or loading weights are capacity that is coming (until their startup timeout):
//     the saturation guard adds nothing more while they come;
//   - missing or stale metrics never scale down and never stall: a ready pod without a fresh metric counts
//     as 0 when scaling up and as the target when scaling down (as the HPA); no metric at all → hold.

/** The policy, from the JambaDeployment's autoscaling block and the runtime's startup timeout. */
export interface ScalingPolicy {
  minReplicas: number;
  maxReplicas: number;
  targetTokensPerSecondPerReplica: number;
  /** Scale up on the lowest recommendation of this window (HPA behavior.scaleUp.stabilizationWindowSeconds). */
  scaleUpStabilizationSeconds: number;
  /** Scale down on the highest recommendation of this window (HPA default 300). */
  scaleDownStabilizationSeconds: number;
  /** A pod not Ready after this long is no longer capacity that is coming. */
  startupTimeoutSeconds: number;
  /** A pod's metrics older than this are stale (missing). */
  staleAfterSeconds: number;
}

/** Constants of the algorithm, as the HPA's defaults and llm-d's saturation thresholds. */
export const SCALING_CONSTANTS = {
  /** No change while total demand is within ±10% of what the ready replicas carry at target. */
  tolerance: 0.1,
  /** Scale-up limit per period: the larger of doubling and adding 4 pods, per 15 s. */
  scaleUpPercent: 100,
  scaleUpPods: 4,
  scaleUpPeriodSeconds: 15,
  /** A replica is saturated at this KV-cache (or Mamba state pool) usage, or with this many requests waiting. */
  saturatedUsage: 0.8,
  saturatedWaiting: 5,
} as const;

export interface PodMetrics {
  /** Tokens per second over the metrics window (counter deltas; resets handled by the source). */
  tokensPerSecond: number;
  waitingRequests: number;
  runningRequests: number;
  kvCacheUsage: number;
  /** Mamba state slots in use ÷ total, when the runtime exports both. */
  stateUsage?: number;
  /** When the newest sample was taken (ms since the epoch). */
  sampledAt: number;
}

export interface PodInput {
  name: string;
  /** Ready: serving. Starting: Pending or loading weights (not Ready yet). Terminating pods are left out by the caller. */
  state: 'ready' | 'starting';
  /** Seconds since the pod was created. */
  ageSeconds: number;
  /** Undefined when the pod's metrics are missing. */
  metrics?: PodMetrics;
}

export interface ScaleEvent {
  at: number;
  from: number;
  to: number;
}

/** What the decision remembers between rounds (the HPA keeps the same in memory). */
export interface ScalingState {
  recommendations: Array<{ at: number; replicas: number }>;
  scaleEvents: ScaleEvent[];
}

export interface DecisionInput {
  now: number;
  policy: ScalingPolicy;
  /** Replicas asked for now (the Deployment's spec.replicas). */
  currentReplicas: number;
  pods: PodInput[];
  /** Every metrics source failed this round. */
  sourcesFailed: boolean;
  state: ScalingState;
}

export type DecisionReason =
  | 'NoMetrics' | 'WithinTolerance' | 'ScaleUp' | 'ScaleDown' | 'Steady' | 'Saturated' | 'WaitingForCapacity'
  | 'StabilizingUp' | 'StabilizingDown' | 'Bounds';

export type Limit = 'ScaleUpLimit' | 'TooFewReplicas' | 'TooManyReplicas';

export interface Decision {
  desiredReplicas: number;
  currentReplicas: number;
  /** Before stabilization, rate limit and bounds; undefined when there was nothing to decide on. */
  recommendation?: number;
  /** Tokens/s of the ready replicas with fresh metrics. */
  tokensPerSecond: number;
  reason: DecisionReason;
  /** Bounds or the rate limit held the replicas back from the recommendation. */
  limitedBy?: Limit;
  message: string;
  inputs: {
    readyReplicas: number;
    startingReplicas: number;
    /** Not Ready after their startup timeout: not counted as capacity that is coming. */
    stuckReplicas: number;
    withoutMetrics: number;
    saturatedReplicas: number;
  };
  state: ScalingState;
}

export function initialState(now: number, currentReplicas: number): ScalingState {
  // As if the current size had just been recommended: a restarted operator does not scale down before a
  // full scale-down window has shown it should.
  return { recommendations: [{ at: now, replicas: currentReplicas }], scaleEvents: [] };
}

export function isSaturated(m: PodMetrics): boolean {
  const c = SCALING_CONSTANTS;
  return m.waitingRequests >= c.saturatedWaiting || m.kvCacheUsage >= c.saturatedUsage || (m.stateUsage ?? 0) >= c.saturatedUsage;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** ceil that ignores floating-point dust (3.0000000001 tokens of demand is 3 replicas). */
function ceilReplicas(x: number): number {
  return Math.ceil(x - 1e-9);
}

function clamp(n: number, p: ScalingPolicy): number {
  return Math.min(Math.max(n, p.minReplicas), p.maxReplicas);
}

function prune(state: ScalingState, now: number, p: ScalingPolicy): ScalingState {
  const keepMs = Math.max(p.scaleUpStabilizationSeconds, p.scaleDownStabilizationSeconds, SCALING_CONSTANTS.scaleUpPeriodSeconds) * 1000;
  return {
    recommendations: state.recommendations.filter((r) => now - r.at <= keepMs),
    scaleEvents: state.scaleEvents.filter((e) => now - e.at <= keepMs),
  };
}

/** The largest replica count the scale-up rate limit allows now (HPA: periodStart from the additions in the period). */
export function scaleUpLimit(current: number, events: readonly ScaleEvent[], now: number): number {
  const c = SCALING_CONSTANTS;
  const added = events
    .filter((e) => now - e.at < c.scaleUpPeriodSeconds * 1000 && e.to > e.from)
    .reduce((sum, e) => sum + (e.to - e.from), 0);
  const periodStart = Math.max(current - added, 0);
  return Math.max(Math.ceil(periodStart * (1 + c.scaleUpPercent / 100)), periodStart + c.scaleUpPods);
}

export function decide(i: DecisionInput): Decision {
  const p = i.policy;
  const current = i.currentReplicas;
  const state = prune(i.state, i.now, p);
  const ready = i.pods.filter((x) => x.state === 'ready');
  const starting = i.pods.filter((x) => x.state === 'starting');
  const coming = starting.filter((x) => x.ageSeconds < p.startupTimeoutSeconds);
  const fresh = ready.filter((x) => x.metrics && i.now - x.metrics.sampledAt <= p.staleAfterSeconds * 1000);
  const missing = ready.length - fresh.length;
  const saturated = fresh.filter((x) => isSaturated(x.metrics!));
  const known = fresh.reduce((sum, x) => sum + x.metrics!.tokensPerSecond, 0);
  const inputs = {
    readyReplicas: ready.length, startingReplicas: coming.length, stuckReplicas: starting.length - coming.length,
    withoutMetrics: missing, saturatedReplicas: saturated.length,
  };
  const target = p.targetTokensPerSecondPerReplica;
  const seen = `${round1(known)} tok/s from ${plural(fresh.length, 'ready replica')}` +
    (missing > 0 ? `; ${missing} without fresh metrics` : '') +
    (coming.length > 0 ? `; ${coming.length} starting` : '') +
    (inputs.stuckReplicas > 0 ? `; ${inputs.stuckReplicas} not Ready after the ${p.startupTimeoutSeconds} s startup timeout (not counted as coming)` : '');

  const finish = (desired: number, reason: DecisionReason, message: string, extra: Partial<Decision> = {}): Decision => {
    const events = desired !== current ? [...state.scaleEvents, { at: i.now, from: current, to: desired }] : state.scaleEvents;
    return {
      desiredReplicas: desired, currentReplicas: current, tokensPerSecond: known, reason, message, inputs,
      ...extra, state: { recommendations: extra.state?.recommendations ?? state.recommendations, scaleEvents: events },
    };
  };

  // Nothing to decide on: hold (bounds still apply, so an edited min/max takes effect).
  if (i.sourcesFailed || fresh.length === 0) {
    const why = i.sourcesFailed ? 'every metrics source failed'
      : ready.length === 0 ? 'no ready replica to measure' : `none of the ${plural(ready.length, 'ready replica')} has fresh metrics`;
    const held = clamp(current, p);
    const bound = held !== current ? `; bounds [${p.minReplicas}, ${p.maxReplicas}] make it ${held}` : '';
    return finish(held, 'NoMetrics', `holding ${current}: ${why}${bound}`);
  }

  // Demand in tokens/s. Ready pods without fresh metrics: 0 when the known ones ask for more, the target
  // when they ask for less (never a scale-down on what is unknown).
  const scalingUp = known > target * fresh.length;
  const demand = known + (scalingUp ? 0 : target * missing);
  const usage = demand / (target * ready.length);
  let recommendation: number;
  let reason: DecisionReason;
  let why: string;
  if (Math.abs(usage - 1) <= SCALING_CONSTANTS.tolerance) {
    recommendation = current;
    reason = 'WithinTolerance';
    why = `${round1(demand)} tok/s is within ${SCALING_CONSTANTS.tolerance * 100}% of ${ready.length} × ${target} tok/s`;
  } else {
    recommendation = ceilReplicas(demand / target);
    reason = recommendation > current ? 'ScaleUp' : recommendation < current ? 'ScaleDown' : 'Steady';
    why = `${round1(demand)} tok/s ÷ ${target} tok/s per replica → ${recommendation}`;
    if (missing > 0) why += ` (replicas without metrics counted as ${scalingUp ? '0' : 'the target'})`;
  }

  // Saturation: no scale-down while any replica is saturated; one more when all are and none is coming.
  if (saturated.length > 0) {
    const all = saturated.length === fresh.length;
    const what = `${plural(saturated.length, 'replica')} saturated (KV or state ≥ ${SCALING_CONSTANTS.saturatedUsage} or ≥ ${SCALING_CONSTANTS.saturatedWaiting} waiting)`;
    if (all && coming.length > 0 && recommendation <= current) {
      recommendation = current;
      reason = 'WaitingForCapacity';
      why = `${what}; ${coming.length} coming already: nothing more for the same demand`;
    } else {
      const floor = all ? current + 1 : current;
      if (recommendation < floor) {
        recommendation = floor;
        reason = 'Saturated';
        why = `${what}: ${floor > current ? 'one more replica' : 'no scale-down'}`;
      }
    }
  }

  // Stabilization (HPA): up on the lowest recommendation in the up window, down on the highest in the down window.
  const recommendations = [...state.recommendations, { at: i.now, replicas: recommendation }];
  const within = (seconds: number) => recommendations.filter((r) => i.now - r.at <= seconds * 1000).map((r) => r.replicas);
  const upBound = Math.min(...within(p.scaleUpStabilizationSeconds));
  const downBound = Math.max(...within(p.scaleDownStabilizationSeconds));
  let desired = current;
  if (desired < upBound) desired = upBound;
  if (desired > downBound) desired = downBound;
  // The reason names stabilization only when it holds the count where it is.
  if (recommendation > current && desired < recommendation) {
    if (desired === current) reason = 'StabilizingUp';
    why += `; scale-up stabilization (${p.scaleUpStabilizationSeconds} s) keeps ${desired}`;
  } else if (recommendation < current && desired > recommendation) {
    if (desired === current) reason = 'StabilizingDown';
    why += `; scale-down stabilization (${p.scaleDownStabilizationSeconds} s) keeps ${desired}`;
  }

  let limitedBy: Limit | undefined;
  const rateLimit = Math.max(scaleUpLimit(current, state.scaleEvents, i.now), p.minReplicas);
  if (desired > rateLimit) {
    desired = rateLimit;
    limitedBy = 'ScaleUpLimit';
    why += `; the scale-up limit (×2 or +${SCALING_CONSTANTS.scaleUpPods} per ${SCALING_CONSTANTS.scaleUpPeriodSeconds} s) allows ${rateLimit} now`;
  }
  const bounded = clamp(desired, p);
  if (bounded !== desired) {
    why += `; bounds [${p.minReplicas}, ${p.maxReplicas}] make it ${bounded}`;
    // An edited bound moving the count against the recommendation: the bounds decided, not the demand.
    const moved = Math.sign(bounded - current);
    if (moved !== 0 && moved !== Math.sign(recommendation - current)) reason = 'Bounds';
    desired = bounded;
  }
  // Pinned at a bound against demand: the ScalingLimited condition says so.
  if (recommendation > p.maxReplicas && desired === p.maxReplicas) limitedBy = 'TooManyReplicas';
  else if (recommendation < p.minReplicas && desired === p.minReplicas) limitedBy = 'TooFewReplicas';

  const verb = desired > current ? `scale up ${current} → ${desired}` : desired < current ? `scale down ${current} → ${desired}` : `keep ${current}`;
  return finish(desired, reason, `${verb}: ${seen}; ${why}`, {
    recommendation, limitedBy, state: { recommendations, scaleEvents: [] },
  });
}
