// Builders for the controller's table tests: a server-defaulted JambaDeployment and cluster objects
// in the shapes the API server returns.
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { API_VERSION, KIND, type JambaDeployment } from '../../api/jambadeployment.js';
import { withSpecDefaults } from '../../api/defaults.js';
import { INSTANCE_LABEL } from '../labels.js';

export function jambaDeployment(spec: Record<string, unknown> = {}, meta: { name?: string; generation?: number } = {}): JambaDeployment {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: meta.name ?? 'mini', namespace: 'ns', uid: 'uid-1', generation: meta.generation ?? 1 },
    spec: withSpecDefaults({
      model: { name: 'ai21labs/AI21-Jamba-1.5-Mini', source: { pvc: { claimName: 'weights', subPath: 'jamba-mini' } } },
      ...spec,
    }),
  };
}

export function deploymentStatus(s: { replicas?: number; ready?: number; updated?: number; generation?: number; observed?: number; deadline?: boolean }): V1Deployment {
  return {
    metadata: { name: 'mini', namespace: 'ns', generation: s.generation ?? 1 },
    status: {
      observedGeneration: s.observed ?? s.generation ?? 1,
      replicas: s.replicas ?? 0,
      readyReplicas: s.ready ?? 0,
      updatedReplicas: s.updated ?? s.replicas ?? 0,
      ...(s.deadline ? { conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "mini-1" has timed out progressing.' }] } : {}),
    },
  };
}

export type PodState = 'unschedulable' | 'loading' | 'ready' | 'crashloop' | 'pending';

export function pod(state: PodState, name = `mini-${state}`): V1Pod {
  const base: V1Pod = { metadata: { name, namespace: 'ns', labels: { [INSTANCE_LABEL]: 'mini' } } };
  switch (state) {
    case 'unschedulable':
      return { ...base, status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/5 nodes are available: 5 node(s) didn\'t match Pod\'s node affinity/selector.' }] } };
    case 'pending':
      return { ...base, status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] } };
    case 'loading':
      return { ...base, status: { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'False' }] } };
    case 'ready':
      return { ...base, status: { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True' }] } };
    case 'crashloop':
      return { ...base, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'runtime', image: 'x', imageID: '', ready: false, restartCount: 5, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 5m0s' } } }] } };
  }
}
