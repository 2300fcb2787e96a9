// Whole-model parity at the ModelRunner level against the Hugging Face reference outputs committed
// in test/fixtures/*/reference.json: identical greedy tokens, and logprobs (chosen token and top-5)
// within 1e-3, for bf16 weights computed in fp32 and for ExpertsInt8.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../runtime/models/index.js';
import type { LoadedModel, Quantization } from '../../runtime/models/index.js';
import { greedy } from '../../runtime/models/testing/greedy.js';

const TOL = 1e-3;
const FIXTURES = join(import.meta.dirname, '..', 'fixtures');

interface Expected {
  greedy_token_ids: number[];
  token_logprobs: number[];
  top_logprobs: [number, number][][];
}

interface Case {
  name: string;
  prompt_token_ids: number[];
  max_new_tokens: number;
  bf16: Expected;
  expertsint8: Expected;
}

const VARIANTS: [Quantization, 'bf16' | 'expertsint8'][] = [
  ['none', 'bf16'],
  ['expertsint8', 'expertsint8'],
];

describe.each(['jamba-tiny', 'jamba-tiny-unusual'])('%s', (fixture) => {
  const dir = join(FIXTURES, fixture);
  const cases = (): Case[] => (JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { cases: Case[] }).cases;

  test('the fixture is present', () => {
    expect(existsSync(join(dir, 'reference.json'))).toBe(true);
    expect(cases().length).toBeGreaterThan(0);
    expect(Math.max(...cases().map((c) => c.prompt_token_ids.length))).toBeGreaterThan(256);
  });

  describe.each(VARIANTS)('quantization %s vs reference %s', (quantization, key) => {
    let model: LoadedModel;
    beforeAll(async () => {
      model = await loadModel(dir, { quantization, backend: 'cpu', maxModelLen: 512, maxNumSeqs: 2 });
    });
    afterAll(() => model?.runner.dispose());

    // Every case with the prompt prefilled in one step; with quantization none, the shortest and
    // the longest prompts again in chunks of 7 and 64 tokens.
    const runs: [string, Case, number | undefined][] = cases().map((c) => [c.name, c, undefined]);
    if (quantization === 'none') {
      const byLength = [...cases()].sort((a, b) => a.prompt_token_ids.length - b.prompt_token_ids.length);
      const medium = byLength.find((c) => c.prompt_token_ids.length > 14)!;
      const longest = byLength.at(-1)!;
      runs.push([`${medium.name} in chunks of 7`, medium, 7], [`${longest.name} in chunks of 64`, longest, 64]);
    }

    test.each(runs)('%s', async (_name, c, chunk) => {
      const ref = c[key];
      const blockTable = Int32Array.from({ length: 32 }, (_, i) => 31 - i); // any order works
      const out = await greedy(model.runner, c.prompt_token_ids, c.max_new_tokens, { stateSlot: 1, blockTable, chunk });
      expect(out.tokens).toEqual(ref.greedy_token_ids);
      let worst = 0;
      out.top.forEach((top, step) => {
        worst = Math.max(worst, Math.abs(out.tokenLogprobs[step]! - ref.token_logprobs[step]!));
        const refTop = ref.top_logprobs[step]!;
        expect(top.map(([id]) => id)).toEqual(refTop.map(([id]) => id));
        top.forEach(([, v], j) => (worst = Math.max(worst, Math.abs(v - refTop[j]![1]))));
      });
      expect(worst).toBeLessThan(TOL);
    });
  });
});
