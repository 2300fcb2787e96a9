// A round of work every interval, never two at once (the next waits for the previous to finish);
// stop() waits for the round in flight. The autoscaler and the model progress collector run on it.
export class PeriodicLoop {
  private timer?: NodeJS.Timeout;
  private round?: Promise<void>;
  private stopped = false;

  /** `onError` hears a round that threw; the loop goes on. */
  constructor(private readonly intervalMs: number, private readonly run: () => Promise<void>, private readonly onError: (e: unknown) => void) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.round = this.run().catch(this.onError).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }
}
