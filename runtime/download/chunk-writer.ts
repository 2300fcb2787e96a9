// Writes one response body into the file at its offset as it arrives: the connection reads straight
// into a batch buffer (`space`), and each full batch is written with one positioned write, in order, so
// the bytes on disk stay contiguous from where the body started. Batch buffers come from a shared pool
// and go back once written, so a download allocates a few dozen buffers in all instead of one per
// network read (that churn was most of the garbage collector's work). At most `maxBatchesInFlight`
// batches wait for the disk; beyond that the connection is paused, so memory stays bounded by a few
// batches per request. A batch is also written once its first bytes are `maxBatchAgeMs` old: from a
// slow origin, progress and the resumable bytes on disk still advance steadily instead of once per batch.
import type { FileHandle } from 'node:fs/promises';
import type { BodyController } from './body-client.js';

/** `bytes` were written at `pos`; valid only during the call (the buffer goes back to the pool). */
export type OnWritten = (pos: number, bytes: Buffer) => void;

export interface ChunkWriterLimits {
  batchBytes: number;
  maxBatchesInFlight: number;
  maxBatchAgeMs: number;
}

// A batch is 4 KiB short of 1 MiB so that writes do not land on 1 MiB-aligned offsets: there the kernel
// (ext4 with large folios, Linux 6.18) fills the page cache with 1 MiB folios, and on the benchmark VM
// (virtio-balloon free page reporting: free 2 MiB blocks go back to the host) copying into those cost
// ~2 CPU-s per GiB against ~0.2 for the smaller folios of offsets aligned only to 4 KiB (perf of the
// download, 2026-12-04; docs/BENCHMARKS.md, issue 12). Not measured on a host without page reporting.
export const WRITE_LIMITS: ChunkWriterLimits = { batchBytes: 1024 * 1024 - 4096, maxBatchesInFlight: 2, maxBatchAgeMs: 250 };

/** Free batch buffers by size, kept for the next request (at most `MAX_FREE` of each size). */
const freeBuffers = new Map<number, Buffer[]>();
const MAX_FREE = 32;

function takeBuffer(bytes: number): Buffer {
  return freeBuffers.get(bytes)?.pop() ?? Buffer.allocUnsafeSlow(bytes);
}

function giveBack(buf: Buffer): void {
  const list = freeBuffers.get(buf.length) ?? [];
  if (list.length < MAX_FREE) list.push(buf);
  freeBuffers.set(buf.length, list);
}

async function writeAll(fh: FileHandle, buf: Buffer, length: number, pos: number): Promise<void> {
  // A short write (rare for files) is continued from where it stopped.
  for (let off = 0; off < length;) off += (await fh.write(buf, off, length - off, pos + off)).bytesWritten;
}

export class ChunkWriter {
  private batch?: Buffer;
  private batchBytes = 0;
  /** When the batch's first bytes arrived (performance.now()). */
  private batchStarted = 0;
  /** File offset where the next batch goes. */
  private pos: number;
  private inFlight = 0;
  private controller?: BodyController;
  private paused = false;
  private ended = false;
  private writes: Promise<void> = Promise.resolve();
  private failed?: unknown;
  /** Bytes of the body received (written or not). */
  received = 0;

  constructor(private readonly fh: FileHandle, startPos: number, private readonly onWritten: OnWritten, private readonly limits = WRITE_LIMITS) {
    this.pos = startPos;
  }

  /** The connection that fills this writer (paused while too many batches wait for the disk). */
  attach(controller: BodyController): void {
    this.controller = controller;
    if (this.failed) controller.abort(this.failed as Error);
  }

  /** Where the next bytes of the body go. */
  space(): Buffer {
    this.batch ??= takeBuffer(this.limits.batchBytes);
    return this.batch.subarray(this.batchBytes);
  }

  /** `n` bytes were stored at the start of the last `space()`. */
  filled(n: number): void {
    if (this.failed) {
      this.controller?.abort(this.failed as Error);
      return;
    }
    this.received += n;
    const now = performance.now();
    if (this.batchBytes === 0) this.batchStarted = now;
    this.batchBytes += n;
    if (this.batchBytes < this.limits.batchBytes && now - this.batchStarted < this.limits.maxBatchAgeMs) return;
    this.submit();
    if (this.inFlight >= this.limits.maxBatchesInFlight && !this.ended && this.controller) {
      this.paused = true;
      this.controller.pause();
    }
  }

  end(): void {
    this.ended = true;
  }

  /** Fails the request with `reason` (thrown by `finish`); what was received before is still written. */
  fail(reason: Error): void {
    this.failed ??= reason;
    this.controller?.abort(reason);
  }

  /** After the body ended or failed: everything received is written (and reported); throws a write's error. */
  async finish(): Promise<void> {
    if (this.batchBytes > 0) this.submit();
    else if (this.batch) giveBack(this.batch);
    this.batch = undefined;
    await this.writes;
    if (this.failed) throw this.failed;
  }

  private submit(): void {
    const [buf, length, pos] = [this.batch!, this.batchBytes, this.pos];
    this.batch = undefined;
    this.batchBytes = 0;
    this.pos += length;
    this.inFlight++;
    this.writes = this.writes.then(async () => {
      try {
        if (!this.failed) {
          await writeAll(this.fh, buf, length, pos);
          this.onWritten(pos, buf.subarray(0, length));
        }
      } catch (e) {
        this.failed = e;
        this.controller?.abort(e as Error);
      } finally {
        giveBack(buf);
        this.inFlight--;
        if (this.paused && this.inFlight < this.limits.maxBatchesInFlight) {
          this.paused = false;
          if (!this.ended) this.controller?.resume();
        }
      }
    });
  }
}
