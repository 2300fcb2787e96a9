// Leader election on a coordination.k8s.io/v1 Lease, with client-go's guarantees:
//   - a candidate takes the lease when it is free, released (no holder) or expired; "expired" is
//     judged by when *this* process last saw the record change (plus leaseDuration), not by the
//     holder's clock, so clock skew between nodes cannot cause two leaders;
//   - every write carries the resourceVersion it read, so of two racing candidates one gets 409;
//   - the leader's term is measured from the *start* of its last successful renew: the record it wrote
//     reached the server after that instant, so no other candidate can see it expire before
//     start + leaseDuration. The leader acts until start + renewDeadline at most (renewDeadline <
//     leaseDuration), and each renew attempt is aborted at that deadline, so a renew that hangs
//     cannot keep a leader acting past its lease;
//   - a timer independent of the renew loop ends the term at the deadline, and `remainingMs()` (the
//     write gate the client consults) turns 0 at that instant even if the timer runs late;
//   - stopping leadership finishes (`onStoppedLeading` is awaited) before this candidate campaigns
//     again, so a stop can never interleave with the next start;
//   - release() empties holderIdentity after the leader has stopped, so a successor need not wait.
import { performance } from 'node:perf_hooks';
import type { V1Lease } from '@kubernetes/client-node';
import { systemClock, type Clock } from '../controller/backoff.js';
import { isConflict, isNotFound, type KubeClient, type WriteGate } from './client.js';
import { RESOURCES, collectionPath, objectPath } from './resources.js';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
  /** Measures terms and expiry; monotonic by default (wall-clock jumps must not extend a term). */
  clock?: Clock;
  onStartedLeading: () => void;
  /** Leadership ended (lost, or stop()). Awaited before this candidate campaigns again or releases. */
  onStoppedLeading: (how: 'lost' | 'stopped') => void | Promise<void>;
  onError?: (err: unknown) => void;
  /** Spreads retries as client-go does (retryPeriod × [1, 1 + jitter)); 0 in tests. */
  jitter?: number;
}

/** performance.now() never jumps with the wall clock. */
export const monotonicClock: Clock = { ...systemClock, now: () => performance.now() };

function microTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z'); // MicroTime: 6 fractional digits
}

export class LeaderElector implements WriteGate {
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly jitter: number;
  private observedRecord = '';
  private observedAt = 0;
  private lease?: V1Lease;
  private leading = false;
  /** Clock time until which this process may act as leader. */
  private termEndsAt = 0;
  private termTimer: unknown;
  private stopping?: Promise<void>;
  private running = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private sleepTimer: unknown;
  private inFlight?: AbortController;

  constructor(private readonly o: LeaderElectionOptions) {
    this.clock = o.clock ?? monotonicClock;
    this.leaseMs = (o.leaseDurationSeconds ?? 10) * 1000;
    this.renewDeadlineMs = (o.renewDeadlineSeconds ?? 7) * 1000;
    this.retryMs = (o.retryPeriodSeconds ?? 2) * 1000;
    this.jitter = o.jitter ?? 0.2;
    if (this.renewDeadlineMs >= this.leaseMs) throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
    if (this.retryMs >= this.renewDeadlineMs) throw new Error('leader election: retryPeriod must be shorter than renewDeadline');
  }

  /** Leading now: the term has not ended, even if the timer that ends it has not fired yet. */
  get isLeader(): boolean {
    return this.leading && this.remainingMs() > 0;
  }

  remainingMs(): number {
    return this.leading ? this.termEndsAt - this.clock.now() : 0;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      // A term that just ended is wound down before campaigning again.
      if (this.stopping) await this.stopping;
      if (!this.running) break;
      const started = this.clock.now();
      // Renewing: the attempt may use what is left of the term. Acquiring: as long as a term lasts.
      const deadline = this.leading ? this.termEndsAt : started + this.renewDeadlineMs;
      let ok = false;
      try {
        ok = await this.withDeadline(deadline - started, (signal) => this.tryAcquireOrRenew(signal));
      } catch (e) {
        this.o.onError?.(e);
      }
      if (!this.running) break;
      // Not while a term is winding down: the next round re-acquires once it has.
      if (ok && !this.stopping && this.clock.now() < started + this.renewDeadlineMs) this.beginTerm(started);
      else if (this.leading && this.clock.now() >= this.termEndsAt) this.endTerm('lost');
      await this.sleep();
    }
  }

  private beginTerm(renewStartedAt: number): void {
    this.termEndsAt = renewStartedAt + this.renewDeadlineMs;
    this.clock.clearTimeout(this.termTimer);
    this.termTimer = this.clock.setTimeout(() => this.endTerm('lost'), this.termEndsAt - this.clock.now());
    if (!this.leading) {
      this.leading = true;
      this.o.onStartedLeading();
    }
  }

  private endTerm(how: 'lost' | 'stopped'): void {
    if (!this.leading) return;
    this.leading = false;
    this.clock.clearTimeout(this.termTimer);
    // A renew still in flight cannot bring the term back.
    this.inFlight?.abort(new Error('leader election: the term ended'));
    const previous = this.stopping;
    const stopped = Promise.resolve(previous)
      .then(() => this.o.onStoppedLeading(how))
      .catch((e: unknown) => this.o.onError?.(e))
      .finally(() => {
        if (this.stopping === stopped) this.stopping = undefined;
      });
    this.stopping = stopped;
    this.wake?.();
  }

  private async withDeadline<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    this.inFlight = controller;
    const timer = this.clock.setTimeout(() => controller.abort(new Error(`leader election: no answer within ${Math.round(ms)} ms`)), Math.max(0, ms));
    try {
      return await fn(controller.signal);
    } finally {
      this.clock.clearTimeout(timer);
      if (this.inFlight === controller) this.inFlight = undefined;
    }
  }

  private sleep(): Promise<void> {
    const ms = this.retryMs * (1 + Math.random() * this.jitter);
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      this.sleepTimer = this.clock.setTimeout(resolve, ms);
    });
  }

  private path(): string {
    return objectPath(RESOURCES.leases, this.o.namespace, this.o.name);
  }

  private request<T>(signal: AbortSignal | undefined, r: { method: 'GET' | 'POST' | 'PUT'; path: string; verb: 'GET' | 'CREATE' | 'UPDATE'; body?: unknown }): Promise<T> {
    return this.o.client.request<T>({ ...r, resource: 'leases', signal, ungated: true });
  }

  /** One round: read the lease, then create/renew/take it if allowed. True when we hold it afterwards. */
  async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    let current: V1Lease | undefined;
    try {
      current = await this.request<V1Lease>(signal, { method: 'GET', path: this.path(), verb: 'GET' });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const wallNow = Date.now();
    if (!current) {
      try {
        this.lease = await this.request<V1Lease>(signal, {
          method: 'POST', path: collectionPath(RESOURCES.leases, this.o.namespace), verb: 'CREATE',
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec: this.spec(wallNow, wallNow, 0) },
        });
        this.observe(this.lease);
        return true;
      } catch (e) {
        if (isConflict(e)) return false;
        throw e;
      }
    }
    // Observed when the answer arrived: later than the holder's write, so expiry is judged late, never early.
    this.observe(current);
    const holder = current.spec?.holderIdentity ?? '';
    const mine = holder === this.o.identity;
    const expired = this.observedAt + ((current.spec?.leaseDurationSeconds ?? this.leaseMs / 1000) * 1000) <= this.clock.now();
    if (!mine && holder !== '' && !expired) return false;
    // Our own record but we are not leading (a term that lapsed): take it as a new acquisition.
    const renewing = mine && this.leading;
    const transitions = (current.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const acquired = renewing && current.spec?.acquireTime ? Date.parse(current.spec.acquireTime as unknown as string) : wallNow;
    try {
      this.lease = await this.request<V1Lease>(signal, {
        method: 'PUT', path: this.path(), verb: 'UPDATE',
        body: { ...current, spec: this.spec(acquired, wallNow, transitions) },
      });
      this.observe(this.lease);
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

  /** Any write counts as a change (its resourceVersion), even one that left the record's text as it was. */
  private observe(lease: V1Lease): void {
    const record = `${lease.metadata?.resourceVersion} ${JSON.stringify(lease.spec ?? {})}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = this.clock.now();
    }
  }

  /**
   * Stops campaigning; if leading, ends the term, waits for onStoppedLeading (the controllers have
   * stopped writing), then hands the lease back so another candidate can take it at once.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.clock.clearTimeout(this.sleepTimer);
    this.wake?.();
    this.inFlight?.abort(new Error('leader election: stopping'));
    const wasLeading = this.leading;
    this.endTerm('stopped');
    await this.loop?.catch(() => undefined);
    await this.stopping;
    if (!wasLeading || !this.lease) return;
    try {
      await this.release(this.lease);
    } catch (e) {
      this.o.onError?.(new Error(`releasing lease ${this.o.namespace}/${this.o.name}`, { cause: e }));
    }
  }

  /**
   * Empties the holder of `lease` (our last answer). A renew that stop() aborted may still have reached
   * the server, leaving our copy stale (409): then the lease is read again and released if it is still ours.
   */
  private async release(lease: V1Lease): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.request<V1Lease>(undefined, {
          method: 'PUT', path: this.path(), verb: 'UPDATE',
          body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } },
        });
        return;
      } catch (e) {
        if (!isConflict(e) || attempt >= 2) throw e;
      }
      lease = await this.request<V1Lease>(undefined, { method: 'GET', path: this.path(), verb: 'GET' });
      if (lease.spec?.holderIdentity !== this.o.identity) return;  // another candidate's now
    }
  }
}
