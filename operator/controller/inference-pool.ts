// The Gateway API Inference Extension's InferencePool (inference.networking.k8s.io/v1, GA) for a
// JambaDeployment that asks for one: the pool selects the JambaDeployment's pods on the runtime's port and
// names the endpoint picker (EPP) Service that routes to them. The EPP reads vLLM's metric names
// (vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc), so the pods of such
// a JambaDeployment run with --vllm-metrics (desired.ts).
import type { KubernetesObject } from '@kubernetes/client-node';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { commonLabels, ownerReference, selectorLabels } from './labels.js';

export const INFERENCE_POOL_API_VERSION = 'inference.networking.k8s.io/v1';

export interface InferencePool extends KubernetesObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    targetPorts: Array<{ number: number }>;
    endpointPickerRef: { name: string; port: { number: number }; failureMode: 'FailOpen' | 'FailClose' };
  };
}

/** The pool a JambaDeployment asks for, or undefined when it asks for none. */
export function desiredInferencePool(jd: JambaDeployment): InferencePool | undefined {
  const pool = jd.spec.inferencePool;
  if (!pool) return undefined;
  const epp = pool.endpointPicker;
  return {
    apiVersion: INFERENCE_POOL_API_VERSION,
    kind: 'InferencePool',
    metadata: { name: jd.metadata.name, namespace: jd.metadata.namespace, labels: commonLabels(jd), ownerReferences: [ownerReference(jd)] },
    spec: {
      selector: { matchLabels: selectorLabels(jd) },
      targetPorts: [{ number: jd.spec.runtime.port }],
      endpointPickerRef: { name: epp.name, port: { number: epp.port }, failureMode: epp.failureMode },
    },
  };
}
