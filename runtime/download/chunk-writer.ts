// Writes one response body into the file at its offset as it arrives: the network reads are gathered
// into batches and each batch is written with one positioned writev (no copy), in order, so the bytes
// on disk stay contiguous from where the body started. At most `maxBatchesInFlight` batches wait for
// the disk; beyond that the connection is paused, so memory stays bounded by a few batches per request.
// A batch is also written once its first bytes are `maxBatchAgeMs` old: from a slow origin, progress
// and the resumable bytes on disk still advance steadily instead of once per batch.
import type { FileHandle } from 'node:fs/promises';
import type { Dispatcher } from 'undici';

/** `bufs` (`length` bytes in all) were written at `pos`. */
export type OnWritten = (pos: number, bufs: Buffer[], length: number) => void;

export interface ChunkWriterLimits {
  batchBytes: number;
  maxBatchesInFlight: number;
  maxBatchAgeMs: number;
}

export const WRITE_LIMITS: ChunkWriterLimits = { batchBytes: 1024 * 1024, maxBatchesInFlight: 2, maxBatchAgeMs: 250 };

async function writevAll(fh: FileHandle, bufs: Buffer[], length: number, pos: number): Promise<void> {
  let done = (await fh.writev(bufs, pos)).bytesWritten;
  // A short write (rare for files): the rest one buffer at a time.
  for (let i = 0, start = 0; done < length && i < bufs.length; start += bufs[i]!.length, i++) {
    const end = start + bufs[i]!.length;
    if (end <= done) continue;
    const rest = bufs[i]!.subarray(done - start);
    for (let off = 0; off < rest.length;) off += (await fh.write(rest, off, rest.length - off, pos + done + off)).bytesWritten;
    done = end;
  }
}

export class ChunkWriter {
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** When the batch's first bytes arrived (performance.now()). */
  private batchStarted = 0;
  /** File offset where the next batch goes. */
  private pos: number;
  private inFlight = 0;
  private pausedController?: Dispatcher.DispatchController;
  private ended = false;
  private writes: Promise<void> = Promise.resolve();
  private failed?: unknown;
  /** Bytes of the body received (written or not). */
  received = 0;

  constructor(private readonly fh: FileHandle, startPos: number, private readonly onWritten: OnWritten, private readonly limits = WRITE_LIMITS) {
    this.pos = startPos;
  }

  data(chunk: Buffer, controller: Dispatcher.DispatchController): void {
    if (this.failed) {
      controller.abort(this.failed as Error);
      return;
    }
    this.received += chunk.length;
    const now = performance.now();
    if (this.batchBytes === 0) this.batchStarted = now;
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    if (this.batchBytes < this.limits.batchBytes && now - this.batchStarted < this.limits.maxBatchAgeMs) return;
    this.submit();
    if (this.inFlight >= this.limits.maxBatchesInFlight && !this.ended) {
      this.pausedController = controller;
      controller.pause();
    }
  }

  end(): void {
    this.ended = true;
  }

  /** After the body ended or failed: everything received is written (and reported); throws a write's error. */
  async finish(): Promise<void> {
    if (this.batchBytes > 0) this.submit();
    await this.writes;
    if (this.failed) throw this.failed;
  }

  private submit(): void {
    const [bufs, length, pos] = [this.batch, this.batchBytes, this.pos];
    this.batch = [];
    this.batchBytes = 0;
    this.pos += length;
    this.inFlight++;
    this.writes = this.writes.then(async () => {
      try {
        if (!this.failed) {
          await writevAll(this.fh, bufs, length, pos);
          this.onWritten(pos, bufs, length);
        }
      } catch (e) {
        this.failed = e;
      } finally {
        this.inFlight--;
        const paused = this.pausedController;
        if (paused && this.inFlight < this.limits.maxBatchesInFlight) {
          this.pausedController = undefined;
          if (!this.ended) paused.resume();
        }
      }
    });
  }
}
