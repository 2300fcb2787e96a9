// The hash of a file whose chunks arrive out of order and in parallel, computed as it arrives: bytes
// that extend the hashed prefix are hashed from memory as they are written; bytes that arrived ahead
// of it are read back from disk (the page cache) once the prefix reaches them. So a file fetched by
// one request is hashed without reading it again, and the hash is done when the last byte lands.
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

export class PrefixHash {
  /** Bytes hashed so far, from offset 0. */
  private frontier = 0;
  private reading = false;
  private chain: Promise<void> = Promise.resolve();

  /** `onDisk(pos)`: how many bytes from `pos` on are written (contiguously) and may be read back. */
  constructor(private readonly hash: Hash, private readonly fh: FileHandle, private readonly onDisk: (pos: number) => number) {}

  get hashedBytes(): number {
    return this.frontier;
  }

  /** `bytes` were just written at `pos`; call before `onDisk` counts them. */
  wrote(pos: number, bytes: Buffer): void {
    if (this.reading || pos !== this.frontier) return;
    this.hash.update(bytes);
    this.frontier += bytes.length;
  }

  /** Reads back and hashes whatever is on disk at the frontier (serialized with earlier calls). */
  catchUp(): Promise<void> {
    this.chain = this.chain.then(async () => {
      this.reading = true;
      try {
        let buf: Buffer | undefined;
        for (let n = this.onDisk(this.frontier); n > 0; n = this.onDisk(this.frontier)) {
          buf ??= Buffer.allocUnsafe(4 << 20);
          const { bytesRead } = await this.fh.read(buf, 0, Math.min(buf.length, n), this.frontier);
          if (bytesRead === 0) break;
          this.hash.update(buf.subarray(0, bytesRead));
          this.frontier += bytesRead;
        }
      } finally {
        this.reading = false;
      }
    });
    return this.chain;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
