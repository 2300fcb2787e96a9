// What a decision of the autoscaler puts in the JambaDeployment's status: the tokens/s seen (the TOKENS/S
// column), the last decisions that changed something (with their inputs and reason), lastScaleTime, the
// ScalingLimited condition, and the events for `kubectl describe`. Pure.
import type { JambaDeploymentStatus, ScalingDecisionRecord } from '../api/jambadeployment.js';
import type { Decision } from './decision.js';

export const KEPT_DECISIONS = 10;

/** One round of the autoscaler: its decision, when, and from which source. */
export interface AutoscalerReport {
  decision: Decision;
  /** ms since the epoch */
  at: number;
  source: 'scrape' | 'prometheus';
  /**
   * A reconcile already applied this decision: later reconciles keep status.desiredReplicas (within the
   * current bounds), so bounds edited since are not undone by this older decision.
   */
  applied?: boolean;
}

export interface ScalingVerdict {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export interface ScalingFields {
  tokensPerSecond?: number;
  lastScaleTime?: string;
  scalingDecisions?: ScalingDecisionRecord[];
}

export interface ScalingStatus {
  fields: ScalingFields;
  limited: ScalingVerdict;
  events: Array<{ type: 'Normal' | 'Warning'; reason: string; message: string }>;
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function record(r: AutoscalerReport): ScalingDecisionRecord {
  const d = r.decision;
  return {
    time: isoSeconds(r.at), from: d.currentReplicas, to: d.desiredReplicas, reason: d.reason, message: d.message.slice(0, 2048),
    source: r.source, tokensPerSecond: Math.round(d.tokensPerSecond * 10) / 10,
    ...(d.recommendation !== undefined ? { recommendation: d.recommendation } : {}),
    readyReplicas: d.inputs.readyReplicas, startingReplicas: d.inputs.startingReplicas,
    withoutMetrics: d.inputs.withoutMetrics, saturatedReplicas: d.inputs.saturatedReplicas,
  };
}

const LIMITS: Record<string, string> = {
  TooManyReplicas: 'demand wants more replicas than autoscaling.maxReplicas',
  TooFewReplicas: 'demand wants fewer replicas than autoscaling.minReplicas',
  ScaleUpLimit: 'the scale-up rate limit holds the replica count back',
};

/**
 * The status fields for `report` (the latest round; undefined before the first). A decision is recorded
 * when it changes the replicas or the reason, once (reconciles between rounds see the same report).
 */
export function scalingStatus(previous: JambaDeploymentStatus | undefined, report: AutoscalerReport | undefined): ScalingStatus {
  const kept = previous?.scalingDecisions ?? [];
  const before: ScalingFields = {
    ...(previous?.tokensPerSecond !== undefined ? { tokensPerSecond: previous.tokensPerSecond } : {}),
    ...(previous?.lastScaleTime ? { lastScaleTime: previous.lastScaleTime } : {}),
    ...(kept.length > 0 ? { scalingDecisions: kept } : {}),
  };
  const oldLimited = previous?.conditions?.find((c) => c.type === 'ScalingLimited');
  if (!report) {
    const limited: ScalingVerdict = oldLimited
      ? { status: oldLimited.status === 'True' ? 'True' : 'False', reason: oldLimited.reason, message: oldLimited.message }
      : { status: 'False', reason: 'NoDecisionYet', message: 'the autoscaler has not decided yet' };
    return { fields: before, limited, events: [] };
  }
  const d = report.decision;
  const last = kept[kept.length - 1];
  const entry = record(report);
  const changed = d.desiredReplicas !== d.currentReplicas;
  const news = last?.time !== entry.time && (changed || last?.reason !== entry.reason || last?.to !== entry.to);
  const decisions = news ? [...kept, entry].slice(-KEPT_DECISIONS) : kept;
  const fields: ScalingFields = {
    tokensPerSecond: entry.tokensPerSecond,
    ...(changed ? { lastScaleTime: entry.time } : before.lastScaleTime ? { lastScaleTime: before.lastScaleTime } : {}),
    ...(decisions.length > 0 ? { scalingDecisions: decisions } : {}),
  };
  const limited: ScalingVerdict = d.limitedBy
    ? { status: 'True', reason: d.limitedBy, message: `${LIMITS[d.limitedBy]}: ${d.message}` }
    : { status: 'False', reason: 'DesiredWithinRange', message: `the desired count (${d.desiredReplicas}) is within [min, max] and the rate limit` };
  const events: ScalingStatus['events'] = [];
  if (news && changed) {
    events.push({ type: 'Normal', reason: d.desiredReplicas > d.currentReplicas ? 'ScaledUp' : 'ScaledDown', message: d.message });
  }
  if (limited.status === 'True' && (oldLimited?.status !== 'True' || oldLimited.reason !== limited.reason)) {
    events.push({ type: 'Warning', reason: 'ScalingLimited', message: limited.message });
  }
  return { fields, limited, events };
}
