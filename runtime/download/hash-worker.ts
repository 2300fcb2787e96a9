// Hashing a large file on a worker thread: the main thread receives and writes, the worker reads back
// the finished prefix from the page cache and hashes it, so several files are hashed on several cores
// (Node's sha256 runs at about 1 GB/s per core: on the main thread it would cap a whole download there).
import { Worker } from 'node:worker_threads';

// Plain JavaScript (an eval worker), so it runs the same from the TypeScript sources (tests) and dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const hash = crypto.createHash(workerData.algorithm);
if (workerData.prefix) hash.update(workerData.prefix);
const fd = fs.openSync(workerData.path, 'r');
const buf = Buffer.allocUnsafe(4 << 20);
let hashed = 0, available = 0, total = -1;
parentPort.on('message', (m) => {
  available = Math.max(available, m.available);
  if (m.total !== undefined) total = m.total;
  try {
    while (hashed < available) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, available - hashed), hashed);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      hashed += n;
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
    return;
  }
  if (total >= 0) {
    fs.closeSync(fd);
    parentPort.postMessage({ digest: hash.digest('hex'), hashed });
  }
});
`;

const ADVANCE_STEP = 8 * 1024 * 1024;

export interface HashResult {
  digest: string;
  hashedBytes: number;
}

export class WorkerHash {
  private readonly worker: Worker;
  private readonly result: Promise<HashResult>;
  private posted = 0;

  constructor(path: string, algorithm: 'sha256' | 'sha1', prefix?: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, algorithm, prefix } });
    this.result = new Promise<HashResult>((resolve, reject) => {
      this.worker.on('message', (m: { digest?: string; hashed?: number; error?: string }) => {
        if (m.error) reject(new Error(`hashing ${path}: ${m.error}`));
        else if (m.digest !== undefined) resolve({ digest: m.digest, hashedBytes: m.hashed ?? 0 });
      });
      this.worker.on('error', reject);
    });
    this.result.catch(() => {});
  }

  /** Bytes [0, available) are on disk. Told in steps of 8 MiB: a message per write costs more than it saves. */
  advance(available: number): void {
    if (available - this.posted < ADVANCE_STEP) return;
    this.posted = available;
    this.worker.postMessage({ available });
  }

  /** The whole file (`total` bytes) is on disk: the digest once the worker has read it all. */
  async finish(total: number): Promise<HashResult> {
    this.worker.postMessage({ available: total, total });
    try {
      return await this.result;
    } finally {
      await this.worker.terminate();
    }
  }

  async abort(): Promise<void> {
    await this.worker.terminate();
  }
}
