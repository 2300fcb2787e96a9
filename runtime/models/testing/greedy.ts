// A minimal greedy driver over a ModelRunner, for tests: prefill (at once or in chunks), then decode
// token by token, recording each chosen token's log-probability and the top-N of every step.
import type { ModelRunner, SampleResult, SamplingRow } from '../../engine/model-runner.js';

export interface GreedyResult {
  tokens: number[];
  /** log_softmax of the logits at each chosen token. */
  tokenLogprobs: number[];
  /** Each step's `topN` (id, logprob) pairs, best first. */
  top: [number, number][][];
}

export interface GreedyOptions {
  stateSlot: number;
  blockTable: Int32Array;
  /** Prefill chunk size (default: the whole prompt in one step). */
  chunk?: number;
  /** Top log-probabilities per step (default 5). */
  topN?: number;
}

/** Greedy sampling with `topN` logprobs: what the parity tests compare against the reference. */
export function greedyRow(topN: number, counter = 0): SamplingRow {
  return { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, counter, logprobs: topN };
}

/** Row `row` of a step's samples as (id, logprob) pairs. */
export function topOf(result: SampleResult, row: number): [number, number][] {
  const out: [number, number][] = [];
  for (let j = 0; j < result.topN; j++) {
    const id = result.topIds[row * result.topN + j]!;
    if (id >= 0) out.push([id, result.topLogprobs[row * result.topN + j]!]);
  }
  return out;
}

export async function greedy(runner: ModelRunner, prompt: number[], newTokens: number, opts: GreedyOptions): Promise<GreedyResult> {
  runner.resetStateSlot(opts.stateSlot);
  const chunk = opts.chunk ?? prompt.length;
  const row = greedyRow(opts.topN ?? 5);
  let cachedLen = 0;
  let sampled: SampleResult | undefined;
  while (cachedLen < prompt.length) {
    const tokens = Int32Array.from(prompt.slice(cachedLen, cachedLen + chunk));
    const last = cachedLen + tokens.length === prompt.length;
    sampled = await runner.step([{ stateSlot: opts.stateSlot, blockTable: opts.blockTable, cachedLen, tokens, sample: last ? row : undefined }]);
    cachedLen += tokens.length;
  }
  const result: GreedyResult = { tokens: [], tokenLogprobs: [], top: [] };
  for (let i = 0; i < newTokens; i++) {
    const token = sampled!.tokenIds[0]!;
    result.tokens.push(token);
    result.tokenLogprobs.push(sampled!.logprobs[0]!);
    result.top.push(topOf(sampled!, 0));
    if (i + 1 === newTokens) break;
    sampled = await runner.step([{ stateSlot: opts.stateSlot, blockTable: opts.blockTable, cachedLen, tokens: Int32Array.of(token), sample: greedyRow(opts.topN ?? 5, i + 1) }]);
    cachedLen += 1;
  }
  return result;
}
