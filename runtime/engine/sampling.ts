// Token selection and log-probabilities for one row of logits. Log-probabilities are those of the
// raw model logits (log_softmax before temperature, top-k or top-p, as vLLM reports by default);
// sampling applies temperature, then top-k, then top-p (nucleus over what top-k kept).
import type { SamplingParams } from './sequence.js';
import type { Xoshiro128 } from './prng.js';

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
}

export interface SampleResult {
  tokenId: number;
  /** log_softmax(raw logits) at the chosen token; computed only when logprobs were asked for. */
  logprob?: number;
  /** The N most likely tokens under the raw logits, most likely first. */
  topLogprobs?: TokenLogprob[];
}

/** log(sum(exp(logits))), accumulated in double precision. */
export function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum);
}

/** Index of the largest logit; the lowest index wins ties (like torch.argmax). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** The `n` largest entries, largest first (ties: lower index first). O(V·n), n is small. */
export function topN(values: Float32Array, n: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (ids.length < n) ids.push(i);
    else if (v > values[ids[n - 1]!]!) ids[n - 1] = i;
    else continue;
    // Bubble the newcomer up; strict comparison keeps the lower index first on ties.
    for (let pos = ids.length - 1; pos > 0 && values[ids[pos - 1]!]! < v; pos--) {
      ids[pos] = ids[pos - 1]!;
      ids[pos - 1] = i;
    }
  }
  return ids;
}

export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Xoshiro128): SampleResult {
  const tokenId = params.temperature === 0 || params.topK === 1 ? argmax(logits) : sampleFiltered(logits, params, rng);
  if (params.logprobs === undefined) return { tokenId };
  const lse = logSumExp(logits);
  const topLogprobs = topN(logits, params.logprobs).map((id) => ({ tokenId: id, logprob: logits[id]! - lse }));
  return { tokenId, logprob: logits[tokenId]! - lse, topLogprobs };
}

/** Draws from softmax(logits / T) restricted by top-k then top-p. */
function sampleFiltered(logits: Float32Array, params: SamplingParams, rng: Xoshiro128): number {
  const vocab = logits.length;
  const invT = 1 / params.temperature;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (logits[i]! > max) max = logits[i]!;

  const filtering = (params.topK > 0 && params.topK < vocab) || params.topP < 1;
  if (!filtering) {
    // Plain softmax sampling: one pass for the normaliser, one to find where u lands.
    const weights = new Float64Array(vocab);
    let total = 0;
    for (let i = 0; i < vocab; i++) total += weights[i] = Math.exp((logits[i]! - max) * invT);
    return drawIndex(weights, total, rng);
  }

  // Candidates sorted by logit, descending (ties by id for determinism).
  const k = params.topK > 0 ? Math.min(params.topK, vocab) : vocab;
  const order = k <= 64 ? topN(logits, k) : sortedDescending(logits).slice(0, k);
  const weights = new Float64Array(order.length);
  let total = 0;
  for (let j = 0; j < order.length; j++) total += weights[j] = Math.exp((logits[order[j]!]! - max) * invT);
  let kept = order.length;
  if (params.topP < 1) {
    // Smallest prefix whose mass reaches top_p (at least one token).
    let mass = 0;
    const threshold = params.topP * total;
    for (kept = 0; kept < order.length; ) {
      mass += weights[kept]!;
      kept++;
      if (mass >= threshold) break;
    }
    total = mass;
  }
  return order[drawIndex(weights.subarray(0, kept), total, rng)]!;
}

function sortedDescending(values: Float32Array): number[] {
  const ids = Array.from({ length: values.length }, (_, i) => i);
  ids.sort((a, b) => values[b]! - values[a]! || a - b);
  return ids;
}

function drawIndex(weights: Float64Array, total: number, rng: Xoshiro128): number {
  const target = rng.nextFloat() * total;
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    acc += weights[i]!;
    if (target < acc) return i;
  }
  // Rounding can leave target a hair above the last partial sum.
  for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
  return 0;
}
