// The reference token sampler: what `Backend.sample` must compute for one row of logits (see
// SamplingRow in ../backends/backend.ts). The CPU backend runs it directly; the CUDA kernel
// (runtime/native/sampling.cu) follows the same steps on the device.
//
// Log-probabilities are those of the raw logits (log_softmax before temperature and filters, as vLLM
// reports by default). Sampling: p ∝ exp(logits / T); filters in vLLM's order: min-p, top-k, top-p,
// each defined by a threshold, so tokens tied with the last kept one are kept too; then an
// inverse-CDF draw in token-id order with the counter-based uniform of (seed, counter).
import type { SamplingRow } from '../backends/backend.js';
import { counterUniform } from './prng.js';

export interface RowSample {
  tokenId: number;
  /** log_softmax(raw logits) at the chosen token; NaN when the row asked for no logprobs. */
  logprob: number;
  /** The `row.logprobs` most likely tokens, most likely first. */
  topIds: number[];
  topLogprobs: number[];
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

/** Index of the largest value; the lowest index wins ties (like torch.argmax). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** The `n` largest entries, largest first (ties: lower index first). O(V·n), n is small. */
export function topN(values: ArrayLike<number>, n: number): number[] {
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

/**
 * The k-th largest of `values[i]` over the indices `candidates[0..count)` (with multiplicity), by
 * quickselect on a copy: O(n) expected, no full sort.
 */
export function kthLargest(values: ArrayLike<number>, candidates: Int32Array, k: number, count = candidates.length): number {
  const a = new Float64Array(count);
  for (let i = 0; i < count; i++) a[i] = values[candidates[i]!]!;
  let lo = 0;
  let hi = count - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

/** Keeps, in place, the candidates whose value is at least `floor`; returns the new count. */
function keepAtLeast(values: ArrayLike<number>, kept: Int32Array, count: number, floor: number): number {
  let n = 0;
  for (let j = 0; j < count; j++) if (values[kept[j]!]! >= floor) kept[n++] = kept[j]!;
  return n;
}

/**
 * The top-p threshold: the largest logit τ among the kept tokens such that the kept weights with
 * logit ≥ τ hold at least `p` of the kept mass. Partial selection: only the best `m` candidates are
 * sorted, m growing until they hold the mass, so a peaked distribution costs O(V), not a full sort.
 */
function topPThreshold(logits: Float32Array, weights: Float64Array, kept: Int32Array, count: number, p: number): number {
  let total = 0;
  for (let j = 0; j < count; j++) total += weights[kept[j]!]!;
  const need = p * total;
  for (let m = Math.min(64, count); ; m = Math.min(m * 8, count)) {
    const floor = m < count ? kthLargest(logits, kept, m, count) : -Infinity;
    const best: number[] = [];
    for (let j = 0; j < count; j++) if (logits[kept[j]!]! >= floor) best.push(kept[j]!);
    best.sort((a, b) => logits[b]! - logits[a]! || a - b);
    let mass = 0;
    for (const id of best) {
      mass += weights[id]!;
      // Ties with the boundary value all stay, so the threshold is the boundary's logit.
      if (mass >= need) return logits[id]!;
    }
    if (m === count) return logits[best[best.length - 1]!]!;
  }
}

/**
 * The token ids kept by min-p, top-k and top-p, ascending, in kept[0..count). The filters compare
 * raw logits: with T > 0, logits / T orders tokens the same way. `weights` are exp((l − max l) / T).
 */
function keptTokens(logits: Float32Array, weights: Float64Array, row: SamplingRow): { kept: Int32Array; count: number } {
  const vocab = logits.length;
  const kept = new Int32Array(vocab);
  let count = 0;
  for (let i = 0; i < vocab; i++) if (!(weights[i]! < row.minP)) kept[count++] = i;
  if (row.topK > 0 && row.topK < count) count = keepAtLeast(logits, kept, count, kthLargest(logits, kept, row.topK, count));
  if (row.topP < 1) count = keepAtLeast(logits, kept, count, topPThreshold(logits, weights, kept, count, row.topP));
  return { kept, count };
}

function draw(kept: Int32Array, count: number, weights: Float64Array, u: number): number {
  let total = 0;
  for (let j = 0; j < count; j++) total += weights[kept[j]!]!;
  const target = u * total;
  let acc = 0;
  for (let j = 0; j < count; j++) {
    acc += weights[kept[j]!]!;
    if (target < acc) return kept[j]!;
  }
  return kept[count - 1]!; // rounding left target a hair above the last partial sum
}

export function sampleRow(logits: Float32Array, row: SamplingRow): RowSample {
  let tokenId: number;
  if (row.temperature === 0 || row.topK === 1) {
    tokenId = argmax(logits);
  } else {
    const invT = 1 / row.temperature;
    const max = logits[argmax(logits)]!;
    const weights = new Float64Array(logits.length);
    for (let i = 0; i < logits.length; i++) weights[i] = Math.exp((logits[i]! - max) * invT);
    const { kept, count } = keptTokens(logits, weights, row);
    tokenId = draw(kept, count, weights, counterUniform(row.seed, row.counter));
  }
  if (row.logprobs < 0) return { tokenId, logprob: NaN, topIds: [], topLogprobs: [] };
  const lse = logSumExp(logits);
  const topIds = topN(logits, row.logprobs);
  return { tokenId, logprob: logits[tokenId]! - lse, topIds, topLogprobs: topIds.map((id) => logits[id]! - lse) };
}
