// The fixtures through the CPU backend with the CUDA backend's bf16 rounding points
// (runtime/backends/cpu/bf16-rounding.ts), against the fp32 references: how far rounding alone takes this
// model definition on these models. No GPU needed; tools/gpu/check.ts uses it to scale its tolerance.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bf16RoundingCpuBackend } from '../../runtime/backends/cpu/bf16-rounding.js';
import { loadModelOn } from '../../runtime/models/load.js';
import { greedy } from '../../runtime/models/testing/greedy.js';

export interface RefRun {
  greedy_token_ids: number[];
  token_logprobs: number[];
  top_logprobs: [number, number][][];
}
export interface RefCase {
  name: string;
  prompt_token_ids: number[];
  max_new_tokens: number;
  bf16: RefRun;
  expertsint8: RefRun;
}

export const FIXTURES = ['jamba-tiny', 'jamba-tiny-unusual'] as const;
export const VARIANTS = [['none', 'bf16'], ['expertsint8', 'expertsint8']] as const;

export function referenceCases(root: string, fixture: string): RefCase[] {
  return (JSON.parse(readFileSync(join(root, fixture, 'reference.json'), 'utf8')) as { cases: RefCase[] }).cases;
}

export interface CaseDeviation {
  fixture: string;
  quantization: 'none' | 'expertsint8';
  case: string;
  /** |Δlogprob| of the chosen token, and the largest over the reference's top-5, per step, up to where the tokens part. */
  chosen: number[];
  top5: number[];
  worst: number;
  /** The step where the greedy tokens part, or -1. */
  parted: number;
}

export async function cpuBf16Deviations(root: string): Promise<CaseDeviation[]> {
  const out: CaseDeviation[] = [];
  for (const fixture of FIXTURES) {
    const cases = referenceCases(root, fixture);
    for (const [quantization, key] of VARIANTS) {
      const model = await loadModelOn(new Bf16RoundingCpuBackend(), join(root, fixture), { quantization, backend: 'cpu', maxModelLen: 1024, maxNumSeqs: 2 });
      try {
        for (const c of cases) {
          const ref = c[key];
          const blockTable = Int32Array.from({ length: 64 }, (_, i) => i);
          const got = await greedy(model.runner, c.prompt_token_ids, c.max_new_tokens, { stateSlot: 0, blockTable });
          const chosen: number[] = [];
          const top5: number[] = [];
          let parted = -1;
          for (let step = 0; step < ref.greedy_token_ids.length && parted < 0; step++) {
            const mine = new Map(got.top[step]);
            chosen.push(Math.abs(got.tokenLogprobs[step]! - ref.token_logprobs[step]!));
            top5.push(Math.max(0, ...ref.top_logprobs[step]!.filter(([id]) => mine.has(id)).map(([id, lp]) => Math.abs(mine.get(id)! - lp))));
            if (got.tokens[step] !== ref.greedy_token_ids[step]) parted = step;
          }
          out.push({ fixture, quantization, case: c.name, chosen, top5, worst: Math.max(...chosen, ...top5), parted });
        }
      } finally {
        model.runner.dispose();
      }
    }
  }
  return out;
}
