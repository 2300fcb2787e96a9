// Sampling parameters through the API: seeds, top_k, stop strings and stop tokens, EOS, max_tokens,
// and the shapes of logprobs in both endpoints.
import { Engine } from '../../runtime/engine/engine.js';
import type { SamplingParams } from '../../runtime/engine/sequence.js';
import { loadModel } from '../../runtime/models/index.js';
import type { Runtime } from '../../runtime/server/runtime.js';
import { fixtureDir, loadReference, postJson, postSse, startTestRuntime } from './helpers.js';

let runtime: Runtime;
const reference = loadReference('jamba-tiny');
const c = reference.cases[0]!;
const complete = (body: Record<string, unknown>) => postJson(runtime, '/v1/completions', { prompt: c.prompt, ...body });

beforeAll(async () => {
  runtime = await startTestRuntime({ fixture: 'jamba-tiny' });
}, 120000);
afterAll(async () => {
  await runtime?.close();
});

const ids = (body: any): number[] => body.choices[0].logprobs.tokens.map((t: string) => Number(t.split(':')[1]));
const sampled = { max_tokens: 16, temperature: 2, ignore_eos: true, logprobs: 0, return_tokens_as_token_ids: true };

test('the same seed gives the same output; different seeds give different ones', async () => {
  const a = await complete({ ...sampled, seed: 1234 });
  const b = await complete({ ...sampled, seed: 1234 });
  expect(a.status).toBe(200);
  expect(ids(b.body)).toEqual(ids(a.body));
  expect(b.body.choices[0].text).toBe(a.body.choices[0].text);
  const others = await Promise.all([1, 2, 3, 4].map((seed) => complete({ ...sampled, seed })));
  const distinct = new Set([a, ...others].map((r) => ids(r.body).join(',')));
  expect(distinct.size).toBeGreaterThan(1);
}, 60000);

test('a seed reproduces its output even when other requests share the batch', async () => {
  const alone = await complete({ ...sampled, seed: 99 });
  const crowd = await Promise.all([complete({ ...sampled, seed: 99 }), complete({ ...sampled, seed: 5 }), complete({ ...sampled, seed: 6 })]);
  expect(ids(crowd[0].body)).toEqual(ids(alone.body));
}, 60000);

test('top_k=1 at a high temperature is greedy', async () => {
  const r = await complete({ ...sampled, max_tokens: c.max_new_tokens, top_k: 1, seed: 7 });
  expect(ids(r.body)).toEqual(c.bf16.greedy_token_ids);
});

test('max_tokens bounds the output with finish_reason length', async () => {
  const r = await complete({ max_tokens: 3, temperature: 0, ignore_eos: true });
  expect(r.body.choices[0].finish_reason).toBe('length');
  expect(r.body.usage.completion_tokens).toBe(3);
});

test('a stop string ends the text just before it, with finish_reason stop', async () => {
  const greedy = await complete({ max_tokens: c.max_new_tokens, temperature: 0, ignore_eos: true });
  const text: string = greedy.body.choices[0].text;
  // A stop string from the middle of the greedy text (first occurrence decides).
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
  expect(stop.length).toBe(2);
  const cut = text.indexOf(stop);
  for (const stream of [false, true]) {
    const body = { max_tokens: c.max_new_tokens, temperature: 0, ignore_eos: true, stop: [stop, 'never-seen-zzz'], stream };
    let out: string;
    let finish: string;
    let stopReason: unknown;
    if (stream) {
      const s = await postSse(runtime, '/v1/completions', { prompt: c.prompt, ...body });
      out = s.events.map((e) => e.choices[0]?.text ?? '').join('');
      finish = s.events.at(-1).choices[0].finish_reason;
      stopReason = s.events.at(-1).choices[0].stop_reason;
    } else {
      const r = await complete(body);
      out = r.body.choices[0].text;
      finish = r.body.choices[0].finish_reason;
      stopReason = r.body.choices[0].stop_reason;
    }
    expect({ stream, out, finish, stopReason }).toEqual({ stream, out: text.slice(0, cut), finish: 'stop', stopReason: stop });
  }
}, 60000);

test('a stop token id ends generation after it, with stop_reason the id', async () => {
  const target = c.bf16.greedy_token_ids[3]!;
  const upTo = c.bf16.greedy_token_ids.indexOf(target) + 1;
  const r = await complete({ max_tokens: c.max_new_tokens, temperature: 0, stop_token_ids: [target], logprobs: 0, return_tokens_as_token_ids: true });
  expect(ids(r.body)).toEqual(c.bf16.greedy_token_ids.slice(0, upTo));
  expect(r.body.choices[0].finish_reason).toBe('stop');
  expect(r.body.choices[0].stop_reason).toBe(target);
});

test('every EOS id of the model ends generation unless ignore_eos (engine with the real model)', async () => {
  // The fixture's random weights rarely pick EOS, so the engine is told a greedy token is an EOS id.
  const loaded = await loadModel(fixtureDir('jamba-tiny'), { quantization: 'none', backend: 'cpu', maxModelLen: 1024, maxNumSeqs: 2 });
  const target = c.bf16.greedy_token_ids[2]!;
  const engine = new Engine(loaded.runner, () => '', { eosTokenIds: [123456, target] }, { maxNumSeqs: 2, maxNumBatchedTokens: 512, maxModelLen: 1024, maxWaiting: 4 });
  const params: SamplingParams = { temperature: 0, topP: 1, topK: 0, maxTokens: c.max_new_tokens, stop: [], stopTokenIds: [], ignoreEos: false };
  const run = async (p: SamplingParams) => {
    const out: number[] = [];
    let reason: string | undefined;
    for await (const o of engine.generate({ promptTokenIds: c.prompt_token_ids, params: p })) {
      out.push(...o.tokens.map((t) => t.tokenId));
      reason = o.finishReason ?? reason;
    }
    return { out, reason };
  };
  const upTo = c.bf16.greedy_token_ids.indexOf(target) + 1;
  expect(await run(params)).toEqual({ out: c.bf16.greedy_token_ids.slice(0, upTo), reason: 'stop' });
  expect(await run({ ...params, ignoreEos: true })).toEqual({ out: c.bf16.greedy_token_ids, reason: 'length' });
  await engine.close();
  loaded.runner.dispose();
}, 60000);

test('completions logprobs: N alternatives plus the sampled token, offsets into the text', async () => {
  const r = await complete({ max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: 3 });
  const lp = r.body.choices[0].logprobs;
  expect(lp.tokens).toHaveLength(6);
  expect(lp.token_logprobs).toHaveLength(6);
  expect(lp.text_offset).toHaveLength(6);
  lp.top_logprobs.forEach((top: Record<string, number>, i: number) => {
    const n = Object.keys(top).length;
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(4);
    expect(Math.max(...Object.values(top))).toBeCloseTo(lp.token_logprobs[i], 6); // greedy: the sampled token is the best
    for (const v of Object.values(top)) expect(v).toBeLessThanOrEqual(0);
  });
  for (let i = 1; i < 6; i++) expect(lp.text_offset[i]).toBeGreaterThanOrEqual(lp.text_offset[i - 1]);
  const none = await complete({ max_tokens: 2, temperature: 0 });
  expect(none.body.choices[0].logprobs).toBeNull();
});

test('chat logprobs: content entries with top_logprobs, bytes and token_id naming', async () => {
  const r = await postJson(runtime, '/v1/chat/completions', {
    messages: reference.chat.messages,
    max_tokens: 4,
    temperature: 0,
    ignore_eos: true,
    logprobs: true,
    top_logprobs: 2,
    return_tokens_as_token_ids: true,
  });
  expect(r.status).toBe(200);
  const content = r.body.choices[0].logprobs.content;
  expect(content).toHaveLength(4);
  for (const entry of content) {
    expect(entry.token).toMatch(/^token_id:\d+$/);
    expect(entry.top_logprobs).toHaveLength(2);
    expect(entry.top_logprobs[0].token).toBe(entry.token);
    expect(entry.top_logprobs[0].logprob).toBeCloseTo(entry.logprob, 6);
    expect(entry.bytes).toEqual([...Buffer.from(entry.token)]);
  }
});

test('echo prepends the prompt text', async () => {
  const plain = await complete({ max_tokens: 3, temperature: 0, ignore_eos: true });
  const echoed = await complete({ max_tokens: 3, temperature: 0, ignore_eos: true, echo: true });
  expect(echoed.body.choices[0].text).toBe(c.prompt + plain.body.choices[0].text);
});

test('a prompt of token ids equals the same prompt as text', async () => {
  const asText = await complete({ max_tokens: 4, temperature: 0, ignore_eos: true });
  const asIds = await postJson(runtime, '/v1/completions', { prompt: [c.prompt_token_ids], max_tokens: 4, temperature: 0, ignore_eos: true });
  expect(asIds.body.choices[0].text).toBe(asText.body.choices[0].text);
  expect(asIds.body.usage).toEqual(asText.body.usage);
});
