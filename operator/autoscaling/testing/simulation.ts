// A small model of replicas under a load profile, for the decision's table tests: each ready replica
// serves its share of the offered tokens/s up to its capacity, and what it cannot serve waits (the
// saturation guard sees it). New replicas are Pending/loading for `startupSeconds` first. The loop
// decides every `intervalSeconds`, as the operator does.
import { decide, initialState, type Decision, type PodInput, type ScalingPolicy, type ScalingState } from '../decision.js';

export interface SimulationOptions {
  policy: ScalingPolicy;
  /** Offered tokens/s at t seconds. */
  load: (t: number) => number;
  seconds: number;
  initialReplicas: number;
  startupSeconds?: number;
  /** Tokens/s one replica can serve (above it requests queue). */
  capacity?: number;
  intervalSeconds?: number;
  /** Pods (by index of creation) that never become Ready. */
  neverReady?: number[];
}

export interface Step {
  t: number;
  offered: number;
  served: number;
  ready: number;
  decision: Decision;
}

export interface SimulationResult {
  steps: Step[];
  /** Desired replicas over time. */
  desired: number[];
  /** Direction changes of desired (up then down or down then up). */
  flaps: number;
  changes: number;
}

interface SimPod { name: string; created: number; readyAt: number }

export function simulate(o: SimulationOptions): SimulationResult {
  const interval = o.intervalSeconds ?? 10;
  const startup = o.startupSeconds ?? 30;
  const capacity = o.capacity ?? o.policy.targetTokensPerSecondPerReplica * 1.5;
  let created = 0;
  const newPod = (t: number, immediate: boolean): SimPod => {
    const index = created++;
    const readyAt = o.neverReady?.includes(index) ? Infinity : immediate ? t : t + startup;
    return { name: `pod-${index}`, created: t, readyAt };
  };
  let pods: SimPod[] = Array.from({ length: o.initialReplicas }, () => newPod(-3600, true));
  let state: ScalingState = initialState(-3600_000, o.initialReplicas);
  let replicas = o.initialReplicas;
  const steps: Step[] = [];
  for (let t = 0; t <= o.seconds; t += interval) {
    const offered = o.load(t);
    const ready = pods.filter((p) => p.readyAt <= t);
    const share = ready.length > 0 ? offered / ready.length : 0;
    const served = Math.min(share, capacity);
    const inputs: PodInput[] = pods.map((p) => p.readyAt <= t
      ? {
        name: p.name, state: 'ready', ageSeconds: t - p.created,
        metrics: {
          tokensPerSecond: served, runningRequests: 4, sampledAt: t * 1000,
          // Overloaded, its queue grows: waiting passes the saturation threshold.
          waitingRequests: share > capacity ? Math.max(5, Math.ceil((share - capacity) / 10)) : 0,
          kvCacheUsage: Math.min(share / capacity, 1) * 0.6,
        },
      }
      : { name: p.name, state: 'starting', ageSeconds: t - p.created });
    const decision = decide({ now: t * 1000, policy: o.policy, currentReplicas: replicas, pods: inputs, sourcesFailed: false, state });
    state = decision.state;
    steps.push({ t, offered, served: served * ready.length, ready: ready.length, decision });
    const desired = decision.desiredReplicas;
    // The ReplicaSet controller removes pods that are not ready first, then the newest.
    if (desired > replicas) pods = [...pods, ...Array.from({ length: desired - replicas }, () => newPod(t, false))];
    else if (desired < replicas) {
      const order = [...pods].sort((a, b) => (a.readyAt <= t ? 1 : 0) - (b.readyAt <= t ? 1 : 0) || b.created - a.created);
      const remove = new Set(order.slice(0, replicas - desired));
      pods = pods.filter((p) => !remove.has(p));
    }
    replicas = desired;
  }
  const desired = steps.map((s) => s.decision.desiredReplicas);
  let flaps = 0;
  let changes = 0;
  let last = 0;
  for (let k = 1; k < desired.length; k++) {
    const d = Math.sign(desired[k]! - desired[k - 1]!);
    if (d === 0) continue;
    changes++;
    if (last !== 0 && d !== last) flaps++;
    last = d;
  }
  return { steps, desired, flaps, changes };
}

/** Deterministic noise in [-1, 1] (a linear congruential generator), so table rows are reproducible. */
export function noise(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x / 2 ** 32) * 2 - 1;
  };
}
