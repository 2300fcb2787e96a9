// The two name sets over the same observations: ours always, vLLM's behind the flag, with vLLM's exact
// names, labels and buckets (as vllm/v1/metrics/loggers.py declares them).
import type { EngineStats, FinishedRequestStats } from '../engine/engine.js';
import { bucketBounds, parseExposition, sampleSum, type Exposition } from '../../test/monitoring/exposition.js';
import { RuntimeMetrics } from './metrics.js';

const VLLM_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const VLLM_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const VLLM_REQUEST = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

const VLLM_FAMILIES: Array<[string, string, number[]?]> = [
  ['vllm:num_requests_running', 'gauge'],
  ['vllm:num_requests_waiting', 'gauge'],
  ['vllm:kv_cache_usage_perc', 'gauge'],
  ['vllm:gpu_cache_usage_perc', 'gauge'],
  ['vllm:prompt_tokens_total', 'counter'],
  ['vllm:generation_tokens_total', 'counter'],
  ['vllm:request_success_total', 'counter'],
  ['vllm:num_preemptions_total', 'counter'],
  ['vllm:time_to_first_token_seconds', 'histogram', VLLM_TTFT],
  ['vllm:inter_token_latency_seconds', 'histogram', VLLM_ITL],
  ['vllm:e2e_request_latency_seconds', 'histogram', VLLM_REQUEST],
  ['vllm:request_queue_time_seconds', 'histogram', VLLM_REQUEST],
  ['vllm:request_prefill_time_seconds', 'histogram', VLLM_REQUEST],
  ['vllm:request_decode_time_seconds', 'histogram', VLLM_REQUEST],
];

const stats: EngineStats = {
  running: 3, waiting: 2, kvBlocksUsed: 30, kvBlocksTotal: 40, kvUsageRatio: 0.75, stateSlotsInUse: 3, stateSlotsTotal: 8, preemptions: 0, pausedForReaders: 0,
};

// Arrived at 10 s, first step at 10.5, first token at 11.25, last at 13.25: queue 0.5, prefill 0.75, decode 2.
const finished: FinishedRequestStats = {
  requestId: 'r1', finishReason: 'length', numPromptTokens: 7, numOutputTokens: 5,
  timeToFirstTokenSeconds: 1.25, timePerOutputTokenSeconds: 0.5, e2eSeconds: 3.5,
  timeline: { arrival: 10, scheduled: 10.5, firstToken: 11.25, lastToken: 13.25, finished: 13.5 },
};

async function scrape(m: RuntimeMetrics): Promise<Exposition> {
  return parseExposition((await m.render()).body);
}

test('our names only, unless vLLM aliases are asked for', async () => {
  const e = await scrape(new RuntimeMetrics('jamba-tiny'));
  expect([...e.types.keys()].filter((n) => n.startsWith('vllm:'))).toEqual([]);
  expect(e.types.get('jamba_inter_token_latency_seconds')).toBe('histogram');
});

test('the vLLM set: names, types, labels model_name and engine, vLLM buckets', async () => {
  const m = new RuntimeMetrics('ai21labs/AI21-Jamba-1.5-Mini', { vllmAliases: true });
  m.attachEngine(() => stats);
  m.onRequestFinished(finished);
  const e = await scrape(m);
  for (const [name, type, buckets] of VLLM_FAMILIES) {
    expect({ name, type: e.types.get(name) }).toEqual({ name, type });
    const samples = e.samples.filter((s) => s.name === name || s.name.startsWith(`${name}_`));
    expect(samples.length).toBeGreaterThan(0);
    for (const s of samples) expect(s.labels).toMatchObject({ model_name: 'ai21labs/AI21-Jamba-1.5-Mini', engine: '0' });
    if (buckets) expect({ name, buckets: bucketBounds(e, name) }).toEqual({ name, buckets });
  }
  expect(sampleSum(e, 'vllm:request_success_total', { finished_reason: 'length' })).toBe(1);
  expect(sampleSum(e, 'vllm:kv_cache_usage_perc')).toBe(0.75);
  expect(sampleSum(e, 'vllm:gpu_cache_usage_perc')).toBe(0.75);
  expect(sampleSum(e, 'vllm:num_requests_running')).toBe(3);
  expect(sampleSum(e, 'vllm:num_requests_waiting')).toBe(2);
});

test('phases come from the timeline, the same in both sets', async () => {
  const m = new RuntimeMetrics('m', { vllmAliases: true });
  m.onRequestFinished(finished);
  const e = await scrape(m);
  for (const prefix of ['jamba_', 'vllm:']) {
    expect(sampleSum(e, `${prefix}request_queue_time_seconds_sum`)).toBeCloseTo(0.5, 9);
    expect(sampleSum(e, `${prefix}request_prefill_time_seconds_sum`)).toBeCloseTo(0.75, 9);
    expect(sampleSum(e, `${prefix}request_decode_time_seconds_sum`)).toBeCloseTo(2, 9);
    expect(sampleSum(e, `${prefix}e2e_request_latency_seconds_sum`)).toBe(3.5);
    expect(sampleSum(e, `${prefix}time_to_first_token_seconds_sum`)).toBe(1.25);
  }
  // The request-success label differs: finish_reason (ours) and finished_reason (vLLM's).
  expect(sampleSum(e, 'jamba_request_success_total', { finish_reason: 'length' })).toBe(1);
});

test('a request cancelled while waiting has a queue time only when it was scheduled', async () => {
  const m = new RuntimeMetrics('m');
  m.onRequestFinished({ ...finished, finishReason: 'abort', timeToFirstTokenSeconds: undefined, timeline: { arrival: 1, finished: 2 } });
  const e = await scrape(m);
  expect(sampleSum(e, 'jamba_request_queue_time_seconds_count')).toBe(0);
  expect(sampleSum(e, 'jamba_request_prefill_time_seconds_count')).toBe(0);
  expect(sampleSum(e, 'jamba_e2e_request_latency_seconds_count')).toBe(1);
  expect(sampleSum(e, 'jamba_request_success_total', { finish_reason: 'abort' })).toBe(1);
});

test('inter-token latency counts every interval; preemptions follow the engine counter', async () => {
  const m = new RuntimeMetrics('m', { vllmAliases: true });
  let preemptions = 0;
  m.attachEngine(() => ({ ...stats, preemptions }));
  for (const s of [0.02, 0.03, 0.5]) m.onInterTokenLatency(s);
  preemptions = 4;
  let e = await scrape(m);
  for (const prefix of ['jamba_', 'vllm:']) {
    expect(sampleSum(e, `${prefix}inter_token_latency_seconds_count`)).toBe(3);
    expect(sampleSum(e, `${prefix}inter_token_latency_seconds_bucket`, { le: '0.025' })).toBe(1);
    expect(sampleSum(e, `${prefix}num_preemptions_total`)).toBe(4);
  }
  preemptions = 6;
  e = await scrape(m);
  expect(sampleSum(e, 'jamba_num_preemptions_total')).toBe(6);
  expect(sampleSum(e, 'vllm:num_preemptions_total')).toBe(6);
});
