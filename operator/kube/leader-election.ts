// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
//   - a candidate takes the lease when it is free, released (no holder) or expired; "expired" is
//     judged by when *this* process last saw the record change (plus leaseDuration), not by the
//     holder's clock, so clock skew between nodes cannot cause two leaders;
//   - every write carries the resourceVersion it read, so of two racing candidates one gets 409;
//   - a leader that cannot renew within renewDeadline steps down before the lease can expire;
//   - release() empties holderIdentity so a successor need not wait for expiry.
import type { V1Lease } from '@kubernetes/client-node';
import { systemClock, type Clock } from '../controller/backoff.js';
import { isConflict, isNotFound, type KubeClient } from './client.js';
import { RESOURCES, collectionPath, objectPath } from './resources.js';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
  clock?: Clock;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onError?: (err: unknown) => void;
}

function microTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z'); // MicroTime: 6 fractional digits
}

export class LeaderElector {
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private observedRecord = '';
  private observedAt = 0;
  private lease?: V1Lease;
  private leading = false;
  private lastRenew = 0;
  private running = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private sleepTimer: unknown;

  constructor(private readonly o: LeaderElectionOptions) {
    this.clock = o.clock ?? systemClock;
    this.leaseMs = (o.leaseDurationSeconds ?? 10) * 1000;
    this.renewDeadlineMs = (o.renewDeadlineSeconds ?? 7) * 1000;
    this.retryMs = (o.retryPeriodSeconds ?? 2) * 1000;
    if (this.renewDeadlineMs >= this.leaseMs) throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (e) {
        this.o.onError?.(e);
      }
      if (!this.running) break;
      const now = this.clock.now();
      if (ok) {
        this.lastRenew = now;
        if (!this.leading) {
          this.leading = true;
          this.o.onStartedLeading();
        }
      } else if (this.leading && now - this.lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        this.o.onStoppedLeading();
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.sleepTimer = this.clock.setTimeout(resolve, this.retryMs);
      });
    }
  }

  private path(): string {
    return objectPath(RESOURCES.leases, this.o.namespace, this.o.name);
  }

  /** One round: read the lease, then create/renew/take it if allowed. True when we hold it afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    let current: V1Lease | undefined;
    try {
      current = await this.o.client.request<V1Lease>({ method: 'GET', path: this.path(), verb: 'GET', resource: 'leases' });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!current) {
      try {
        this.lease = await this.o.client.request<V1Lease>({
          method: 'POST', path: collectionPath(RESOURCES.leases, this.o.namespace), verb: 'CREATE', resource: 'leases',
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec: this.spec(now, now, 0) },
        });
        this.observe(this.lease, now);
        return true;
      } catch (e) {
        if (isConflict(e)) return false;
        throw e;
      }
    }
    this.observe(current, now);
    const holder = current.spec?.holderIdentity ?? '';
    const mine = holder === this.o.identity;
    const expired = this.observedAt + ((current.spec?.leaseDurationSeconds ?? this.leaseMs / 1000) * 1000) <= now;
    if (!mine && holder !== '' && !expired) return false;
    const transitions = (current.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const acquired = mine && current.spec?.acquireTime ? Date.parse(current.spec.acquireTime as unknown as string) : now;
    try {
      this.lease = await this.o.client.request<V1Lease>({
        method: 'PUT', path: this.path(), verb: 'UPDATE', resource: 'leases',
        body: { ...current, spec: this.spec(acquired, now, transitions) },
      });
      this.observe(this.lease, now);
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }

  private spec(acquireMs: number, renewMs: number, transitions: number) {
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: this.leaseMs / 1000,
      acquireTime: microTime(acquireMs),
      renewTime: microTime(renewMs),
      leaseTransitions: transitions,
    };
  }

  private observe(lease: V1Lease, now: number): void {
    const record = JSON.stringify(lease.spec ?? {});
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = now;
    }
  }

  /** Stops campaigning; if leading, hands the lease back so another candidate can take it at once. */
  async stop(): Promise<void> {
    this.running = false;
    this.clock.clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.loop?.catch(() => undefined);
    if (!this.leading) return;
    this.leading = false;
    this.o.onStoppedLeading();
    if (!this.lease) return;
    try {
      await this.o.client.request<V1Lease>({
        method: 'PUT', path: this.path(), verb: 'UPDATE', resource: 'leases',
        body: { ...this.lease, spec: { ...this.lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } },
      });
    } catch (e) {
      this.o.onError?.(new Error(`releasing lease ${this.o.namespace}/${this.o.name}`, { cause: e }));
    }
  }
}
