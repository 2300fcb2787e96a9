// Tensor parallelism on the CPU (`--backend cpu --tensor-parallel-size N`): ranks as worker threads
// sharing memory, with real all-reduces. The sharded model must equal the whole one: the same greedy
// tokens, and log-probabilities equal up to the order of fp32 sums, on the Hugging Face fixtures (TP 2
// and 4 where their head counts allow) and on a random checkpoint sized for TP 8. Needs dist/ (the
// rank worker runs compiled; `make test` builds it first).
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../runtime/models/index.js';
import { randomModel } from '../../runtime/models/load.js';
import { PRESETS } from '../../runtime/models/presets.js';
import type { LoadedModel } from '../../runtime/models/index.js';
import { greedy, type GreedyResult } from '../../runtime/models/testing/greedy.js';
import { TINY_CONFIG, writeTinyCheckpoint } from '../../runtime/models/testing/tiny-checkpoint.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const TOL = 1e-4;

interface Case {
  prompt_token_ids: number[];
  max_new_tokens: number;
  bf16: { greedy_token_ids: number[] };
}

async function run(dir: string | Record<string, unknown>, tp: number, prompts: number[][], newTokens: number[]): Promise<GreedyResult[]> {
  const opts = { quantization: 'none', backend: 'cpu', tensorParallelSize: tp, maxModelLen: 512, maxNumSeqs: 2 } as const;
  // A checkpoint directory, or a preset's fields made into random weights.
  const model: LoadedModel = typeof dir === 'string' ? await loadModel(dir, opts) : await randomModel(dir, opts);
  try {
    const out: GreedyResult[] = [];
    const blockTable = Int32Array.from({ length: 32 }, (_, i) => 31 - i);
    for (let i = 0; i < prompts.length; i++) out.push(await greedy(model.runner, prompts[i]!, newTokens[i]!, { stateSlot: 1, blockTable, chunk: 37 }));
    return out;
  } finally {
    model.runner.dispose();
  }
}

function expectSame(sharded: GreedyResult[], whole: GreedyResult[]): void {
  sharded.forEach((s, i) => {
    expect(s.tokens).toEqual(whole[i]!.tokens);
    let worst = 0;
    s.top.forEach((top, step) => top.forEach(([, lp], j) => (worst = Math.max(worst, Math.abs(lp - whole[i]!.top[step]![j]![1])))));
    expect(worst).toBeLessThan(TOL);
  });
}

describe.each([
  ['jamba-tiny', [2, 4]],
  ['jamba-tiny-unusual', [2]],
])('%s', (fixture, sizes) => {
  const dir = join(FIXTURES, fixture);
  const cases = (): Case[] => (JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { cases: Case[] }).cases.slice(0, 3);
  let whole: GreedyResult[];
  beforeAll(async () => {
    expect(existsSync(dir)).toBe(true);
    whole = await run(dir, 1, cases().map((c) => c.prompt_token_ids), cases().map((c) => c.max_new_tokens));
    // The whole model reproduces the Hugging Face reference (model-parity.test.ts checks the logprobs).
    whole.forEach((w, i) => expect(w.tokens).toEqual(cases()[i]!.bf16.greedy_token_ids));
  }, 120_000);

  test.each(sizes)('TP %i equals TP 1', async (tp) => {
    expectSame(await run(dir, tp, cases().map((c) => c.prompt_token_ids), cases().map((c) => c.max_new_tokens)), whole);
  }, 120_000);
});

test('TP 8 on a checkpoint sized for it (KV heads copied across ranks) equals TP 1', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jamba-tp8-'));
  await writeTinyCheckpoint(dir, { seed: 12, config: { ...TINY_CONFIG, num_attention_heads: 8, num_key_value_heads: 2, hidden_size: 64, intermediate_size: 64, vocab_size: 96 } });
  const prompts = [Array.from({ length: 60 }, (_, i) => (i * 7 + 3) % 96), [5, 9, 11]];
  const whole = await run(dir, 1, prompts, [6, 6]);
  expectSame(await run(dir, 8, prompts, [6, 6]), whole);
}, 180_000);

test('random weights: every rank makes its slice of the same model, so TP 2 and 4 equal TP 1 (bench --tensor-parallel-size)', async () => {
  // Larger weights than the bench's 0.02 are not needed: the outputs differ between ranks' slices at
  // once if a rank draws values of its own (as it did before the windows).
  const prompts = [Array.from({ length: 30 }, (_, i) => (i * 11 + 5) % 512)];
  const whole = await run(PRESETS['jamba-tiny']!, 1, prompts, [5]);
  for (const tp of [2, 4]) expectSame(await run(PRESETS['jamba-tiny']!, tp, prompts, [5]), whole);
}, 120_000);

test('a size that does not divide the heads is refused with the sizes that work', async () => {
  await expect(loadModel(join(FIXTURES, 'jamba-tiny-unusual'), { quantization: 'none', backend: 'cpu', tensorParallelSize: 4, maxModelLen: 64, maxNumSeqs: 1 })).rejects.toThrow(
    'tensor parallel size 4 does not divide the model\'s attention heads (6); sizes that work: 1, 2',
  );
});
