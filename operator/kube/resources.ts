// REST paths of the resources the operator touches, namespaced or across all namespaces.
import { GROUP, PLURAL, VERSION } from '../api/jambadeployment.js';

export interface Resource {
  /** For metrics and logs. */
  name: string;
  /** '/api/v1' or '/apis/GROUP/VERSION'. */
  prefix: string;
  plural: string;
}

export const RESOURCES = {
  jambaDeployments: { name: 'jambadeployments', prefix: `/apis/${GROUP}/${VERSION}`, plural: PLURAL },
  deployments: { name: 'deployments', prefix: '/apis/apps/v1', plural: 'deployments' },
  services: { name: 'services', prefix: '/api/v1', plural: 'services' },
  podDisruptionBudgets: { name: 'poddisruptionbudgets', prefix: '/apis/policy/v1', plural: 'poddisruptionbudgets' },
  pods: { name: 'pods', prefix: '/api/v1', plural: 'pods' },
  jobs: { name: 'jobs', prefix: '/apis/batch/v1', plural: 'jobs' },
  events: { name: 'events', prefix: '/api/v1', plural: 'events' },
  leases: { name: 'leases', prefix: '/apis/coordination.k8s.io/v1', plural: 'leases' },
  inferencePools: { name: 'inferencepools', prefix: '/apis/inference.networking.k8s.io/v1', plural: 'inferencepools' },
} as const satisfies Record<string, Resource>;

/** Collection path; without a namespace, across all namespaces. */
export function collectionPath(r: Resource, namespace?: string): string {
  return namespace ? `${r.prefix}/namespaces/${encodeURIComponent(namespace)}/${r.plural}` : `${r.prefix}/${r.plural}`;
}

export function objectPath(r: Resource, namespace: string, name: string, subresource?: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
}
