// Runtime benchmark on the CPU backend (a measurement, not a test):
//   node dist/tools/bench/runtime-bench.js [--model DIR] [--runs N] [--prompt-len N] [--decode-len N]
// Prints load time and weight memory (bf16 vs ExpertsInt8), prefill tokens/s, decode tokens/s at
// batch 1 and 8, and time to first token through the HTTP server under a simple load. Each figure
// is the median over --runs runs.
import { parseArgs } from 'node:util';
import { Engine } from '../../runtime/engine/engine.js';
import type { LoadedModel, Quantization } from '../../runtime/engine/model-runner.js';
import type { SamplingParams } from '../../runtime/engine/sequence.js';
import { loadModel } from '../../runtime/models/index.js';
import { silentLogger } from '../../runtime/server/log.js';
import { RUNTIME_DEFAULTS, startRuntime } from '../../runtime/server/runtime.js';
import { Xoshiro128 } from '../../runtime/sampling/prng.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'test/fixtures/jamba-tiny' },
    runs: { type: 'string', default: '3' },
    'prompt-len': { type: 'string', default: '512' },
    'decode-len': { type: 'string', default: '64' },
    quantization: { type: 'string', default: 'none' },
  },
});
const MODEL = values.model!;
const RUNS = Number(values.runs);
const PROMPT_LEN = Number(values['prompt-len']);
const DECODE_LEN = Number(values['decode-len']);
const QUANT = values.quantization as Quantization;
const MAX_MODEL_LEN = Math.max(1024, PROMPT_LEN + DECODE_LEN + 16);
const LOAD_CONCURRENCY = 4;
const LOAD_REQUESTS = 16;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const seconds = (): number => performance.now() / 1000;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

function randomPrompt(vocab: number, length: number, seed: number): number[] {
  const rng = new Xoshiro128(seed);
  // Skip the first ids (special tokens in the fixtures' tokenizers).
  return Array.from({ length }, () => 3 + (rng.nextUint32() % (vocab - 3)));
}

const greedy = (maxTokens: number): SamplingParams => ({ temperature: 0, topP: 1, topK: 0, maxTokens, stop: [], stopTokenIds: [], ignoreEos: true });

async function timeLoad(quantization: Quantization): Promise<{ seconds: number; model: LoadedModel }> {
  const t0 = seconds();
  const model = await loadModel(MODEL, { quantization, backend: 'cpu', maxModelLen: MAX_MODEL_LEN, maxNumSeqs: 8 });
  return { seconds: seconds() - t0, model };
}

interface RequestTiming {
  firstTokenAt: number;
  endAt: number;
  tokens: number;
}

async function runRequest(engine: Engine, prompt: number[], maxTokens: number): Promise<RequestTiming> {
  let firstTokenAt = 0;
  let tokens = 0;
  for await (const out of engine.generate({ promptTokenIds: prompt, params: greedy(maxTokens) })) {
    if (out.tokens.length > 0 && tokens === 0) firstTokenAt = seconds();
    tokens += out.tokens.length;
  }
  return { firstTokenAt, endAt: seconds(), tokens };
}

async function prefillTokensPerSecond(engine: Engine, vocab: number, seed: number): Promise<number> {
  const prompt = randomPrompt(vocab, PROMPT_LEN, seed);
  const t0 = seconds();
  const r = await runRequest(engine, prompt, 1);
  return PROMPT_LEN / (r.firstTokenAt - t0);
}

/**
 * Decode throughput of `batch` sequences generating together: their 16-token prompts fit one step,
 * so all get their first token in the same step and decode side by side from then on.
 */
async function decodeTokensPerSecond(engine: Engine, vocab: number, batch: number, seed: number): Promise<number> {
  const prompts = Array.from({ length: batch }, (_, i) => randomPrompt(vocab, 16, seed + i));
  const timings = await Promise.all(prompts.map((p) => runRequest(engine, p, DECODE_LEN)));
  const decoded = timings.reduce((sum, t) => sum + t.tokens - 1, 0);
  return decoded / (Math.max(...timings.map((t) => t.endAt)) - Math.max(...timings.map((t) => t.firstTokenAt)));
}

/** TTFT seen by streaming clients: LOAD_REQUESTS requests, LOAD_CONCURRENCY at a time, over HTTP. */
async function ttftUnderLoad(vocab: number, seed: number): Promise<{ p50: number; p90: number; requestsPerSecond: number }> {
  const runtime = await startRuntime({ ...RUNTIME_DEFAULTS, modelDir: MODEL, port: 0, quantization: QUANT, maxModelLen: MAX_MODEL_LEN, maxNumSeqs: 8, log: silentLogger, loadModel });
  await runtime.ready;
  const ttfts: number[] = [];
  let next = 0;
  const t0 = seconds();
  const worker = async (): Promise<void> => {
    while (next < LOAD_REQUESTS) {
      const i = next++;
      const start = seconds();
      const res = await fetch(`${runtime.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // logprobs makes every token a chunk, so the first chunk marks the first token.
        body: JSON.stringify({ prompt: randomPrompt(vocab, 128, seed + 1000 + i), max_tokens: 32, temperature: 0, ignore_eos: true, stream: true, logprobs: 0 }),
      });
      const reader = res.body!.getReader();
      await reader.read();
      ttfts.push(seconds() - start);
      while (!(await reader.read()).done);
    }
  };
  await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, worker));
  const elapsed = seconds() - t0;
  await runtime.close();
  return { p50: median(ttfts), p90: quantile(ttfts, 0.9), requestsPerSecond: LOAD_REQUESTS / elapsed };
}

async function main(): Promise<void> {
  console.log(`runtime benchmark: model ${MODEL}, CPU backend, ${RUNS} runs (medians), prompt ${PROMPT_LEN} tokens, decode ${DECODE_LEN} tokens`);
  const loads: Record<Quantization, number[]> = { none: [], expertsint8: [] };
  const memory: Partial<Record<Quantization, LoadedModel>> = {};
  for (let run = 0; run < RUNS; run++) {
    for (const q of ['none', 'expertsint8'] as const) {
      const { seconds: s, model } = await timeLoad(q);
      loads[q].push(s);
      memory[q] = model;
      if (run < RUNS - 1) model.runner.dispose();
    }
  }
  for (const q of ['none', 'expertsint8'] as const) {
    const m = memory[q]!;
    const resident = m.residentWeightBytes;
    console.log(
      `load ${q.padEnd(11)}: ${median(loads[q]).toFixed(3)} s; weights ${mib(m.weightBytes)} (bf16 ${mib(m.weightBytesBf16)}, ${((100 * m.weightBytes) / m.weightBytesBf16).toFixed(1)}%)` +
        (resident !== undefined ? `; resident on the CPU backend ${mib(resident)}` : ''),
    );
  }
  memory.none!.runner.dispose();
  const model = memory[QUANT === 'none' ? 'none' : 'expertsint8']!;
  if (QUANT === 'none') memory.expertsint8!.runner.dispose();
  const vocab = model.info.vocabSize;
  const engine = new Engine(model.runner, () => '', model.info, { maxNumSeqs: 8, maxNumBatchedTokens: RUNTIME_DEFAULTS.maxNumBatchedTokens, maxModelLen: MAX_MODEL_LEN, maxWaiting: 64 });

  await runRequest(engine, randomPrompt(vocab, 32, 1), 4); // warm-up
  const prefill: number[] = [];
  const decode1: number[] = [];
  const decode8: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    prefill.push(await prefillTokensPerSecond(engine, vocab, 10 + run));
    decode1.push(await decodeTokensPerSecond(engine, vocab, 1, 100 + run));
    decode8.push(await decodeTokensPerSecond(engine, vocab, 8, 200 + run * 8));
  }
  console.log(`prefill (${QUANT}, ${PROMPT_LEN}-token prompt, step budget ${RUNTIME_DEFAULTS.maxNumBatchedTokens}): ${median(prefill).toFixed(1)} tokens/s`);
  console.log(`decode batch 1 (${QUANT}): ${median(decode1).toFixed(1)} tokens/s`);
  console.log(`decode batch 8 (${QUANT}): ${median(decode8).toFixed(1)} tokens/s (all sequences together)`);
  await engine.close();
  model.runner.dispose();

  const loadRuns = [];
  for (let run = 0; run < RUNS; run++) loadRuns.push(await ttftUnderLoad(vocab, 300 + run * 100));
  console.log(
    `TTFT under load (HTTP, ${LOAD_REQUESTS} streaming requests, ${LOAD_CONCURRENCY} concurrent, 128-token prompts, 32 tokens each): ` +
      `p50 ${(1000 * median(loadRuns.map((r) => r.p50))).toFixed(1)} ms, p90 ${(1000 * median(loadRuns.map((r) => r.p90))).toFixed(1)} ms, ` +
      `${median(loadRuns.map((r) => r.requestsPerSecond)).toFixed(2)} requests/s`,
  );
}

main().catch((error: Error) => {
  console.error(`runtime-bench: ${error.stack ?? error.message}`);
  process.exit(1);
});
