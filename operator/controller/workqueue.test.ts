import { FakeClock, backoffDelay } from './backoff.js';
import { WorkQueue } from './workqueue.js';

describe('backoffDelay', () => {
  test.each([
    [0, 0], [1, 500], [2, 1000], [3, 2000], [10, 256_000], [11, 300_000], [1000, 300_000],
  ])('attempt %i → %i ms', (attempt, ms) => {
    expect(backoffDelay(attempt, { baseMs: 500, capMs: 300_000 })).toBe(ms);
  });
});

describe('WorkQueue', () => {
  test('de-duplicates waiting keys', async () => {
    const q = new WorkQueue();
    q.add('ns/a'); q.add('ns/a'); q.add('ns/b'); q.add('ns/a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('ns/a');
    expect(await q.get()).toBe('ns/b');
  });

  test('a key in flight is not handed out twice; re-added after done', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const k = await q.get();
    q.add('ns/a');
    expect(q.len()).toBe(0);
    q.done(k!);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('ns/a');
  });

  test('a waiting worker gets the next key', async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.add('ns/x');
    expect(await next).toBe('ns/x');
  });

  test('rate-limited retries back off exponentially until forgotten', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, backoff: { baseMs: 100, capMs: 1000 } });
    expect([q.addRateLimited('k'), q.addRateLimited('k'), q.addRateLimited('k')]).toEqual([100, 200, 400]);
    // The earliest pending delay wins; the key appears once at 100 ms.
    clock.advance(99);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    expect(q.retries('k')).toBe(3);
    q.forget('k');
    expect(q.addRateLimited('k')).toBe(100);
  });

  test('shutDown releases waiting workers and drops delayed keys', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    const waiting = q.get();
    q.addAfter('k', 1000);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    clock.advance(2000);
    expect(q.len()).toBe(0);
  });

  test('depth is reported', () => {
    const depths: number[] = [];
    const q = new WorkQueue({ onDepth: (d) => depths.push(d) });
    q.add('a'); q.add('b');
    void q.get();
    expect(depths).toEqual([1, 2, 1]);
  });
});
