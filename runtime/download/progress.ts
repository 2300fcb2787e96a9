// Download progress: bytes done of the total, throughput over a sliding window and the ETA. Bytes done
// never go backwards: a file fetched again (after a corrupted byte) counts only once it passes what it
// had reached before.
export type DownloadPhase = 'Listing' | 'Downloading' | 'Verifying' | 'Downloaded' | 'Failed';

export interface ProgressSnapshot {
  phase: DownloadPhase;
  repo: string;
  revision: string;
  commit?: string;
  bytesDone: number;
  bytesTotal: number;
  /** Whole percent, 0–100 (100 only when everything is verified). */
  percent: number;
  filesDone: number;
  filesTotal: number;
  /** Over the last few seconds; 0 before any byte arrived. */
  bytesPerSecond: number;
  etaSeconds?: number;
  /** Bytes found on disk from an earlier run (resumed, not fetched again). */
  bytesResumed: number;
  error?: { code: string; message: string };
  updatedAt: string;
}

const WINDOW_MS = 10_000;

export class DownloadProgress {
  private phase: DownloadPhase = 'Listing';
  private commit?: string;
  private total = 0;
  private filesTotal = 0;
  private filesDone = 0;
  private resumed = 0;
  private error?: { code: string; message: string };
  /** Per file: the most bytes it ever reached (high-water mark) and what it has now. */
  private readonly files = new Map<string, { high: number; now: number }>();
  private done = 0;
  private readonly samples: { t: number; bytes: number }[] = [];
  private fetched = 0;

  constructor(readonly repo: string, readonly revision: string, private readonly clock: () => number = Date.now) {}

  start(commit: string, files: { path: string; size: number }[]): void {
    this.commit = commit;
    this.phase = 'Downloading';
    this.total = files.reduce((s, f) => s + f.size, 0);
    this.filesTotal = files.length;
    for (const f of files) this.files.set(f.path, { high: 0, now: 0 });
    this.samples.push({ t: this.clock(), bytes: 0 });
  }

  /** Bytes of `path` already on disk when the run started. */
  resumedFrom(path: string, bytes: number): void {
    this.resumed += bytes;
    this.advance(path, bytes, false);
  }

  /** `bytes` more of `path` arrived from the network. */
  received(path: string, bytes: number): void {
    this.fetched += bytes;
    this.advance(path, bytes, true);
  }

  /** The file's bytes are being fetched again from zero (verification failed). */
  restart(path: string): void {
    const f = this.files.get(path);
    if (f) f.now = 0;
  }

  fileDone(): void {
    this.filesDone++;
  }

  setPhase(phase: DownloadPhase): void {
    this.phase = phase;
  }

  fail(code: string, message: string): void {
    this.phase = 'Failed';
    this.error = { code, message };
  }

  private advance(path: string, bytes: number, sample: boolean): void {
    const f = this.files.get(path);
    if (!f) return;
    f.now += bytes;
    if (f.now > f.high) {
      this.done += f.now - f.high;
      f.high = f.now;
    }
    if (sample) {
      const t = this.clock();
      const last = this.samples[this.samples.length - 1];
      if (this.samples.length > 1 && last && t - last.t < 100) last.bytes = this.fetched;
      else this.samples.push({ t, bytes: this.fetched });
      while (this.samples.length > 2 && t - this.samples[1]!.t > WINDOW_MS) this.samples.shift();
    }
  }

  bytesFetched(): number {
    return this.fetched;
  }

  bytesPerSecond(): number {
    const first = this.samples[0];
    if (!first) return 0;
    const t = this.clock();
    const span = (t - first.t) / 1000;
    return span > 0 ? (this.fetched - first.bytes) / span : 0;
  }

  snapshot(): ProgressSnapshot {
    const rate = this.bytesPerSecond();
    const left = this.total - this.done;
    const complete = this.phase === 'Downloaded';
    // Every byte is there but hashes are still being checked (resumed files are re-read from disk).
    const phase = this.phase === 'Downloading' && this.total > 0 && this.done === this.total ? 'Verifying' : this.phase;
    const percent = complete ? 100 : this.total > 0 ? Math.min(99, Math.floor((this.done / this.total) * 100)) : 0;
    return {
      phase, repo: this.repo, revision: this.revision, ...(this.commit ? { commit: this.commit } : {}),
      bytesDone: this.done, bytesTotal: this.total, percent, filesDone: this.filesDone, filesTotal: this.filesTotal,
      bytesPerSecond: Math.round(rate), bytesResumed: this.resumed,
      ...(complete ? { etaSeconds: 0 } : rate > 0 && this.phase === 'Downloading' ? { etaSeconds: Math.ceil(left / rate) } : {}),
      ...(this.error ? { error: this.error } : {}),
      updatedAt: new Date(this.clock()).toISOString(),
    };
  }
}
