// Decides whether an observed child still carries what the operator applied, judged only on the
// fields this field manager owns (its server-side-apply entry in metadata.managedFields):
//   - a field or list entry that someone else added (`kubectl set env`, `kubectl annotate`, another
//     controller) is theirs: server-side apply would not remove it, so it is no drift;
//   - a field we want but no longer own (someone changed it, which moved its ownership) is drift, and
//     so is a field we still own that the spec no longer wants (the apply removes it);
//   - values are compared after the API server's rewrites: quantities by value (`0.5` = `500m`),
//     defaults the server fills in below a field we own as a whole are fine.
// Keyed list entries (containers by name, ports by containerPort+protocol, ...) are matched by the
// keys the managed fields name, not by position.
import type { KubernetesObject, V1ManagedFieldsEntry } from '@kubernetes/client-node';

/** A managedFields fieldsV1 set: `f:<field>`, `k:<keys json>`, `v:<value json>`, `i:<index>`, and `.` (the entry itself). */
export type FieldSet = { [key: string]: FieldSet };

/** The fields `manager` owns through server-side apply (not status, not other operations); undefined when none. */
export function ownedFields(observed: KubernetesObject, manager: string): FieldSet | undefined {
  const entries = (observed.metadata?.managedFields ?? []).filter(
    (e: V1ManagedFieldsEntry) => e.manager === manager && e.operation === 'Apply' && !e.subresource,
  );
  if (entries.length === 0) return undefined;
  return entries.map((e) => (e.fieldsV1 ?? {}) as FieldSet).reduce(mergeFieldSets, {});
}

function mergeFieldSets(a: FieldSet, b: FieldSet): FieldSet {
  const out: FieldSet = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = out[k] ? mergeFieldSets(out[k], v) : v;
  return out;
}

/**
 * The first path where `observed` departs from `desired` on what `manager` owns ("spec.replicas",
 * "spec.template.spec.containers[0].env"), or undefined when in sync. The object's identity
 * (apiVersion, kind, metadata.name/namespace) is not part of the comparison.
 */
export function firstDrift(observed: KubernetesObject, desired: KubernetesObject, manager: string): string | undefined {
  const fields = ownedFields(observed, manager);
  if (!fields) return 'metadata.managedFields';
  const { apiVersion: _v, kind: _k, metadata, ...rest } = desired;
  const { name: _n, namespace: _ns, ...meta } = metadata ?? {};
  return diff(observed, { ...rest, ...(Object.keys(meta).length > 0 ? { metadata: meta } : {}) }, fields, '');
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const children = (fields: FieldSet) => Object.keys(fields).filter((k) => k !== '.');

function diff(observed: unknown, desired: unknown, fields: FieldSet, path: string): string | undefined {
  // Owned as a whole (a scalar, an atomic list or map): the value must hold what we applied.
  if (children(fields).length === 0) return contains(observed, desired, path) ? undefined : path || '.';
  if (Array.isArray(desired)) return diffList(observed, desired, fields, path);
  if (!isObject(desired) || !isObject(observed)) return contains(observed, desired, path) ? undefined : path || '.';
  const wanted = Object.keys(desired).filter((k) => desired[k] !== undefined && desired[k] !== null);
  for (const key of wanted) {
    const sub = fields[`f:${key}`];
    if (!sub) return join(path, key); // wanted, but not (or no longer) ours
    const d = diff(observed[key], desired[key], sub, join(path, key));
    if (d) return d;
  }
  for (const owned of children(fields)) {
    if (owned.startsWith('f:') && !wanted.includes(owned.slice(2))) return join(path, owned.slice(2)); // ours, no longer wanted
  }
  return undefined;
}

function diffList(observed: unknown, desired: unknown[], fields: FieldSet, path: string): string | undefined {
  if (!Array.isArray(observed)) return path || '.';
  const owned = children(fields);
  const keyed = owned.filter((k) => k.startsWith('k:')).map((k) => ({ keys: JSON.parse(k.slice(2)) as Record<string, unknown>, fields: fields[k]! }));
  const values = owned.filter((k) => k.startsWith('v:')).map((k) => JSON.parse(k.slice(2)) as unknown);
  if (keyed.length > 0) {
    if (keyed.length !== desired.length) return path;
    const matches = (item: unknown, keys: Record<string, unknown>) => isObject(item) && Object.entries(keys).every(([k, v]) => sameScalar(item[k], v, k));
    for (let i = 0; i < desired.length; i++) {
      const entry = keyed.find((e) => matches(desired[i], e.keys));
      const item = entry && observed.find((o) => matches(o, entry.keys));
      if (!entry || item === undefined) return `${path}[${i}]`;
      const d = diff(item, desired[i], entry.fields, `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (values.length > 0) {
    const same = values.length === desired.length && desired.every((d) => values.some((v) => sameScalar(v, d, '')) && observed.some((o) => sameScalar(o, d, '')));
    return same ? undefined : path;
  }
  // Positional entries (`i:N`).
  if (owned.length !== desired.length) return path;
  for (let i = 0; i < desired.length; i++) {
    const sub = fields[`i:${i}`];
    if (!sub) return `${path}[${i}]`;
    const d = diff(observed[i], desired[i], sub, `${path}[${i}]`);
    if (d) return d;
  }
  return undefined;
}

/**
 * desired ⊆ observed: objects may carry extra (defaulted) keys; lists match element by element and
 * in length; scalars are equal, quantities by value.
 */
export function contains(observed: unknown, desired: unknown, path = ''): boolean {
  if (desired === undefined) return true;
  if (desired === null || typeof desired !== 'object') return sameScalar(observed, desired, path);
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return false;
    return desired.every((d, i) => contains(observed[i], d, `${path}[${i}]`));
  }
  if (!isObject(observed)) return false;
  return Object.entries(desired).every(([k, v]) => contains(observed[k], v, join(path, k)));
}

/** Fields whose values are resource.Quantity: the API server rewrites them in canonical form. */
const QUANTITY_PATH = /(^|\.)(requests|limits|capacity|allocatable|overhead|hard)\.[^[\]]+$|(^|\.)sizeLimit$/;

function sameScalar(observed: unknown, desired: unknown, path: string): boolean {
  if (observed === desired) return true;
  if (!QUANTITY_PATH.test(path)) return false;
  const [a, b] = [parseQuantity(observed), parseQuantity(desired)];
  return a !== undefined && b !== undefined && compareQuantities(a, b) === 0;
}

/** A quantity as mantissa × 10^exp10 (exact: binary suffixes are multiplied out). */
export interface Quantity {
  mantissa: bigint;
  exp10: number;
}

const DECIMAL_SUFFIX: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_SUFFIX: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

/** Parses Kubernetes' quantity syntax (`500m`, `0.5`, `16Gi`, `1e3`, `8`); undefined when it is not one. */
export function parseQuantity(v: unknown): Quantity | undefined {
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v : undefined;
  if (text === undefined) return undefined;
  const m = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const [, sign, number, suffix, exponent] = m;
  const [whole, fraction = ''] = number!.split('.');
  let mantissa = BigInt(`${sign}${whole || '0'}${fraction}` || '0');
  let exp10 = -fraction.length;
  if (suffix && suffix in BINARY_SUFFIX) mantissa *= 2n ** BigInt(BINARY_SUFFIX[suffix]!);
  else exp10 += suffix ? DECIMAL_SUFFIX[suffix]! : Number(exponent ?? 0);
  return { mantissa, exp10 };
}

export function compareQuantities(a: Quantity, b: Quantity): number {
  const e = Math.min(a.exp10, b.exp10);
  const x = a.mantissa * 10n ** BigInt(a.exp10 - e);
  const y = b.mantissa * 10n ** BigInt(b.exp10 - e);
  return x < y ? -1 : x > y ? 1 : 0;
}
