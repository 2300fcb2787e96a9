// A minimal greedy driver over a ModelRunner, for tests: prefill (at once or in chunks), then
// decode token by token, recording log_softmax of each step's logits.
import type { ModelRunner } from '../../engine/model-runner.js';

export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** The k best (id, logprob) pairs, best first. */
export function topK(logprobs: Float64Array, k: number): [number, number][] {
  return [...logprobs.keys()].sort((a, b) => logprobs[b]! - logprobs[a]! || a - b).slice(0, k).map((id) => [id, logprobs[id]!]);
}

export interface GreedyResult {
  tokens: number[];
  /** log_softmax of the logits that chose each token. */
  logprobs: Float64Array[];
}

export interface GreedyOptions {
  stateSlot: number;
  blockTable: Int32Array;
  /** Prefill chunk size (default: the whole prompt in one step). */
  chunk?: number;
}

export async function greedy(runner: ModelRunner, prompt: number[], newTokens: number, opts: GreedyOptions): Promise<GreedyResult> {
  runner.resetStateSlot(opts.stateSlot);
  const chunk = opts.chunk ?? prompt.length;
  let cachedLen = 0;
  let logits: Float32Array = new Float32Array(0);
  while (cachedLen < prompt.length) {
    const tokens = Int32Array.from(prompt.slice(cachedLen, cachedLen + chunk));
    const last = cachedLen + tokens.length === prompt.length;
    logits = await runner.step([{ stateSlot: opts.stateSlot, blockTable: opts.blockTable, cachedLen, tokens, wantLogits: last }]);
    cachedLen += tokens.length;
  }
  const result: GreedyResult = { tokens: [], logprobs: [] };
  for (let i = 0; i < newTokens; i++) {
    const lp = logSoftmax(logits);
    const token = argmax(lp);
    result.tokens.push(token);
    result.logprobs.push(lp);
    if (i + 1 === newTokens) break;
    logits = await runner.step([{ stateSlot: opts.stateSlot, blockTable: opts.blockTable, cachedLen, tokens: Int32Array.of(token), wantLogits: true }]);
    cachedLen += 1;
  }
  return result;
}
