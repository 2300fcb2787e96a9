// Drain-safe scale-down: before the replica count goes down, each ready pod's
// controller.kubernetes.io/pod-deletion-cost is set to its requests in flight, so the ReplicaSet
// controller (which removes unready pods first, then the lowest cost) removes the replicas with the
// fewest streams to drain. A pod whose load is unknown costs the most: it is kept. Pure.

export const DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';
/** The cost of a pod whose requests in flight are unknown (int32, as the annotation must be). */
export const UNKNOWN_LOAD_COST = 2_147_483_647;

export interface PodLoad {
  name: string;
  /** Running + waiting requests; undefined when the pod had no metrics this round. */
  inFlight?: number;
  /** The annotation's current value, if any. */
  currentCost?: string;
}

/** The annotations to write (only those that differ from what the pods carry). */
export function deletionCostPatches(pods: readonly PodLoad[]): Array<{ name: string; cost: string }> {
  return pods
    .map((p) => ({ name: p.name, cost: String(p.inFlight === undefined ? UNKNOWN_LOAD_COST : Math.min(Math.round(p.inFlight), UNKNOWN_LOAD_COST - 1)) }))
    .filter((p, k) => pods[k]!.currentCost !== p.cost);
}
