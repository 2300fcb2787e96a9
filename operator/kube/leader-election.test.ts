import type { V1Lease } from '@kubernetes/client-node';
import { FakeClock } from '../controller/backoff.js';
import { ApiError, type KubeClient } from './client.js';
import { LeaderElector } from './leader-election.js';

/**
 * The Lease API as the API server behaves: resourceVersion-checked updates, 409 on conflicts. `down`
 * refuses connections at once; `stalled` holds requests unanswered until the caller aborts them (a
 * proxy that stops forwarding). Each record is stamped with the fake time it was written.
 */
class LeaseStore {
  lease?: V1Lease;
  private rv = 0;
  down = false;
  stalled = false;
  writes: { at: number; holder: string }[] = [];

  constructor(private readonly clock: FakeClock) {}

  client(): KubeClient {
    return {
      request: (r: { method: string; body?: unknown; signal?: AbortSignal }) => this.handle(r.method, r.body as V1Lease | undefined, r.signal),
    } as unknown as KubeClient;
  }

  private async handle(method: string, body: V1Lease | undefined, signal?: AbortSignal): Promise<V1Lease> {
    if (this.down) throw new Error('connect ECONNREFUSED');
    if (this.stalled) {
      return new Promise((_resolve, reject) => {
        if (signal?.aborted) reject(signal.reason);
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    if (method === 'GET') {
      if (!this.lease) throw new ApiError('not found', 404);
      return structuredClone(this.lease);
    }
    if (method === 'POST' && this.lease) throw new ApiError('already exists', 409);
    if (method === 'PUT' && body!.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw new ApiError('conflict', 409);
    if (method !== 'POST' && method !== 'PUT') throw new Error(`unexpected ${method}`);
    this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.rv) } };
    this.writes.push({ at: this.clock.now(), holder: this.lease.spec?.holderIdentity ?? '' });
    return structuredClone(this.lease);
  }

  /** A write of the same record whose answer its writer never saw (a request aborted after it reached the server). */
  rewriteUnseen(): void {
    this.lease = { ...this.lease!, metadata: { ...this.lease!.metadata, resourceVersion: String(++this.rv) } };
  }
  /** When `holder` last wrote the lease. */
  lastWriteBy(holder: string): number {
    return this.writes.filter((w) => w.holder === holder).at(-1)?.at ?? Number.NaN;
  }
}

interface Entry {
  at: number;
  what: string;
}

function elector(store: LeaseStore, identity: string, clock: FakeClock, log: Entry[], onStopped?: () => Promise<void>) {
  return new LeaderElector({
    client: store.client(), namespace: 'ns', name: 'lease', identity, clock, jitter: 0,
    leaseDurationSeconds: 10, renewDeadlineSeconds: 7, retryPeriodSeconds: 2,
    onStartedLeading: () => log.push({ at: clock.now(), what: `${identity} leads` }),
    onStoppedLeading: async (how) => {
      log.push({ at: clock.now(), what: `${identity} ${how}` });
      await onStopped?.();
    },
  });
}

/** Lets every promise chain that can move without the clock finish. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
async function run(clock: FakeClock, ms: number, step = 100) {
  await settle();
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await settle();
  }
}
/** One candidate, `a`, leading its lease after 2 s. */
async function soleLeader() {
  const clock = new FakeClock(0);
  const store = new LeaseStore(clock);
  const log: Entry[] = [];
  const a = elector(store, 'a', clock, log);
  a.start();
  await run(clock, 2000);
  expect(a.isLeader).toBe(true);
  return { clock, store, log, a };
}
const whats = (log: Entry[]) => log.map((e) => e.what);
const when = (log: Entry[], what: string) => log.find((e) => e.what === what)?.at ?? Number.NaN;

/** Two candidates on one lease: `a` starts first (and so wins), then `b`. */
async function startPair(startMs: number) {
  const clock = new FakeClock(startMs);
  const store = new LeaseStore(clock);
  const log: Entry[] = [];
  const a = elector(store, 'a', clock, log);
  const b = elector(store, 'b', clock, log);
  a.start();
  await settle();
  b.start();
  return { clock, store, log, a, b };
}

describe('LeaderElector', () => {
  test('one leader; the other takes over only after the lease expires', async () => {
    const { clock, store, log, a, b } = await startPair(1_000_000);
    await run(clock, 6000);
    expect(whats(log)).toEqual(['a leads']);
    expect(store.lease?.spec?.holderIdentity).toBe('a');

    // a dies without releasing (stops renewing): b waits for leaseDuration after it last saw a renew.
    (a as unknown as { running: boolean }).running = false;
    await run(clock, 9000);
    expect(b.isLeader).toBe(false);
    await run(clock, 4000);
    expect(b.isLeader).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  test('a leader that cannot renew steps down before its lease can expire', async () => {
    const { clock, store, log, a } = await soleLeader();
    store.down = true;
    await run(clock, 6000);
    expect(a.isLeader).toBe(true);
    await run(clock, 2000);
    expect(whats(log)).toEqual(['a leads', 'a lost']);
    expect(when(log, 'a lost')).toBeLessThanOrEqual(store.lastWriteBy('a') + 7000);
  });

  test('a renew that hangs ends the term at the renew deadline, before any other candidate can acquire', async () => {
    const clock = new FakeClock(0);
    const store = new LeaseStore(clock);
    const log: Entry[] = [];
    // As the CLI does: a process that lost the lease exits (stops campaigning).
    const a: LeaderElector = elector(store, 'a', clock, log, async () => void a.stop());
    const b = elector(store, 'b', clock, log);
    a.start();
    await settle();
    b.start();
    await run(clock, 5000);
    expect(a.isLeader).toBe(true);
    store.stalled = true;
    const lastRenew = store.lastWriteBy('a');
    // The stalled attempt is aborted at the deadline: a stops acting then, and its write gate is shut.
    await run(clock, 7000);
    expect(whats(log)).toEqual(['a leads', 'a lost']);
    expect(when(log, 'a lost')).toBeLessThanOrEqual(lastRenew + 7000);
    expect(a.remainingMs()).toBeLessThanOrEqual(0);
    expect(a.isLeader).toBe(false);
    // b (whose requests get through once the stall ends) sees the record expire leaseDuration after it
    // first saw it: at the earliest 10 s after a's last renew, later if b saw that renew only now.
    store.stalled = false;
    await run(clock, 16_000);
    const bLeads = when(log, 'b leads');
    expect(bLeads).toBeGreaterThanOrEqual(lastRenew + 10_000);
    expect(when(log, 'a lost')).toBeLessThan(bLeads);
    expect(b.isLeader).toBe(true);
    expect(a.isLeader).toBe(false);
  });

  test('leadership regained while the previous stop is still running starts only after that stop ends', async () => {
    const clock = new FakeClock(0);
    const store = new LeaseStore(clock);
    const log: Entry[] = [];
    let finishStop: (() => void) | undefined;
    // The first stop takes until finishStop() is called; later ones are immediate.
    const a = elector(store, 'a', clock, log, async () => {
      if (finishStop) return;
      await new Promise<void>((resolve) => (finishStop = () => {
        log.push({ at: clock.now(), what: 'a stopped' });
        resolve();
      }));
    });
    a.start();
    await run(clock, 2000);
    store.down = true;
    await run(clock, 8000);
    expect(whats(log)).toEqual(['a leads', 'a lost']);
    // The API answers again and nobody else holds the lease: a could take it back at once, but its
    // previous stop has not finished, so it does not campaign.
    store.down = false;
    await run(clock, 10_000);
    expect(whats(log)).toEqual(['a leads', 'a lost']);
    expect(a.isLeader).toBe(false);
    finishStop!();
    await run(clock, 3000);
    expect(whats(log)).toEqual(['a leads', 'a lost', 'a stopped', 'a leads']);
    expect(a.isLeader).toBe(true);
    await a.stop();
  });

  test('stop() hands the lease back only after the controllers stopped, so a successor need not wait', async () => {
    const clock = new FakeClock(0);
    const store = new LeaseStore(clock);
    const log: Entry[] = [];
    let finishStop: () => void = () => undefined;
    const a = elector(store, 'a', clock, log, () => new Promise<void>((resolve) => (finishStop = resolve)));
    const b = elector(store, 'b', clock, log);
    a.start();
    await settle();
    b.start();
    await run(clock, 2000);
    const stopped = a.stop();
    await run(clock, 1000);
    expect(store.lease?.spec?.holderIdentity).toBe('a');
    finishStop();
    await stopped;
    expect(store.lease?.spec?.holderIdentity).toBe('');
    await run(clock, 2500);
    expect(b.isLeader).toBe(true);
    expect(whats(log)).toEqual(['a leads', 'a stopped', 'b leads']);
    await b.stop();
  });

  test('stop() still hands the lease back when a renew it aborted had reached the server', async () => {
    const { store, a } = await soleLeader();
    store.rewriteUnseen();  // a's copy is now one resourceVersion behind: its first release answers 409
    await a.stop();
    expect(store.lease?.spec?.holderIdentity).toBe('');
  });

  test('stop() leaves a lease another candidate holds by then', async () => {
    const { store, a } = await soleLeader();
    store.lease = { ...store.lease!, spec: { ...store.lease!.spec, holderIdentity: 'c' } };
    store.rewriteUnseen();
    await a.stop();
    expect(store.lease?.spec?.holderIdentity).toBe('c');
  });
});
