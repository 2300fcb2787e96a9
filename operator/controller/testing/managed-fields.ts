// What the API server records in managedFields for an object applied with server-side apply, for the
// types the operator applies: every field set becomes `f:<name>`, entries of keyed lists `k:{keys}`,
// atomic lists and scalars are leaves. The cluster tests check the real server's records; this lets
// the drift tables describe ownership the same way without one.
import type { KubernetesObject, V1ManagedFieldsEntry } from '@kubernetes/client-node';
import type { FieldSet } from '../drift.js';

/** Keys of the keyed ("map") lists among the fields our children use; other lists are atomic. */
function listKeys(field: string, path: string): string[] | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'env':
    case 'volumes':
      return ['name'];
    case 'volumeMounts':
      return ['mountPath'];
    case 'ownerReferences':
      return ['uid'];
    case 'ports':
      return path.includes('containers') ? ['containerPort', 'protocol'] : ['port', 'protocol'];
    default:
      return undefined;
  }
}

/** Structs and maps the API marks atomic (owned as a whole): label selectors, node selectors, owner references. */
const ATOMIC = new Set(['selector', 'requiredDuringSchedulingIgnoredDuringExecution']);
const ATOMIC_ENTRIES = new Set(['ownerReferences']);

function fieldSet(value: unknown, field: string, path: string): FieldSet {
  if (ATOMIC.has(field)) return {};
  if (Array.isArray(value)) {
    const keys = listKeys(field, path);
    if (!keys) return {};
    const out: FieldSet = {};
    for (const item of value as Record<string, unknown>[]) {
      const id = Object.fromEntries(keys.map((k) => [k, item[k]]));
      out[`k:${JSON.stringify(id)}`] = ATOMIC_ENTRIES.has(field) ? {} : { '.': {}, ...fieldSet(item, '', `${path}[]`) };
    }
    return out;
  }
  if (value === null || typeof value !== 'object' || Object.keys(value).length === 0) return {};
  const out: FieldSet = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined) continue;
    const sub = fieldSet(v, k, `${path}.${k}`);
    out[`f:${k}`] = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 ? { '.': {}, ...sub } : sub;
  }
  return out;
}

/** The managedFields entry `manager` gets for applying `applied` (identity fields excluded, as the server does). */
export function applyEntry(applied: KubernetesObject, manager = 'jamba-operator'): V1ManagedFieldsEntry {
  const { apiVersion: _a, kind: _k, metadata, ...rest } = applied as Record<string, unknown> & KubernetesObject;
  const { name: _n, namespace: _ns, ...meta } = metadata ?? {};
  const fields = fieldSet({ ...(Object.keys(meta).length > 0 ? { metadata: meta } : {}), ...rest }, '', '');
  return { manager, operation: 'Apply', apiVersion: applied.apiVersion, fieldsType: 'FieldsV1', fieldsV1: fields };
}

/** `applied` as the server returns it: our apply entry recorded, a resourceVersion, plus `extra` entries. */
export function asApplied<T extends KubernetesObject>(applied: T, extra: V1ManagedFieldsEntry[] = []): T {
  const copy = structuredClone(applied);
  copy.metadata = { ...copy.metadata, resourceVersion: '42', managedFields: [applyEntry(applied), ...extra] };
  return copy;
}
