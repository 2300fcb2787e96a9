// The informer caches lag the operator's own writes by a watch round-trip. A reconcile that runs in
// that gap (another event for the same key) would see the old object, re-apply children and emit the
// same transition event twice. RecentWrites remembers what the server returned for our last write of
// each object, and stands in for the cached object while the cache still shows a version that write
// superseded: the one it was based on, or one of our own earlier writes in a chain of writes made
// before the cache caught up (the cache may deliver our first write after we made the second).
import type { KubernetesObject } from '@kubernetes/client-node';

/** Stands for "not in the cache" among superseded versions (an object we created). */
const ABSENT = '';

interface Write {
  superseded: Set<string>;
  result: KubernetesObject;
}

const versionOf = (o: KubernetesObject | undefined): string => o?.metadata?.resourceVersion ?? ABSENT;

export class RecentWrites {
  private readonly writes = new Map<string, Write>();

  remember(id: string, basedOn: KubernetesObject | undefined, result: KubernetesObject): void {
    const previous = this.writes.get(id);
    const superseded = new Set(previous?.superseded);
    if (previous) superseded.add(versionOf(previous.result));
    superseded.add(versionOf(basedOn));
    superseded.delete(versionOf(result));
    this.writes.set(id, { superseded, result });
  }

  /** Our newer write while the cache is stale; otherwise the cached object (and the memo is dropped). */
  fresher<T extends KubernetesObject>(id: string, cached: T | undefined): T | undefined {
    const w = this.writes.get(id);
    if (!w) return cached;
    if (w.superseded.has(versionOf(cached))) return w.result as T;
    this.writes.delete(id);
    return cached;
  }

  /** Drops every memo of one JambaDeployment (it was deleted). */
  forget(key: string): void {
    for (const id of this.writes.keys()) if (id.endsWith(`/${key}`)) this.writes.delete(id);
  }

  get size(): number {
    return this.writes.size;
  }
}
