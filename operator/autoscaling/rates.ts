// Rates from counter samples, as Prometheus's rate() reads them: the sum of increases over the window,
// where a counter that went down (a restarted runtime) restarted from zero — a reset, never negative
// throughput. Pure, so the scrape source's arithmetic is table-tested.

export interface CounterSample {
  /** ms since the epoch */
  at: number;
  value: number;
}

/** Samples newer than `windowMs` before the newest, plus the one just before them (so the window is covered). */
export function trimToWindow(samples: readonly CounterSample[], windowMs: number): CounterSample[] {
  if (samples.length === 0) return [];
  const newest = samples[samples.length - 1]!.at;
  const first = samples.findIndex((s) => s.at >= newest - windowMs);
  return samples.slice(Math.max(first - 1, 0));
}

/** Increase over the samples, resets counted from zero. */
export function increase(samples: readonly CounterSample[]): number {
  let total = 0;
  for (let k = 1; k < samples.length; k++) {
    const [prev, cur] = [samples[k - 1]!.value, samples[k]!.value];
    total += cur >= prev ? cur - prev : cur;
  }
  return total;
}

/** Per-second rate over the samples; undefined with fewer than two (one scrape says nothing about a rate). */
export function counterRate(samples: readonly CounterSample[]): number | undefined {
  if (samples.length < 2) return undefined;
  const seconds = (samples[samples.length - 1]!.at - samples[0]!.at) / 1000;
  return seconds > 0 ? increase(samples) / seconds : undefined;
}
