// The default metrics source: GET each pod's /metrics (pod-http.ts: bounded concurrency, short timeouts),
// keep the token counters' samples over the metrics window, and turn them into rates (rates.ts: resets
// count from zero). A pod that does not answer is missing this round, never a zero.
import { parseExposition, type Exposition } from '../../common/exposition.js';
import { PodHttp, bounded } from '../pods/pod-http.js';
import { counterRate, trimToWindow, type CounterSample } from './rates.js';
import {
  RUNTIME_METRICS, errorText, tokenCounters, type MetricsQuery, type MetricsReport, type MetricsSource, type PodReading, type PodTarget,
} from './metrics-source.js';

export interface ScrapeSourceOptions {
  /** Scrapes in flight at once, over all pods (default 16). */
  concurrency?: number;
  /** Whole-request timeout per pod (default 2 s). */
  timeoutMs?: number;
  now?: () => number;
}

function sum(e: Exposition, name: string): number | undefined {
  const matching = e.samples.filter((s) => s.name === name);
  return matching.length === 0 ? undefined : matching.reduce((total, s) => total + s.value, 0);
}

export class ScrapeSource implements MetricsSource {
  readonly kind = 'scrape';
  private readonly http: PodHttp;
  private readonly concurrency: number;
  private readonly now: () => number;
  /** Token counter samples by JambaDeployment key, then pod uid. */
  private readonly samples = new Map<string, Map<string, CounterSample[]>>();

  constructor(o: ScrapeSourceOptions = {}) {
    this.http = new PodHttp({ timeoutMs: o.timeoutMs ?? 2000 });
    this.concurrency = o.concurrency ?? 16;
    this.now = o.now ?? Date.now;
  }

  private async scrape(pod: PodTarget): Promise<Exposition> {
    return parseExposition(await this.http.get(pod.address!, '/metrics'));
  }

  async read(q: MetricsQuery): Promise<MetricsReport> {
    const key = `${q.namespace}/${q.jambaDeployment}`;
    const previous = this.samples.get(key) ?? new Map<string, CounterSample[]>();
    const kept = new Map<string, CounterSample[]>();
    const pods = new Map<string, PodReading>();
    const errors: string[] = [];
    const targets = q.pods.filter((p) => p.address);
    await bounded(targets, this.concurrency, async (pod) => {
      try {
        const e = await this.scrape(pod);
        const at = this.now();
        const counters = tokenCounters(q.tokens).map((name) => sum(e, name));
        if (counters.some((c) => c === undefined)) throw new Error(`no ${tokenCounters(q.tokens).join(' / ')} in its /metrics`);
        const history = trimToWindow([...(previous.get(pod.uid) ?? []), { at, value: counters.reduce((a, b) => a! + b!, 0)! }], q.windowSeconds * 1000);
        kept.set(pod.uid, history);
        const inUse = sum(e, RUNTIME_METRICS.stateSlotsInUse);
        const total = sum(e, RUNTIME_METRICS.stateSlotsTotal);
        pods.set(pod.name, {
          tokensPerSecond: counterRate(history),
          waitingRequests: sum(e, RUNTIME_METRICS.waiting) ?? 0,
          runningRequests: sum(e, RUNTIME_METRICS.running) ?? 0,
          kvCacheUsage: sum(e, RUNTIME_METRICS.kvCacheUsage) ?? 0,
          ...(inUse !== undefined && total ? { stateUsage: inUse / total } : {}),
          sampledAt: at,
        });
      } catch (err) {
        // Keep what we had: one failed scrape does not lose the window.
        const old = previous.get(pod.uid);
        if (old) kept.set(pod.uid, old);
        errors.push(`pod ${pod.name} (${pod.address}): ${errorText(err)}`);
      }
    });
    this.samples.set(key, kept);
    return { pods, errors, failed: targets.length > 0 && pods.size === 0 };
  }

  forget(namespace: string, jambaDeployment: string): void {
    this.samples.delete(`${namespace}/${jambaDeployment}`);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
