// The informer caches lag the operator's own writes by a watch round-trip. A reconcile that runs in
// that gap (another event for the same key) would see the old object, re-apply children and emit the
// same transition event twice. RecentWrites remembers what the server returned for our last write of
// each object, and stands in for the cached object while the cache still shows the version the write
// was based on.
import type { KubernetesObject } from '@kubernetes/client-node';

interface Write {
  basedOn: string | undefined;
  result: KubernetesObject;
}

export class RecentWrites {
  private readonly writes = new Map<string, Write>();

  remember(id: string, basedOn: KubernetesObject | undefined, result: KubernetesObject): void {
    this.writes.set(id, { basedOn: basedOn?.metadata?.resourceVersion, result });
  }

  /** Our newer write while the cache is stale; otherwise the cached object (and the memo is dropped). */
  fresher<T extends KubernetesObject>(id: string, cached: T | undefined): T | undefined {
    const w = this.writes.get(id);
    if (!w) return cached;
    if (cached?.metadata?.resourceVersion === w.basedOn) return w.result as T;
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
