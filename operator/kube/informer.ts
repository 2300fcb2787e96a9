// client-node's informer relists on 410 Gone but stops for good on any other error (API server
// restarted, connection refused, 5xx). This wrapper restarts it with capped exponential backoff and
// keeps its cache, so handlers see the world again as soon as the API server answers.
import {
  ADD, CONNECT, DELETE, ERROR, UPDATE, makeInformer,
  type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache, type ObjectCallback,
} from '@kubernetes/client-node';
import { backoffDelay, systemClock, type Backoff, type Clock } from '../controller/backoff.js';

export type InformerFactory<T extends KubernetesObject> = (
  kubeConfig: KubeConfig, path: string, list: () => Promise<KubernetesListObject<T>>, labelSelector?: string,
) => Informer<T> & ObjectCache<T>;

export interface ResilientInformerOptions<T extends KubernetesObject> {
  name: string;
  kubeConfig: KubeConfig;
  /** Collection path to watch, e.g. /apis/apps/v1/namespaces/ns/deployments. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  clock?: Clock;
  backoff?: Backoff;
  /** A watch failed and will be restarted after delayMs. */
  onError?: (err: unknown, delayMs: number) => void;
  /** A watch (re)connects: one watch request. */
  onWatch?: () => void;
  factory?: InformerFactory<T>;
}

export const INFORMER_BACKOFF: Backoff = { baseMs: 250, capMs: 10_000 };

export class ResilientInformer<T extends KubernetesObject> {
  private readonly inner: Informer<T> & ObjectCache<T>;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private failures = 0;
  private stopped = true;
  private restartTimer: unknown;
  private listedOnce = false;

  constructor(private readonly o: ResilientInformerOptions<T>) {
    this.clock = o.clock ?? systemClock;
    this.backoff = o.backoff ?? INFORMER_BACKOFF;
    const list = async () => {
      const result = await o.list();
      this.failures = 0;
      this.listedOnce = true;
      return result;
    };
    this.inner = (o.factory ?? makeInformer)(o.kubeConfig, o.path, list, o.labelSelector);
    this.inner.on(ERROR, (err) => this.restartLater(err));
    this.inner.on(CONNECT, () => o.onWatch?.());
    const healthy = () => {
      this.failures = 0;
    };
    this.inner.on(ADD, healthy);
    this.inner.on(UPDATE, healthy);
    this.inner.on(DELETE, healthy);
  }

  get name(): string {
    return this.o.name;
  }

  /** True once a list has succeeded: the cache reflects the cluster. */
  get synced(): boolean {
    return this.listedOnce;
  }

  on(verb: typeof ADD | typeof UPDATE | typeof DELETE, cb: ObjectCallback<T>): void {
    this.inner.on(verb, cb);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.inner.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.inner.list(namespace);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.inner.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer !== undefined) this.clock.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.inner.stop();
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.restartTimer !== undefined) return;
    this.failures += 1;
    const delay = backoffDelay(this.failures, this.backoff);
    this.o.onError?.(err, delay);
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      // start() resolves after the list and the watch request; a failure there arrives as ERROR again.
      this.inner.start().catch((e: unknown) => this.restartLater(e));
    }, delay);
  }
}
