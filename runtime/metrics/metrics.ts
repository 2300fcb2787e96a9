// The runtime's Prometheus metrics. Names are an interface (DESIGN.md section 4): dashboards,
// alerts and the operator's autoscaler read them. Each server gets its own registry, so several
// servers can live in one process (tests) without clashing.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineObserver, EngineStats, FinishedRequestStats } from '../engine/engine.js';

// Latency buckets fit for LLM serving (as vLLM's): sub-millisecond decode steps to minute-long requests.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export class RuntimeMetrics implements EngineObserver {
  readonly registry = new Registry();
  private readonly promptTokens: Counter<'model_name'>;
  private readonly generationTokens: Counter<'model_name'>;
  private readonly requestSuccess: Counter<'model_name' | 'finish_reason'>;
  private readonly requestFailure: Counter<'model_name'>;
  private readonly ttft: Histogram<'model_name'>;
  private readonly tpot: Histogram<'model_name'>;
  private readonly e2e: Histogram<'model_name'>;
  private readonly loadProgress: Gauge<'model_name'>;
  private engineStats?: () => EngineStats;

  constructor(readonly modelName: string) {
    const registers = [this.registry];
    const labelNames = ['model_name'] as const;
    const self = this;
    const stat = (pick: (s: EngineStats) => number) =>
      function (this: Gauge<'model_name'>) {
        // Read at scrape time; absent while the model loads.
        const s = self.engineStats?.();
        this.set({ model_name: modelName }, s ? pick(s) : 0);
      };

    this.promptTokens = new Counter({ name: 'jamba_prompt_tokens_total', help: 'Prompt tokens prefilled.', labelNames, registers });
    this.generationTokens = new Counter({ name: 'jamba_generation_tokens_total', help: 'Tokens generated.', labelNames, registers });
    this.requestSuccess = new Counter({
      name: 'jamba_request_success_total',
      help: 'Requests finished, by finish reason (stop, length, abort).',
      labelNames: ['model_name', 'finish_reason'],
      registers,
    });
    this.requestFailure = new Counter({
      name: 'jamba_request_failure_total',
      help: 'Requests ended by an engine error (a failed model step), not by the client or a stop condition.',
      labelNames,
      registers,
    });
    this.ttft = new Histogram({ name: 'jamba_time_to_first_token_seconds', help: 'Time from arrival to the first generated token.', labelNames, buckets: TTFT_BUCKETS, registers });
    this.tpot = new Histogram({ name: 'jamba_time_per_output_token_seconds', help: 'Mean time between generated tokens of a request, after the first.', labelNames, buckets: TPOT_BUCKETS, registers });
    this.e2e = new Histogram({ name: 'jamba_e2e_request_latency_seconds', help: 'Time from arrival to the end of a request.', labelNames, buckets: E2E_BUCKETS, registers });
    new Gauge({ name: 'jamba_requests_running', help: 'Requests in the running batch.', labelNames, registers, collect: stat((s) => s.running) });
    new Gauge({ name: 'jamba_requests_waiting', help: 'Requests waiting for admission.', labelNames, registers, collect: stat((s) => s.waiting) });
    new Gauge({ name: 'jamba_kv_cache_usage_ratio', help: 'Fraction of KV-cache blocks in use (attention layers).', labelNames, registers, collect: stat((s) => s.kvUsageRatio) });
    new Gauge({ name: 'jamba_mamba_state_slots_in_use', help: 'Mamba state slots held by sequences.', labelNames, registers, collect: stat((s) => s.stateSlotsInUse) });
    new Gauge({ name: 'jamba_mamba_state_slots_total', help: 'Mamba state slots in the pool.', labelNames, registers, collect: stat((s) => s.stateSlotsTotal) });
    this.loadProgress = new Gauge({ name: 'jamba_model_load_progress_ratio', help: 'Model weight loading progress, 0..1.', labelNames, registers });
    this.loadProgress.set({ model_name: modelName }, 0);
    // Series exist (at 0) from the first scrape, so rate() and histogram_quantile() work at once.
    this.promptTokens.inc({ model_name: modelName }, 0);
    this.generationTokens.inc({ model_name: modelName }, 0);
    this.requestFailure.inc({ model_name: modelName }, 0);
    for (const h of [this.ttft, this.tpot, this.e2e]) h.zero({ model_name: modelName });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where the gauges of the running engine are read from, once it exists. */
  attachEngine(stats: () => EngineStats): void {
    this.engineStats = stats;
  }

  setLoadProgress(ratio: number): void {
    this.loadProgress.set({ model_name: this.modelName }, ratio);
  }

  onPromptTokens(count: number): void {
    this.promptTokens.inc({ model_name: this.modelName }, count);
  }

  onGenerationTokens(count: number): void {
    this.generationTokens.inc({ model_name: this.modelName }, count);
  }

  onRequestFinished(stats: FinishedRequestStats): void {
    const labels = { model_name: this.modelName };
    this.requestSuccess.inc({ ...labels, finish_reason: stats.finishReason });
    if (stats.timeToFirstTokenSeconds !== undefined) this.ttft.observe(labels, stats.timeToFirstTokenSeconds);
    if (stats.timePerOutputTokenSeconds !== undefined) this.tpot.observe(labels, stats.timePerOutputTokenSeconds);
    this.e2e.observe(labels, stats.e2eSeconds);
  }

  onRequestFailed(stats: FinishedRequestStats): void {
    const labels = { model_name: this.modelName };
    this.requestFailure.inc(labels);
    this.e2e.observe(labels, stats.e2eSeconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
