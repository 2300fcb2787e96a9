// Names and labels shared by the children, the informers and the status.
import type { V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, KIND, type JambaDeployment } from '../api/jambadeployment.js';

export const FIELD_MANAGER = 'jamba-operator';
/** Every pod of a JambaDeployment carries this label; its value is the JambaDeployment's name. */
export const INSTANCE_LABEL = 'serving.jamba.dev/jambadeployment';
export const GPU_MEMORY_LABEL = 'nvidia.com/gpu.memory';
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
export const CONTAINER_NAME = 'runtime';
export const PORT_NAME = 'http';
export const MODEL_MOUNT = '/models';
/** On model download Jobs and their pods: which (repo, revision, claim) they fill (a hash; see desired.ts). */
export const MODEL_CACHE_LABEL = 'serving.jamba.dev/model-cache';
/** Annotation on a download Job: its attempt number (failed Jobs are replaced by the next attempt). */
export const DOWNLOAD_ATTEMPT_ANNOTATION = 'serving.jamba.dev/download-attempt';
/** `jamba-runtime download --metrics-port`: /progress (JSON) and /metrics of a download in progress. */
export const DOWNLOAD_PROGRESS_PORT = 9100;
export const DOWNLOAD_CONTAINER = 'download';

export function selectorLabels(jd: JambaDeployment): Record<string, string> {
  return { [INSTANCE_LABEL]: jd.metadata.name! };
}

export function selectorString(jd: JambaDeployment): string {
  return Object.entries(selectorLabels(jd)).map(([k, v]) => `${k}=${v}`).join(',');
}

export function commonLabels(jd: JambaDeployment): Record<string, string> {
  return {
    ...selectorLabels(jd),
    'app.kubernetes.io/name': 'jamba-runtime',
    'app.kubernetes.io/instance': jd.metadata.name!,
    'app.kubernetes.io/managed-by': FIELD_MANAGER,
  };
}

export function ownerReference(jd: JambaDeployment): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: jd.metadata.name!, uid: jd.metadata.uid!, controller: true, blockOwnerDeletion: true };
}

export function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}
