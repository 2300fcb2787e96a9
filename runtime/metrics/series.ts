// The metric names the runtime exports, as two sets over the same observations: ours (jamba_*, DESIGN.md
// section 4) and, behind --vllm-metrics, vLLM v1's (vllm:*), which routers, KEDA scalers, dashboards and
// the Gateway API Inference Extension's endpoint picker read. Names are interfaces: dashboards, alerts
// and the autoscaler depend on them (test/monitoring checks every reference against a rendered registry).

// Latency buckets, as vLLM's (vllm/v1/metrics/loggers.py): sub-millisecond steps to two-hour requests.
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
export const INTER_TOKEN_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
export const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

/** One set of names. Optional entries exist in one set only. */
export interface SeriesNames {
  /** Labels every series of the set carries besides model_name. */
  constLabels: Record<string, string>;
  promptTokens: string;
  generationTokens: string;
  preemptions: string;
  requestSuccess: string;
  finishReasonLabel: string;
  /** Requests ended by an engine error (ours only). */
  requestFailure?: string;
  timeToFirstToken: string;
  interTokenLatency: string;
  e2eLatency: string;
  queueTime: string;
  prefillTime: string;
  decodeTime: string;
  running: string;
  waiting: string;
  /** Several names for the same gauge (vLLM kept its old name for readers that still use it). */
  kvCacheUsage: string[];
  /** Mean time per output token of one request (ours only). */
  timePerOutputToken?: string;
  mambaSlotsInUse?: string;
  mambaSlotsTotal?: string;
  loadProgress?: string;
}

export const JAMBA_SERIES: SeriesNames = {
  constLabels: {},
  promptTokens: 'jamba_prompt_tokens_total',
  generationTokens: 'jamba_generation_tokens_total',
  preemptions: 'jamba_num_preemptions_total',
  requestSuccess: 'jamba_request_success_total',
  finishReasonLabel: 'finish_reason',
  requestFailure: 'jamba_request_failure_total',
  timeToFirstToken: 'jamba_time_to_first_token_seconds',
  interTokenLatency: 'jamba_inter_token_latency_seconds',
  e2eLatency: 'jamba_e2e_request_latency_seconds',
  queueTime: 'jamba_request_queue_time_seconds',
  prefillTime: 'jamba_request_prefill_time_seconds',
  decodeTime: 'jamba_request_decode_time_seconds',
  running: 'jamba_requests_running',
  waiting: 'jamba_requests_waiting',
  kvCacheUsage: ['jamba_kv_cache_usage_ratio'],
  timePerOutputToken: 'jamba_time_per_output_token_seconds',
  mambaSlotsInUse: 'jamba_mamba_state_slots_in_use',
  mambaSlotsTotal: 'jamba_mamba_state_slots_total',
  loadProgress: 'jamba_model_load_progress_ratio',
};

/** vLLM v1's names and labels (`model_name`, `engine`; one engine, index 0), as of vLLM 0.13. */
export const VLLM_SERIES: SeriesNames = {
  constLabels: { engine: '0' },
  promptTokens: 'vllm:prompt_tokens_total',
  generationTokens: 'vllm:generation_tokens_total',
  preemptions: 'vllm:num_preemptions_total',
  requestSuccess: 'vllm:request_success_total',
  finishReasonLabel: 'finished_reason',
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
  interTokenLatency: 'vllm:inter_token_latency_seconds',
  e2eLatency: 'vllm:e2e_request_latency_seconds',
  queueTime: 'vllm:request_queue_time_seconds',
  prefillTime: 'vllm:request_prefill_time_seconds',
  decodeTime: 'vllm:request_decode_time_seconds',
  running: 'vllm:num_requests_running',
  waiting: 'vllm:num_requests_waiting',
  kvCacheUsage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
};
