// A namespace allowlist: one informer per namespace behind the interface of one informer, so the
// controllers neither know nor care whether they watch all namespaces, one, or several.
import type { ADD, DELETE, KubernetesObject, ObjectCallback, UPDATE } from '@kubernetes/client-node';

export interface CacheInformer<T extends KubernetesObject> {
  readonly name: string;
  /** True once every list has succeeded: the cache reflects the cluster. */
  readonly synced: boolean;
  on(verb: typeof ADD | typeof UPDATE | typeof DELETE, cb: ObjectCallback<T>): void;
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Stands in for an informer on an API the cluster does not serve: always synced, always empty. */
export function emptyInformer<T extends KubernetesObject>(name: string): CacheInformer<T> {
  return { name, synced: true, on: () => {}, get: () => undefined, list: () => [], start: async () => {}, stop: async () => {} };
}

export class NamespacedInformers<T extends KubernetesObject> implements CacheInformer<T> {
  constructor(
    readonly name: string,
    private readonly byNamespace: ReadonlyMap<string, CacheInformer<T>>,
  ) {}

  get synced(): boolean {
    return [...this.byNamespace.values()].every((i) => i.synced);
  }

  on(verb: typeof ADD | typeof UPDATE | typeof DELETE, cb: ObjectCallback<T>): void {
    for (const i of this.byNamespace.values()) i.on(verb, cb);
  }

  get(name: string, namespace?: string): T | undefined {
    if (namespace !== undefined) return this.byNamespace.get(namespace)?.get(name, namespace);
    for (const i of this.byNamespace.values()) {
      const found = i.get(name);
      if (found) return found;
    }
    return undefined;
  }

  list(namespace?: string): readonly T[] {
    if (namespace !== undefined) return this.byNamespace.get(namespace)?.list(namespace) ?? [];
    return [...this.byNamespace.values()].flatMap((i) => i.list());
  }

  async start(): Promise<void> {
    await Promise.all([...this.byNamespace.values()].map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.byNamespace.values()].map((i) => i.stop()));
  }
}
