// /metrics carries the names of DESIGN.md section 4 (an interface: dashboards, alerts and the
// autoscaler read them) and counts what the engine did.
import type { Runtime } from '../../runtime/server/runtime.js';
import { loadReference, metricValue, postJson, startTestRuntime, waitFor } from './helpers.js';

const DESIGN_METRICS: Array<[string, 'counter' | 'gauge' | 'histogram']> = [
  ['jamba_prompt_tokens_total', 'counter'],
  ['jamba_generation_tokens_total', 'counter'],
  ['jamba_requests_running', 'gauge'],
  ['jamba_requests_waiting', 'gauge'],
  ['jamba_request_success_total', 'counter'],
  ['jamba_time_to_first_token_seconds', 'histogram'],
  ['jamba_time_per_output_token_seconds', 'histogram'],
  ['jamba_e2e_request_latency_seconds', 'histogram'],
  ['jamba_kv_cache_usage_ratio', 'gauge'],
  ['jamba_mamba_state_slots_in_use', 'gauge'],
  ['jamba_mamba_state_slots_total', 'gauge'],
  ['jamba_model_load_progress_ratio', 'gauge'],
];

let runtime: Runtime;
const c = loadReference('jamba-tiny').cases[0]!;

beforeAll(async () => {
  runtime = await startTestRuntime({ fixture: 'jamba-tiny', maxNumSeqs: 4 });
}, 120000);
afterAll(async () => {
  await runtime?.close();
});

test('every design metric is exposed under its exact name and type', async () => {
  const res = await fetch(`${runtime.url}/metrics`);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const text = await res.text();
  for (const [name, type] of DESIGN_METRICS) {
    expect({ name, typed: new RegExp(`^# TYPE ${name} ${type}$`, 'm').test(text) }).toEqual({ name, typed: true });
  }
  expect(await metricValue(runtime, 'jamba_mamba_state_slots_total', { model_name: runtime.servedModelName })).toBe(4);
});

test('a request moves the counters and histograms by what it did', async () => {
  const before = {
    prompt: await metricValue(runtime, 'jamba_prompt_tokens_total'),
    generated: await metricValue(runtime, 'jamba_generation_tokens_total'),
    length: await metricValue(runtime, 'jamba_request_success_total', { finish_reason: 'length' }).catch(() => 0),
    ttft: await metricValue(runtime, 'jamba_time_to_first_token_seconds_count'),
    tpot: await metricValue(runtime, 'jamba_time_per_output_token_seconds_count'),
    e2e: await metricValue(runtime, 'jamba_e2e_request_latency_seconds_count'),
  };
  const reply = await postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: 5, temperature: 0, ignore_eos: true });
  expect(reply.status).toBe(200);
  expect(await metricValue(runtime, 'jamba_prompt_tokens_total')).toBe(before.prompt + c.prompt_token_ids.length);
  expect(await metricValue(runtime, 'jamba_generation_tokens_total')).toBe(before.generated + 5);
  expect(await metricValue(runtime, 'jamba_request_success_total', { finish_reason: 'length' })).toBe(before.length + 1);
  expect(await metricValue(runtime, 'jamba_time_to_first_token_seconds_count')).toBe(before.ttft + 1);
  expect(await metricValue(runtime, 'jamba_time_per_output_token_seconds_count')).toBe(before.tpot + 1);
  expect(await metricValue(runtime, 'jamba_e2e_request_latency_seconds_count')).toBe(before.e2e + 1);
  expect(await metricValue(runtime, 'jamba_requests_running')).toBe(0);
  expect(await metricValue(runtime, 'jamba_kv_cache_usage_ratio')).toBe(0);
});

test('a request observes its inter-token intervals and its queue, prefill and decode phases', async () => {
  const names = ['jamba_inter_token_latency_seconds_count', 'jamba_request_queue_time_seconds_count', 'jamba_request_prefill_time_seconds_count', 'jamba_request_decode_time_seconds_count'];
  const before = await Promise.all(names.map((n) => metricValue(runtime, n)));
  const reply = await postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: 6, temperature: 0, ignore_eos: true });
  expect(reply.status).toBe(200);
  const after = await Promise.all(names.map((n) => metricValue(runtime, n)));
  // Six tokens: five intervals; one sample per phase.
  expect(after.map((v, i) => v - before[i]!)).toEqual([5, 1, 1, 1]);
});

describe('with --vllm-metrics', () => {
  let aliased: Runtime;
  beforeAll(async () => {
    aliased = await startTestRuntime({ fixture: 'jamba-tiny', maxNumSeqs: 4, vllmMetrics: true });
  }, 120000);
  afterAll(async () => {
    await aliased?.close();
  });

  test('the vllm:* series count exactly what ours count', async () => {
    for (let i = 0; i < 2; i++) {
      expect((await postJson(aliased, '/v1/completions', { prompt: c.prompt, max_tokens: 4, temperature: 0, ignore_eos: true })).status).toBe(200);
    }
    const pairs: Array<[string, string, Record<string, string>?]> = [
      ['jamba_prompt_tokens_total', 'vllm:prompt_tokens_total'],
      ['jamba_generation_tokens_total', 'vllm:generation_tokens_total'],
      ['jamba_time_to_first_token_seconds_count', 'vllm:time_to_first_token_seconds_count'],
      ['jamba_inter_token_latency_seconds_count', 'vllm:inter_token_latency_seconds_count'],
      ['jamba_e2e_request_latency_seconds_sum', 'vllm:e2e_request_latency_seconds_sum'],
      ['jamba_request_decode_time_seconds_sum', 'vllm:request_decode_time_seconds_sum'],
      ['jamba_requests_running', 'vllm:num_requests_running'],
      ['jamba_kv_cache_usage_ratio', 'vllm:kv_cache_usage_perc'],
    ];
    for (const [ours, theirs] of pairs) {
      expect({ theirs, value: await metricValue(aliased, theirs, { model_name: aliased.servedModelName, engine: '0' }) })
        .toEqual({ theirs, value: await metricValue(aliased, ours) });
    }
    expect(await metricValue(aliased, 'vllm:request_success_total', { finished_reason: 'length' })).toBe(2);
    expect(await metricValue(aliased, 'vllm:generation_tokens_total')).toBe(8);
  });
});

test('HTTP responses are counted by route and status code; unknown paths share one label', async () => {
  const count = (labels: Record<string, string>) => metricValue(runtime, 'jamba_http_requests_total', labels).catch(() => 0);
  const before = {
    ok: await count({ route: '/v1/completions', code: '200' }),
    bad: await count({ route: '/v1/completions', code: '400' }),
    other: await count({ route: 'other', code: '404' }),
  };
  expect((await postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: 1 })).status).toBe(200);
  expect((await postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: -1 })).status).toBe(400);
  expect((await fetch(`${runtime.url}/no/such/${Math.random()}`)).status).toBe(404);
  await waitFor('the counters', async () => (await count({ route: 'other', code: '404' })) === before.other + 1);
  expect(await count({ route: '/v1/completions', code: '200', method: 'POST' })).toBe(before.ok + 1);
  expect(await count({ route: '/v1/completions', code: '400' })).toBe(before.bad + 1);
});
