import type { V1Lease } from '@kubernetes/client-node';
import { FakeClock } from '../controller/backoff.js';
import { ApiError, type KubeClient } from './client.js';
import { LeaderElector } from './leader-election.js';

/** The Lease API as the API server behaves: resourceVersion-checked updates, 409 on conflicts. */
class LeaseStore {
  lease?: V1Lease;
  private rv = 0;
  down = false;

  client(): KubeClient {
    return { request: (r: { method: string; body?: unknown }) => this.handle(r.method, r.body as V1Lease | undefined) } as unknown as KubeClient;
  }

  private async handle(method: string, body?: V1Lease): Promise<V1Lease> {
    if (this.down) throw new Error('connect ECONNREFUSED');
    if (method === 'GET') {
      if (!this.lease) throw new ApiError('not found', 404);
      return structuredClone(this.lease);
    }
    if (method === 'POST') {
      if (this.lease) throw new ApiError('already exists', 409);
      this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease);
    }
    if (method === 'PUT') {
      if (body!.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw new ApiError('conflict', 409);
      this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease);
    }
    throw new Error(`unexpected ${method}`);
  }
}

function elector(store: LeaseStore, identity: string, clock: FakeClock, log: string[]) {
  return new LeaderElector({
    client: store.client(), namespace: 'ns', name: 'lease', identity, clock,
    leaseDurationSeconds: 10, renewDeadlineSeconds: 7, retryPeriodSeconds: 2,
    onStartedLeading: () => log.push(`${identity} leads`),
    onStoppedLeading: () => log.push(`${identity} stops`),
  });
}

const settle = async () => { for (let i = 0; i < 20; i++) await Promise.resolve(); };
async function run(clock: FakeClock, ms: number) {
  for (let t = 0; t < ms; t += 500) {
    clock.advance(500);
    await settle();
  }
}

/** Two candidates on one lease: `a` starts first (and so wins), then `b`. */
async function startPair(startMs: number) {
  const clock = new FakeClock(startMs);
  const store = new LeaseStore();
  const log: string[] = [];
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
    expect(log).toEqual(['a leads']);
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
    const clock = new FakeClock(0);
    const store = new LeaseStore();
    const log: string[] = [];
    const a = elector(store, 'a', clock, log);
    a.start();
    await run(clock, 2000);
    expect(a.isLeader).toBe(true);
    store.down = true;
    await run(clock, 6000);
    expect(a.isLeader).toBe(true);
    await run(clock, 2000);
    expect(log).toEqual(['a leads', 'a stops']);
  });

  test('stop() releases the lease so a successor need not wait', async () => {
    const { clock, store, log, a, b } = await startPair(0);
    await run(clock, 2000);
    await a.stop();
    expect(store.lease?.spec?.holderIdentity).toBe('');
    await run(clock, 2000);
    expect(b.isLeader).toBe(true);
    expect(log).toEqual(['a leads', 'a stops', 'b leads']);
  });
});
