// Where the autoscaler reads each replica's load: one interface, two sources (scrape-source.ts: each
// pod's /metrics directly, the default; prometheus-source.ts: a Prometheus HTTP API). Both read the
// runtime's own metric names (runtime/metrics/series.ts), so a renamed metric breaks their tests.
import { JAMBA_SERIES } from '../../runtime/metrics/series.js';

/** Which counters make "tokens per second": generated tokens (default), or prompt + generated. */
export type TokenSignal = 'Generation' | 'PromptAndGeneration';

export const RUNTIME_METRICS = {
  generationTokens: JAMBA_SERIES.generationTokens,
  promptTokens: JAMBA_SERIES.promptTokens,
  waiting: JAMBA_SERIES.waiting,
  running: JAMBA_SERIES.running,
  kvCacheUsage: JAMBA_SERIES.kvCacheUsage[0]!,
  stateSlotsInUse: JAMBA_SERIES.mambaSlotsInUse!,
  stateSlotsTotal: JAMBA_SERIES.mambaSlotsTotal!,
} as const;

export function tokenCounters(signal: TokenSignal): string[] {
  return signal === 'Generation' ? [RUNTIME_METRICS.generationTokens] : [RUNTIME_METRICS.promptTokens, RUNTIME_METRICS.generationTokens];
}

export interface PodTarget {
  /** Stable identity across restarts of the pod's container (the pod's uid). */
  uid: string;
  name: string;
  /** host:port of the runtime's HTTP port; undefined while the pod has no IP. */
  address?: string;
}

export interface MetricsQuery {
  namespace: string;
  jambaDeployment: string;
  pods: PodTarget[];
  windowSeconds: number;
  tokens: TokenSignal;
}

export interface PodReading {
  /** Undefined until the source has a rate (the scrape source needs two scrapes). */
  tokensPerSecond?: number;
  waitingRequests: number;
  runningRequests: number;
  kvCacheUsage: number;
  stateUsage?: number;
  /** ms since the epoch of the newest sample. */
  sampledAt: number;
}

export interface MetricsReport {
  /** By pod name; a pod missing here has no metric this round. */
  pods: Map<string, PodReading>;
  /** One line per failure (a pod's scrape, a query), for logs and the scrape-error counter. */
  errors: string[];
  /** The source as a whole could not be read: decide on nothing (hold). */
  failed: boolean;
}

export interface MetricsSource {
  readonly kind: 'scrape' | 'prometheus';
  read(q: MetricsQuery): Promise<MetricsReport>;
  /** The JambaDeployment is gone or no longer autoscaled: drop what is kept for it. */
  forget(namespace: string, jambaDeployment: string): void;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
