// The request scheduler: a bound on requests in flight, shared equally among the files being fetched.
import { RequestScheduler } from './request-scheduler.js';

/** A request that stays in flight until released. */
function pending(s: RequestScheduler, file: string, log: string[]): { release: () => void; done: Promise<void> } {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const done = s.use(file, async () => {
    log.push(file);
    await held;
  });
  return { release, done };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('RequestScheduler', () => {
  test('files that queue all their ranges at once get equal shares, not first come first served', async () => {
    const s = new RequestScheduler(8, 2, 2);
    s.open('a');
    const log: string[] = [];
    const a = Array.from({ length: 10 }, () => pending(s, 'a', log));
    await settle();
    // b is expected (2 files at once) but still opening: a is held to its share.
    expect(log).toEqual(['a', 'a', 'a', 'a']);
    s.open('b');
    const b = Array.from({ length: 10 }, () => pending(s, 'b', log));
    await settle();
    expect(log.filter((f) => f === 'b')).toHaveLength(4);
    // A freed slot goes to the file with the fewest in flight.
    a[0]!.release();
    await a[0]!.done;
    await settle();
    expect(log.filter((f) => f === 'a')).toHaveLength(5);
    b[0]!.release();
    b[1]!.release();
    await Promise.all([b[0]!.done, b[1]!.done]);
    await settle();
    expect(log.filter((f) => f === 'b')).toHaveLength(6);
    for (const r of [...a, ...b]) r.release();
    await Promise.all([...a, ...b].map((r) => r.done));
    expect(log).toHaveLength(20);
  });

  test('never more than the bound in flight; a file with nothing to ask leaves its share to the others', async () => {
    const s = new RequestScheduler(6, 3, 3);
    let inFlight = 0;
    let most = 0;
    const run = (file: string) => s.use(file, async () => {
      most = Math.max(most, ++inFlight);
      await settle();
      inFlight--;
    });
    s.open('a');
    s.open('b');
    s.open('c');
    const log: string[] = [];
    const big = Array.from({ length: 8 }, () => pending(s, 'a', log));
    await settle();
    // b and c are still opening (nothing asked yet): a is held to its share.
    expect(log).toHaveLength(2);
    await Promise.all([run('b'), run('c')]);
    await settle();
    // b and c have asked and are idle: a takes all six.
    expect(log).toHaveLength(6);
    const small = [run('b'), run('c')];
    for (const r of big) r.release();
    await Promise.all([...big.map((r) => r.done), ...small]);
    const more = Array.from({ length: 30 }, (_, i) => run('abc'[i % 3]!));
    await Promise.all(more);
    expect(most).toBeLessThanOrEqual(6);
  });

  test('when files finish and fewer remain than at once, the last ones share every slot', async () => {
    const s = new RequestScheduler(8, 4, 2);
    expect(s.share()).toBe(4);
    s.open('a');
    s.open('b');
    s.close('a', true);
    expect(s.share()).toBe(8);
    const log: string[] = [];
    const b = Array.from({ length: 8 }, () => pending(s, 'b', log));
    await settle();
    expect(log).toHaveLength(8);
    for (const r of b) r.release();
    await Promise.all(b.map((r) => r.done));
  });

  test('a request for a file that is not open is a programming error', async () => {
    const s = new RequestScheduler(2, 1, 1);
    await expect(s.use('x', async () => 1)).rejects.toThrow(/not open/);
    s.open('x');
    expect(() => s.open('x')).toThrow(/already open/);
  });
});
