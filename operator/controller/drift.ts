// Decides whether an observed child still carries every field the operator wants it to have.
// The API server adds defaults (probe timeouts, protocol, status, managedFields...), so the check is
// "desired is contained in observed": objects may have extra keys, arrays must match element by
// element and in length (a removed or added list entry is drift).

export function contains(observed: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  if (desired === null || typeof desired !== 'object') return observed === desired;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return false;
    return desired.every((d, i) => contains(observed[i], d));
  }
  if (observed === null || typeof observed !== 'object' || Array.isArray(observed)) return false;
  const o = observed as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => contains(o[k], v));
}

/** The first path where observed departs from desired, for events and logs ("spec.replicas"). */
export function firstDifference(observed: unknown, desired: unknown, path = ''): string | undefined {
  if (contains(observed, desired)) return undefined;
  if (desired !== null && typeof desired === 'object' && observed !== null && typeof observed === 'object') {
    if (Array.isArray(desired)) {
      if (!Array.isArray(observed) || observed.length !== desired.length) return path || '.';
      for (let i = 0; i < desired.length; i++) {
        const d = firstDifference(observed[i], desired[i], `${path}[${i}]`);
        if (d) return d;
      }
    } else {
      for (const [k, v] of Object.entries(desired as Record<string, unknown>)) {
        const d = firstDifference((observed as Record<string, unknown>)[k], v, path ? `${path}.${k}` : k);
        if (d) return d;
      }
    }
  }
  return path || '.';
}
