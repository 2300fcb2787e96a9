// BackgroundFlush: a file's written bytes start a flush every `everyBytes`, never two flushes at once for the download.
import type { FileHandle } from 'node:fs/promises';
import { BackgroundFlush } from './background-flush.js';

/** A file handle whose datasync stays pending until released. */
function fakeFile(): { fh: FileHandle; syncs: number; release: () => void } {
  const f = { syncs: 0, release: () => {}, fh: undefined as unknown as FileHandle };
  f.fh = {
    datasync: () => {
      f.syncs++;
      return new Promise<void>((resolve) => (f.release = resolve));
    },
  } as unknown as FileHandle;
  return f;
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('BackgroundFlush', () => {
  test('a flush each time a file has another `everyBytes` written', async () => {
    const flush = new BackgroundFlush(100);
    const a = fakeFile();
    const wrote = flush.track(a.fh);
    wrote(60);
    expect(a.syncs).toBe(0);
    wrote(40);
    expect(a.syncs).toBe(1);
    a.release();
    await settle();
    wrote(99);
    expect(a.syncs).toBe(1);
    wrote(1);
    expect(a.syncs).toBe(2);
  });

  test('one flush at a time over all files: a file that reaches its step while another flushes waits for its next write after', async () => {
    const flush = new BackgroundFlush(100);
    const a = fakeFile();
    const b = fakeFile();
    const wroteA = flush.track(a.fh);
    const wroteB = flush.track(b.fh);
    wroteA(100);
    wroteB(150);
    expect([a.syncs, b.syncs]).toEqual([1, 0]);
    a.release();
    await settle();
    wroteB(1);
    expect(b.syncs).toBe(1);
  });

  test('0 turns it off', () => {
    const flush = new BackgroundFlush(0);
    const a = fakeFile();
    flush.track(a.fh)(1 << 30);
    expect(a.syncs).toBe(0);
  });
});
