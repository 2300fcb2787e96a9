// Bounds a download's requests in flight and shares them among the files being fetched. One first-come
// queue would hand every slot to the first file (its worker queues all its ranges at once), so files
// would be fetched one after another, each at the whole link's rate: then a file's sha256, serial and
// ~1–2 GB/s a core, falls behind a fast link and the download ends waiting for it. Shared equally, the
// files in flight are hashed side by side, each at its share of the link.

export class RequestScheduler {
  private free: number;
  private readonly inFlight = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  /** Open files that have asked for a request: one that has not is still opening (reading its parts, sizing its file). */
  private readonly asked = new Set<string>();
  private unfinished: number;
  private dispatching = false;

  /** `files`: how many files the download will open, `filesAtOnce` of them at a time. */
  constructor(private readonly slots: number, private readonly filesAtOnce: number, files: number) {
    this.free = slots;
    this.unfinished = files;
  }

  /** Files expected in flight now: those open, and those about to open in a freed file slot. */
  private expected(): number {
    return Math.max(1, Math.min(this.filesAtOnce, this.unfinished));
  }

  /** Requests a file may have in flight while another file wants more. */
  share(): number {
    return Math.ceil(this.slots / this.expected());
  }

  /** A file starts: its requests count from now. */
  open(file: string): void {
    if (this.inFlight.has(file)) throw new Error(`RequestScheduler: ${file} is already open`);
    this.inFlight.set(file, 0);
    this.waiting.set(file, []);
    this.schedule();
  }

  /** A file is done (or failed): its slot in the files at once goes to the next file. */
  close(file: string, finished: boolean): void {
    this.inFlight.delete(file);
    this.waiting.delete(file);
    this.asked.delete(file);
    if (finished) this.unfinished--;
    this.schedule();
  }

  async use<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const queue = this.waiting.get(file);
    if (!queue) throw new Error(`RequestScheduler: ${file} is not open`);
    this.asked.add(file);
    await new Promise<void>((resolve) => {
      queue.push(resolve);
      this.schedule();
    });
    try {
      return await fn();
    } finally {
      this.free++;
      const n = this.inFlight.get(file);
      if (n !== undefined) this.inFlight.set(file, n - 1);
      this.schedule();
    }
  }

  /** Dispatches once the current task has queued what it asks for (a file queues all its ranges in one go). */
  private schedule(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    queueMicrotask(() => {
      this.dispatching = false;
      this.dispatch();
    });
  }

  /**
   * Gives free slots to waiting requests: first to files under their share (the fewest in flight first),
   * then, once every expected file has asked (none still opening would be starved), to any file waiting.
   */
  private dispatch(): void {
    const share = this.share();
    const allOpen = this.asked.size >= this.expected();
    while (this.free > 0) {
      let pick: string | undefined;
      let fewest = Infinity;
      for (const [file, queue] of this.waiting) {
        const n = this.inFlight.get(file)!;
        if (queue.length > 0 && n < fewest && (n < share || allOpen)) {
          pick = file;
          fewest = n;
        }
      }
      if (pick === undefined) return;
      this.free--;
      this.inFlight.set(pick, fewest + 1);
      this.waiting.get(pick)!.shift()!();
    }
  }
}
