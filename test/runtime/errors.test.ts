// Errors in OpenAI's shape with the right status, the bounded queue, and cancellation on disconnect.
import { request as httpRequest } from 'node:http';
import type { Runtime } from '../../runtime/server/runtime.js';
import { loadReference, metricValue, postJson, startTestRuntime, waitFor } from './helpers.js';

let runtime: Runtime;
const c = loadReference('jamba-tiny').cases[0]!;
const MAX_MODEL_LEN = 2048;

beforeAll(async () => {
  runtime = await startTestRuntime({ fixture: 'jamba-tiny', maxModelLen: MAX_MODEL_LEN, maxBodyBytes: 64 * 1024, maxNumSeqs: 1, maxWaiting: 1 });
}, 120000);
afterAll(async () => {
  await runtime?.close();
});

function expectOpenAiError(reply: { status: number; body: any }, status: number, param?: string | null) {
  expect(reply.status).toBe(status);
  expect(Object.keys(reply.body)).toEqual(['error']);
  expect(Object.keys(reply.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof reply.body.error.message).toBe('string');
  if (param !== undefined) expect(reply.body.error.param).toBe(param);
}

const abortedSoFar = () => metricValue(runtime, 'jamba_request_success_total', { finish_reason: 'abort' }).catch(() => 0);

/** Waits until nothing runs or waits and every KV block and state slot is back in the pool. */
async function expectAllStateFreed(): Promise<void> {
  await waitFor('all requests to end and their state to be freed', async () => {
    return (
      (await metricValue(runtime, 'jamba_requests_running')) === 0 &&
      (await metricValue(runtime, 'jamba_requests_waiting')) === 0 &&
      (await metricValue(runtime, 'jamba_kv_cache_usage_ratio')) === 0 &&
      (await metricValue(runtime, 'jamba_mamba_state_slots_in_use')) === 0
    );
  });
  expect(runtime.engine!.stats().kvBlocksUsed).toBe(0);
}

test.each([
  ['a non-numeric temperature', { temperature: 'hot' }, 'temperature'],
  ['a temperature above 2', { temperature: 3 }, 'temperature'],
  ['top_p of 0', { top_p: 0 }, 'top_p'],
  ['top_k below -1', { top_k: -2 }, 'top_k'],
  ['a fractional max_tokens', { max_tokens: 1.5 }, 'max_tokens'],
  ['max_tokens of 0', { max_tokens: 0 }, 'max_tokens'],
  ['logprobs above 5', { logprobs: 6 }, 'logprobs'],
  ['n = 2', { n: 2 }, 'n'],
  ['an empty prompt', { prompt: '' }, 'prompt'],
  ['an empty token list', { prompt: [] }, 'prompt'],
  ['a prompt of mixed types', { prompt: [1, 'a'] }, 'prompt'],
  ['several prompts in one request', { prompt: ['a', 'b'] }, 'prompt'],
  ['a token id outside the vocabulary', { prompt: [1, 10_000_000] }, 'prompt'],
  ['a negative token id', { prompt: [1, -4] }, 'prompt'],
  ['prompt + max_tokens beyond max-model-len', { max_tokens: MAX_MODEL_LEN }, 'max_tokens'],
  ['stop of the wrong type', { stop: 5 }, 'stop'],
  ['stream_options without stream', { stream_options: { include_usage: true } }, 'stream_options'],
  ['a missing prompt', { prompt: undefined }, 'prompt'],
])('400 for %s', async (_what, patch, param) => {
  const reply = await postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: 4, ...patch });
  expectOpenAiError(reply, 400, param);
});

test.each([
  ['no messages', { messages: [] }],
  ['a message without a role', { messages: [{ content: 'hi' }] }],
  ['top_logprobs without logprobs', { messages: [{ role: 'user', content: 'hi' }], top_logprobs: 2 }],
  ['top_logprobs above 5', { messages: [{ role: 'user', content: 'hi' }], logprobs: true, top_logprobs: 6 }],
])('400 from chat for %s', async (_what, body) => {
  expectOpenAiError(await postJson(runtime, '/v1/chat/completions', body), 400);
});

test('400 for a body that is not JSON, or not an object', async () => {
  const bad = await postJson(runtime, '/v1/completions', '{"prompt": ');
  expectOpenAiError(bad, 400);
  expect(bad.body.error.code).toBe('invalid_json');
  expectOpenAiError(await postJson(runtime, '/v1/completions', '[1,2]'), 400);
});

test('404 for an unknown model and an unknown route; 405 for a wrong method', async () => {
  const model = await postJson(runtime, '/v1/completions', { model: 'nope', prompt: 'x', max_tokens: 1 });
  expectOpenAiError(model, 404, 'model');
  expect(model.body.error.code).toBe('model_not_found');
  const route = await fetch(`${runtime.url}/v1/embeddings`);
  expectOpenAiError({ status: route.status, body: await route.json() }, 404);
  const get = await fetch(`${runtime.url}/v1/completions`);
  expectOpenAiError({ status: get.status, body: await get.json() }, 405);
  expect(get.headers.get('allow')).toBe('POST');
  const post = await postJson(runtime, '/health', {});
  expectOpenAiError(post, 405);
});

test('413 for a body over the limit', async () => {
  const reply = await postJson(runtime, '/v1/completions', { prompt: 'x'.repeat(100 * 1024), max_tokens: 1 });
  expectOpenAiError(reply, 413);
});

test('a full queue answers 429 with Retry-After; cancelling frees everything', async () => {
  // One sequence may run and one may wait: the third request is refused.
  const long = { prompt: c.prompt, max_tokens: MAX_MODEL_LEN - c.prompt_token_ids.length, temperature: 0, ignore_eos: true };
  const running = new AbortController();
  const waiting = new AbortController();
  const first = postJson(runtime, '/v1/completions', long, { signal: running.signal }).catch((e: { name?: string }) => e.name);
  await waitFor('the first request to run', async () => (await metricValue(runtime, 'jamba_requests_running')) === 1);
  const second = postJson(runtime, '/v1/completions', long, { signal: waiting.signal }).catch((e: { name?: string }) => e.name);
  await waitFor('the second request to wait', async () => (await metricValue(runtime, 'jamba_requests_waiting')) === 1);
  const third = await postJson(runtime, '/v1/completions', long);
  expectOpenAiError(third, 429);
  expect(third.headers.get('retry-after')).toBe('1');
  const abortsBefore = await abortedSoFar();
  running.abort();
  waiting.abort();
  expect(await first).toBe('AbortError');
  expect(await second).toBe('AbortError');
  await expectAllStateFreed();
  expect(await abortedSoFar()).toBe(abortsBefore + 2);
}, 60000);

test('a client that disconnects mid-stream cancels its request and frees its state', async () => {
  const abortsBefore = await abortedSoFar();
  const body = JSON.stringify({ prompt: c.prompt, max_tokens: MAX_MODEL_LEN - c.prompt_token_ids.length, temperature: 0, ignore_eos: true, stream: true });
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${runtime.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      expect(res.statusCode).toBe(200);
      res.once('data', () => {
        // First chunk in: the request is running. Drop the connection.
        req.destroy();
        resolve();
      });
    });
    req.on('error', (e) => (e.message.includes('socket hang up') || e.message.includes('aborted') ? undefined : reject(e)));
    req.end(body);
  });
  await expectAllStateFreed();
  expect(await abortedSoFar()).toBe(abortsBefore + 1);
  // The server still serves afterwards.
  expect((await postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: 2 })).status).toBe(200);
}, 60000);

test('a client that disconnects during a non-streaming request cancels it too', async () => {
  const abortsBefore = await abortedSoFar();
  const controller = new AbortController();
  const pending = postJson(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: MAX_MODEL_LEN - c.prompt_token_ids.length, temperature: 0, ignore_eos: true }, { signal: controller.signal }).catch((e: { name?: string }) => e.name);
  await waitFor('the request to run', async () => (await metricValue(runtime, 'jamba_requests_running')) === 1);
  controller.abort();
  expect(await pending).toBe('AbortError');
  await expectAllStateFreed();
  expect(await abortedSoFar()).toBe(abortsBefore + 1);
}, 60000);
