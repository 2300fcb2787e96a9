// Hashing large files on worker threads: the main thread receives and writes, a worker reads back each
// file's finished prefix from the page cache and hashes it (Node's sha256 runs at about 1 GB/s per
// core: on the main thread it would cap a whole download there). A download shares a few workers
// among its files, no more than the machine has cores: more hashing threads than cores only contend
// with the receive and the writes (docs/BENCHMARKS.md: on 2 cores, 2 threads instead of 4 saved ~0.1 CPU-s per GiB).
import { Worker } from 'node:worker_threads';

// Plain JavaScript (an eval worker), so it runs the same from the TypeScript sources (tests) and dist/.
// One worker hashes several files, each by its id; a message says how far a file is on disk.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const buf = Buffer.allocUnsafe(4 << 20);
const files = new Map();
parentPort.on('message', (m) => {
  if (m.open) {
    const hash = crypto.createHash(m.open.algorithm);
    if (m.open.prefix) hash.update(m.open.prefix);
    try {
      files.set(m.id, { hash, fd: fs.openSync(m.open.path, 'r'), hashed: 0, available: 0, total: -1 });
    } catch (e) {
      parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
      return;
    }
  }
  const f = files.get(m.id);
  if (!f) return;
  if (m.abort) {
    files.delete(m.id);
    fs.closeSync(f.fd);
    return;
  }
  f.available = Math.max(f.available, m.available || 0);
  if (m.total !== undefined) f.total = m.total;
  try {
    while (f.hashed < f.available) {
      const n = fs.readSync(f.fd, buf, 0, Math.min(buf.length, f.available - f.hashed), f.hashed);
      if (n === 0) break;
      f.hash.update(buf.subarray(0, n));
      f.hashed += n;
    }
  } catch (e) {
    files.delete(m.id);
    fs.closeSync(f.fd);
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
    return;
  }
  if (f.total >= 0) {
    files.delete(m.id);
    fs.closeSync(f.fd);
    parentPort.postMessage({ id: m.id, digest: f.hash.digest('hex'), hashed: f.hashed });
  }
});
`;

const ADVANCE_STEP = 8 * 1024 * 1024;

export interface HashResult {
  digest: string;
  hashedBytes: number;
}

type Answer = { id: number; digest?: string; hashed?: number; error?: string };

/** One worker thread and the files it is hashing. */
class HashThread {
  readonly worker = new Worker(WORKER_SOURCE, { eval: true });
  readonly waiting = new Map<number, { resolve: (r: HashResult) => void; reject: (e: Error) => void }>();
  /** Files opened here and not yet finished or aborted: the pool's measure of how busy it is. */
  files = 0;

  constructor(onExit: () => void) {
    this.worker.on('message', (m: Answer) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error) w?.reject(new Error(m.error));
      else w?.resolve({ digest: m.digest!, hashedBytes: m.hashed ?? 0 });
    });
    // A worker that dies takes its files' hashes with it: they fail (the download retries or reports).
    const failAll = (e: Error) => {
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', (code) => {
      failAll(new Error(`the hashing thread exited (code ${code})`));
      onExit();
    });
  }
}

/** The worker threads of one download: started as files need them, at most `size`. */
export class HashWorkers {
  private readonly threads: HashThread[] = [];
  private nextId = 0;

  constructor(private readonly size: number) {}

  /** Starts hashing the file at `path` (growing as it is downloaded) on the least busy thread. */
  open(path: string, algorithm: 'sha256' | 'sha1', prefix?: string): WorkerHash {
    let thread = this.threads.find((t) => t.files === 0);
    if (!thread && this.threads.length < this.size) {
      const t: HashThread = new HashThread(() => {
        const i = this.threads.indexOf(t);
        if (i >= 0) this.threads.splice(i, 1);
      });
      this.threads.push(t);
      thread = t;
    }
    thread ??= this.threads.reduce((a, b) => (b.files < a.files ? b : a));
    return new WorkerHash(thread, this.nextId++, path, algorithm, prefix);
  }

  /** Threads running now. */
  get started(): number {
    return this.threads.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}

/** One file's hash on a HashWorkers thread. */
export class WorkerHash {
  private readonly result: Promise<HashResult>;
  private posted = 0;
  private open = true;

  constructor(private readonly thread: HashThread, private readonly id: number, path: string, algorithm: 'sha256' | 'sha1', prefix?: string) {
    thread.files++;
    this.result = new Promise<HashResult>((resolve, reject) => {
      thread.waiting.set(id, { resolve, reject: (e) => reject(new Error(`hashing ${path}: ${e.message}`, { cause: e })) });
    });
    this.result.catch(() => {});
    thread.worker.postMessage({ id, open: { path, algorithm, prefix } });
  }

  /** Bytes [0, available) are on disk. Told in steps of 8 MiB: a message per write costs more than it saves. */
  advance(available: number): void {
    if (available - this.posted < ADVANCE_STEP) return;
    this.posted = available;
    this.thread.worker.postMessage({ id: this.id, available });
  }

  /** The whole file (`total` bytes) is on disk: the digest once the worker has read it all. */
  async finish(total: number): Promise<HashResult> {
    this.thread.worker.postMessage({ id: this.id, available: total, total });
    try {
      return await this.result;
    } finally {
      this.release();
    }
  }

  async abort(): Promise<void> {
    if (!this.open) return;
    this.thread.waiting.delete(this.id);
    this.thread.worker.postMessage({ id: this.id, abort: true });
    this.release();
  }

  private release(): void {
    if (this.open) this.thread.files--;
    this.open = false;
  }
}
