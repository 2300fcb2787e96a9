// Flushes files to disk while they download, one flush at a time for the whole download. A file is
// made durable (datasync) before it is renamed into place; flushing only then leaves every byte of the
// files that end last to be written back after their last byte, a tail the whole download waits on
// (0.1–0.5 s a GiB here). One flush in flight at a time holds at most one of libuv's threads, which the
// writes share.
import type { FileHandle } from 'node:fs/promises';

export class BackgroundFlush {
  private busy = false;

  /** `everyBytes`: written bytes of a file between flushes (0: none before the file's final one). */
  constructor(private readonly everyBytes: number) {}

  /** A counter for one open file: call it with each write's length. */
  track(fh: FileHandle): (bytes: number) => void {
    let since = 0;
    return (bytes) => {
      since += bytes;
      if (this.everyBytes <= 0 || since < this.everyBytes || this.busy) return;
      since = 0;
      this.busy = true;
      // An error here shows again in the file's final datasync, which is awaited; FileHandle.close waits for this one.
      void fh.datasync().catch(() => {}).finally(() => (this.busy = false));
    };
  }
}
