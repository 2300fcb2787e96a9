// ChunkWriter: bodies read into its batch buffers and written at their offset in full batches, the connection paused while too many batches
// wait for the disk, and everything received written before `finish` returns (also after a cut).
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BodyController } from './body-client.js';
import { ChunkWriter } from './chunk-writer.js';

class FakeController implements BodyController {
  paused = false;
  pauses = 0;
  aborted = false;
  reason: Error | null = null;
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
  }
  abort(reason: Error): void {
    this.aborted = true;
    this.reason = reason;
  }
}

/** What a connection does: the bytes stored into `space()`, then `filled`. */
function feed(w: ChunkWriter, text: string): void {
  const bytes = Buffer.from(text);
  for (let off = 0; off < bytes.length;) {
    const n = bytes.copy(w.space(), 0, off);
    w.filled(n);
    off += n;
  }
}

let dir: string;
let fh: FileHandle;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'chunk-writer-'));
  fh = await open(path.join(dir, 'f'), 'w+');
  await fh.truncate(64);
});

afterEach(async () => {
  await fh.close();
  await rm(dir, { recursive: true, force: true });
});

test('writes the body at its offset in batches, in order, and reports each batch once written', async () => {
  const reported: { pos: number; length: number }[] = [];
  const w = new ChunkWriter(fh, 10, (pos, bytes) => reported.push({ pos, length: bytes.length }), { batchBytes: 8, maxBatchesInFlight: 2, maxBatchAgeMs: 60_000 });
  const c = new FakeController();
  w.attach(c);
  for (const s of ['abcde', 'fghij', 'klmno', 'pq']) feed(w, s);
  w.end();
  await w.finish();
  expect(reported).toEqual([{ pos: 10, length: 8 }, { pos: 18, length: 8 }, { pos: 26, length: 1 }]);
  expect(w.received).toBe(17);
  expect((await readFile(path.join(dir, 'f'))).subarray(10, 27).toString()).toBe('abcdefghijklmnopq');
});

test('a slow body is written once its batch is old enough, not only when the batch is full', async () => {
  const reported: number[] = [];
  const w = new ChunkWriter(fh, 0, (_pos, bytes) => reported.push(bytes.length), { batchBytes: 1024, maxBatchesInFlight: 2, maxBatchAgeMs: 40 });
  const c = new FakeController();
  w.attach(c);
  feed(w, 'ab');
  await new Promise((resolve) => setTimeout(resolve, 60));
  feed(w, 'cd'); // the batch began 60 ms ago: written now, far below batchBytes
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(reported).toEqual([4]);
  feed(w, 'e'); // a fresh batch: held until the end
  w.end();
  await w.finish();
  expect(reported).toEqual([4, 1]);
  expect((await readFile(path.join(dir, 'f'))).subarray(0, 5).toString()).toBe('abcde');
});

test('pauses the connection while too many batches wait for the disk, and resumes it after', async () => {
  const c = new FakeController();
  const w = new ChunkWriter(fh, 0, () => {}, { batchBytes: 4, maxBatchesInFlight: 1, maxBatchAgeMs: 60_000 });
  w.attach(c);
  feed(w, '1234');
  expect(c.paused).toBe(true);
  await w.finish();
  expect(c.paused).toBe(false);
  expect(c.pauses).toBe(1);
});

test('a failed write aborts the request and is thrown by finish; nothing after it is reported', async () => {
  await fh.close();
  fh = await open(path.join(dir, 'f'), 'r'); // read-only: writes fail
  const reported: number[] = [];
  const c = new FakeController();
  const w = new ChunkWriter(fh, 0, (pos) => reported.push(pos), { batchBytes: 2, maxBatchesInFlight: 8, maxBatchAgeMs: 60_000 });
  w.attach(c);
  feed(w, 'ab');
  await expect(w.finish()).rejects.toMatchObject({ code: 'EBADF' });
  feed(w, 'cd');
  expect(c.aborted).toBe(true);
  expect(reported).toEqual([]);
});
