// Continuous batching changes nothing in the results: requests run alone, all at once (with
// duplicates, joining a batch already decoding), or prefilled in small chunks under a tight step
// budget and small KV blocks, give the same tokens as the reference and log-probabilities that agree.
import type { Runtime } from '../../runtime/server/runtime.js';
import { FIXTURE_NAMES, loadReference, metricValue, postJson, startTestRuntime, tokenIdsOf } from './helpers.js';
import { expectMatchesReference, referenceRequest } from './reference-check.js';

/** Same-process runs of the same arithmetic should agree far inside the reference tolerance. */
const SAME_RUN_TOLERANCE = 1e-4;

describe.each(FIXTURE_NAMES.map((f) => [f]))('%s', (fixture) => {
  const reference = loadReference(fixture);
  let runtime: Runtime;
  let chunked: Runtime;
  const alone = new Map<string, { ids: number[]; logprobs: number[] }>();

  beforeAll(async () => {
    runtime = await startTestRuntime({ fixture });
    // 7-token steps and 4-token KV blocks: chunk edges fall everywhere relative to block edges;
    // 3 sequences at most, so the rest wait and join as others finish.
    chunked = await startTestRuntime({ fixture, maxNumBatchedTokens: 7, kvBlockSize: 4, maxNumSeqs: 3 });
    for (const c of reference.cases) {
      const { body } = await postJson(runtime, '/v1/completions', referenceRequest(c));
      alone.set(c.name, { ids: tokenIdsOf(body.choices[0].logprobs.tokens), logprobs: body.choices[0].logprobs.token_logprobs });
    }
  }, 300000);
  afterAll(async () => {
    await runtime?.close();
    await chunked?.close();
  });

  const expectSameAsAlone = (label: string, name: string, body: any) => {
    const mine = alone.get(name)!;
    expect({ label, ids: tokenIdsOf(body.choices[0].logprobs.tokens) }).toEqual({ label, ids: mine.ids });
    const worst = Math.max(...mine.logprobs.map((lp, i) => Math.abs(lp - body.choices[0].logprobs.token_logprobs[i])));
    expect({ label, worst: worst <= SAME_RUN_TOLERANCE }).toEqual({ label, worst: true });
  };

  test('all cases at once, twice each, staggered into a running batch, equal the runs alone', async () => {
    const requests = [...reference.cases, ...reference.cases].map(async (c, i) => {
      await new Promise((r) => setTimeout(r, i * 15));
      const { status, body } = await postJson(runtime, '/v1/completions', referenceRequest(c));
      expect(status).toBe(200);
      return { c, body };
    });
    for (const { c, body } of await Promise.all(requests)) {
      expectSameAsAlone(`${fixture}/${c.name} batched`, c.name, body);
      expectMatchesReference(`${fixture}/${c.name} batched`, body.choices[0], body.usage, c, c.bf16);
    }
    expect(await metricValue(runtime, 'jamba_requests_running')).toBe(0);
    expect(await metricValue(runtime, 'jamba_kv_cache_usage_ratio')).toBe(0);
  }, 300000);

  test('prefill in 7-token chunks over 4-token KV blocks equals prefill at once', async () => {
    const results = await Promise.all(
      reference.cases.map(async (c) => ({ c, reply: await postJson(chunked, '/v1/completions', referenceRequest(c)) })),
    );
    for (const { c, reply } of results) {
      expect(reply.status).toBe(200);
      expectSameAsAlone(`${fixture}/${c.name} chunked`, c.name, reply.body);
      expectMatchesReference(`${fixture}/${c.name} chunked`, reply.body.choices[0], reply.body.usage, c, c.bf16);
    }
  }, 300000);

  test('a KV pool too small for everything at once preempts and recomputes, with the same results', async () => {
    const blockSize = 4;
    const longest = Math.max(...reference.cases.map((c) => c.prompt_token_ids.length + c.max_new_tokens));
    const tight = await startTestRuntime({ fixture, kvBlockSize: blockSize, kvNumBlocks: Math.ceil(longest / blockSize) + 2, maxNumSeqs: 4 });
    try {
      const results = await Promise.all(
        [...reference.cases, ...reference.cases].map(async (c) => ({ c, reply: await postJson(tight, '/v1/completions', referenceRequest(c)) })),
      );
      for (const { c, reply } of results) {
        expect(reply.status).toBe(200);
        expectSameAsAlone(`${fixture}/${c.name} preempted`, c.name, reply.body);
      }
      expect(tight.engine!.stats().preemptions).toBeGreaterThan(0);
      expect(tight.engine!.stats().kvBlocksUsed).toBe(0);
    } finally {
      await tight.close();
    }
  }, 300000);
});
