// /metrics carries the names of DESIGN.md section 4 (an interface: dashboards, alerts and the
// autoscaler read them) and counts what the engine did.
import type { Runtime } from '../../runtime/server/runtime.js';
import { loadReference, metricValue, postJson, startTestRuntime } from './helpers.js';

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
