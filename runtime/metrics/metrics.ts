// The runtime's Prometheus metrics. Each server gets its own registry, so several servers can live in
// one process (tests) without clashing. Every observation goes to our set of names and, when asked,
// to vLLM's too (series.ts); both read the same engine, so they never disagree.
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineObserver, EngineStats, FinishedRequestStats } from '../engine/engine.js';
import type { FinishReason } from '../engine/sequence.js';
import { INTER_TOKEN_BUCKETS, JAMBA_SERIES, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS, VLLM_SERIES, type SeriesNames } from './series.js';

export interface RuntimeMetricsOptions {
  /** Also export vLLM's metric names (vllm:*). */
  vllmAliases?: boolean;
}

type Labels = Record<string, string>;

const FINISH_REASONS: FinishReason[] = ['stop', 'length', 'abort'];

/** The instruments of one set of names, all labelled with the model name (and the set's own labels). */
class SeriesSet {
  private readonly labels: Labels;
  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly requestSuccess: Counter;
  private readonly requestFailure?: Counter;
  private readonly ttft: Histogram;
  private readonly interToken: Histogram;
  private readonly e2e: Histogram;
  private readonly queue: Histogram;
  private readonly prefill: Histogram;
  private readonly decode: Histogram;
  private readonly tpot?: Histogram;
  private readonly loadProgress?: Gauge;
  private readonly finishReasonLabel: string;
  private preemptionsSeen = 0;

  constructor(names: SeriesNames, modelName: string, registry: Registry, stats: () => EngineStats | undefined) {
    this.labels = { model_name: modelName, ...names.constLabels };
    const labelNames = Object.keys(this.labels);
    const registers = [registry];
    const labels = this.labels;
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers });
    // Gauges are read from the engine at scrape time; 0 while the model loads.
    const gauge = (name: string, help: string, pick: (s: EngineStats) => number) =>
      new Gauge({
        name, help, labelNames, registers,
        collect(this: Gauge) {
          const s = stats();
          this.set(labels, s ? pick(s) : 0);
        },
      });

    this.promptTokens = counter(names.promptTokens, 'Prompt tokens prefilled.');
    this.generationTokens = counter(names.generationTokens, 'Tokens generated.');
    const self = this;
    const preemptions = new Counter({
      name: names.preemptions, help: 'Sequences preempted (state dropped, recomputed later) for lack of KV blocks.', labelNames, registers,
      collect(this: Counter) {
        const total = stats()?.preemptions ?? 0;
        if (total > self.preemptionsSeen) this.inc(labels, total - self.preemptionsSeen);
        self.preemptionsSeen = total;
      },
    });
    this.requestSuccess = new Counter({
      name: names.requestSuccess, help: 'Requests finished, by finish reason (stop, length, abort).',
      labelNames: [...labelNames, names.finishReasonLabel], registers,
    });
    this.finishReasonLabel = names.finishReasonLabel;
    if (names.requestFailure) {
      this.requestFailure = counter(names.requestFailure, 'Requests ended by an engine error (a failed model step), not by the client or a stop condition.');
    }
    this.ttft = histogram(names.timeToFirstToken, 'Time from arrival to the first generated token.', TTFT_BUCKETS);
    this.interToken = histogram(names.interTokenLatency, 'Time between two consecutive tokens of a request.', INTER_TOKEN_BUCKETS);
    this.e2e = histogram(names.e2eLatency, 'Time from arrival to the end of a request.', REQUEST_LATENCY_BUCKETS);
    this.queue = histogram(names.queueTime, 'Time a request waited before its first step (WAITING phase).', REQUEST_LATENCY_BUCKETS);
    this.prefill = histogram(names.prefillTime, 'Time from a request\'s first step to its first token (PREFILL phase).', REQUEST_LATENCY_BUCKETS);
    this.decode = histogram(names.decodeTime, 'Time from a request\'s first token to its last (DECODE phase).', REQUEST_LATENCY_BUCKETS);
    if (names.timePerOutputToken) {
      this.tpot = histogram(names.timePerOutputToken, 'Mean time between generated tokens of a request, after the first.', INTER_TOKEN_BUCKETS);
    }
    gauge(names.running, 'Requests in the running batch.', (s) => s.running);
    gauge(names.waiting, 'Requests waiting for admission.', (s) => s.waiting);
    for (const name of names.kvCacheUsage) gauge(name, 'Fraction of KV-cache blocks in use (attention layers), 0..1.', (s) => s.kvUsageRatio);
    if (names.mambaSlotsInUse) gauge(names.mambaSlotsInUse, 'Mamba state slots held by sequences.', (s) => s.stateSlotsInUse);
    if (names.mambaSlotsTotal) gauge(names.mambaSlotsTotal, 'Mamba state slots in the pool.', (s) => s.stateSlotsTotal);
    if (names.loadProgress) {
      this.loadProgress = new Gauge({ name: names.loadProgress, help: 'Model weight loading progress, 0..1.', labelNames, registers });
      this.loadProgress.set(labels, 0);
    }
    // Series exist (at 0) from the first scrape, so rate() and histogram_quantile() work at once.
    for (const c of [this.promptTokens, this.generationTokens, preemptions, this.requestFailure]) c?.inc(labels, 0);
    for (const reason of FINISH_REASONS) this.requestSuccess.inc({ ...labels, [this.finishReasonLabel]: reason }, 0);
    for (const h of [this.ttft, this.interToken, this.e2e, this.queue, this.prefill, this.decode, this.tpot]) h?.zero(labels);
  }

  setLoadProgress(ratio: number): void {
    this.loadProgress?.set(this.labels, ratio);
  }

  onPromptTokens(count: number): void {
    this.promptTokens.inc(this.labels, count);
  }

  onGenerationTokens(count: number): void {
    this.generationTokens.inc(this.labels, count);
  }

  onInterTokenLatency(seconds: number): void {
    this.interToken.observe(this.labels, seconds);
  }

  onRequestFailed(stats: FinishedRequestStats): void {
    this.requestFailure?.inc(this.labels);
    this.e2e.observe(this.labels, stats.e2eSeconds);
  }

  onRequestFinished(stats: FinishedRequestStats): void {
    const labels = this.labels;
    const t = stats.timeline;
    this.requestSuccess.inc({ ...labels, [this.finishReasonLabel]: stats.finishReason });
    if (stats.timeToFirstTokenSeconds !== undefined) this.ttft.observe(labels, stats.timeToFirstTokenSeconds);
    if (stats.timePerOutputTokenSeconds !== undefined) this.tpot?.observe(labels, stats.timePerOutputTokenSeconds);
    this.e2e.observe(labels, stats.e2eSeconds);
    // Phases as vLLM splits them; a request cancelled before a phase began has no sample for it.
    if (t.scheduled !== undefined) this.queue.observe(labels, t.scheduled - t.arrival);
    if (t.scheduled !== undefined && t.firstToken !== undefined) this.prefill.observe(labels, t.firstToken - t.scheduled);
    if (t.firstToken !== undefined && t.lastToken !== undefined) this.decode.observe(labels, t.lastToken - t.firstToken);
  }
}

export class RuntimeMetrics implements EngineObserver {
  readonly registry = new Registry();
  private readonly sets: SeriesSet[];
  private engineStats?: () => EngineStats;
  private readonly httpResponses = new Counter({
    name: 'jamba_http_requests_total', help: 'HTTP responses, by method, route and status code (the request error rate).',
    labelNames: ['method', 'route', 'code'] as const, registers: [this.registry],
  });

  constructor(readonly modelName: string, opts: RuntimeMetricsOptions = {}) {
    const stats = () => this.engineStats?.();
    const names = opts.vllmAliases ? [JAMBA_SERIES, VLLM_SERIES] : [JAMBA_SERIES];
    this.sets = names.map((n) => new SeriesSet(n, modelName, this.registry, stats));
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where the gauges of the running engine are read from, once it exists. */
  attachEngine(stats: () => EngineStats): void {
    this.engineStats = stats;
  }

  setLoadProgress(ratio: number): void {
    for (const s of this.sets) s.setLoadProgress(ratio);
  }

  /**
   * Counts the response once its connection is done with it. `route` must be one of the server's
   * routes (or 'other'), so the label stays bounded. A response cut before its headers counts as code 0.
   */
  countResponse(method: string | undefined, route: string, res: ServerResponse): void {
    res.once('close', () => this.httpResponses.inc({ method: method ?? '', route, code: res.headersSent ? String(res.statusCode) : '0' }));
  }

  onPromptTokens(count: number): void {
    for (const s of this.sets) s.onPromptTokens(count);
  }

  onGenerationTokens(count: number): void {
    for (const s of this.sets) s.onGenerationTokens(count);
  }

  onInterTokenLatency(seconds: number): void {
    for (const s of this.sets) s.onInterTokenLatency(seconds);
  }

  onRequestFinished(stats: FinishedRequestStats): void {
    for (const s of this.sets) s.onRequestFinished(stats);
  }

  onRequestFailed(stats: FinishedRequestStats): void {
    for (const s of this.sets) s.onRequestFailed(stats);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
