// `serve --preset NAME --random-weights`: a published shape with random weights and the synthetic
// tokenizer, served like a checkpoint (the serving benchmark runs the Mini preset this way on a GPU);
// here the tiny preset on the CPU, driven by the benchmark's own streaming load generator.
import { quantile, runLoad } from '../../runtime/bench/serve-load.js';
import { silentLogger } from '../../runtime/server/log.js';
import { RUNTIME_DEFAULTS, startRuntime } from '../../runtime/server/runtime.js';

test('a random-weight preset serves text and token-id prompts, and the load generator measures it', async () => {
  const runtime = await startRuntime({
    ...RUNTIME_DEFAULTS,
    modelDir: '',
    randomPreset: 'jamba-tiny',
    backend: 'cpu',
    port: 0,
    maxModelLen: 256,
    maxNumSeqs: 4,
    log: silentLogger,
  });
  try {
    await runtime.ready;
    const models = (await (await fetch(`${runtime.url}/v1/models`)).json()) as { data: { id: string; root: string }[] };
    expect(models.data[0]).toMatchObject({ id: 'jamba-tiny', root: 'preset:jamba-tiny' });
    const res = await fetch(`${runtime.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 't5 t9 t511', max_tokens: 3, ignore_eos: true, temperature: 0, logprobs: 1, return_tokens_as_token_ids: true }),
    });
    const body = (await res.json()) as { usage: { prompt_tokens: number }; choices: { text: string; logprobs: { tokens: string[] } }[] };
    expect(res.status).toBe(200);
    expect(body.usage.prompt_tokens).toBe(3); // one synthetic word per id
    expect(body.choices[0]!.logprobs.tokens).toHaveLength(3);
    // Every generated id decodes to its word.
    const ids = body.choices[0]!.logprobs.tokens.map((t) => Number(t.replace('token_id:', '')));
    expect(body.choices[0]!.text.trim().split(/\s+/)).toEqual(ids.map((id) => `t${id}`));

    const load = await runLoad({ url: runtime.url, model: 'jamba-tiny', concurrency: 3, requests: 6, promptTokens: 20, maxTokens: 5, vocabSize: 512 });
    expect(load).toMatchObject({ requests: 6, failed: 0, truncated: 0, outputTokens: 30, errors: [] });
    expect(load.ttftMs.p50).toBeGreaterThan(0);
    expect(load.itlMs.p99).toBeGreaterThanOrEqual(load.itlMs.p50);
    expect(load.outputTokensPerSecond).toBeCloseTo(30 / load.seconds, 6);
  } finally {
    await runtime.close();
  }
}, 60000);

test('quantile interpolates between ranks', () => {
  expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
  expect(quantile([1, 2, 3, 4, 5], 0.99)).toBeCloseTo(4.96, 10);
  expect(Number.isNaN(quantile([], 0.5))).toBe(true);
});
