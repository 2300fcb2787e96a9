import type { SamplingRow } from '../backends/backend.js';
import { counterUniform, mix32, seedToUint32, Xoshiro128 } from './prng.js';
import { argmax, kthLargest, logSumExp, sampleRow, topN } from './sampler.js';

const base: SamplingRow = { temperature: 1, topP: 1, topK: 0, minP: 0, seed: 1, counter: 0, logprobs: -1 };
const logits = Float32Array.from([1.0, 3.0, 2.5, -1.0, 3.0, 0.5]);

/** Draws `n` tokens from one stream (counter 0..n-1), as a request's successive tokens would. */
function draws(row: Partial<SamplingRow>, n: number, seed = 5, values = logits): number[] {
  return Array.from({ length: n }, (_, i) => sampleRow(values, { ...base, ...row, seed, counter: i }).tokenId);
}

test('counterUniform: a pure function of (seed, counter), in (0, 1), exact in fp32, roughly uniform', () => {
  expect(counterUniform(42, 7)).toBe(counterUniform(42, 7));
  expect(counterUniform(42, 7)).not.toBe(counterUniform(43, 7));
  expect(counterUniform(42, 7)).not.toBe(counterUniform(42, 8));
  let sum = 0;
  const buckets = new Array<number>(10).fill(0);
  let outside = 0;
  for (let i = 0; i < 50000; i++) {
    const u = counterUniform(9, i);
    if (!(u > 0 && u < 1) || Math.fround(u) !== u) outside++;
    sum += u;
    buckets[Math.floor(u * 10)]!++;
  }
  expect(outside).toBe(0);
  expect(sum / 50000).toBeCloseTo(0.5, 2);
  for (const b of buckets) expect(Math.abs(b - 5000)).toBeLessThan(300);
  // Known values pin the hash, so the CUDA kernel's copy of it can be checked against these.
  expect(mix32(0)).toBe(0);
  expect(mix32(1)).toBe(0x688990c0);
  expect(seedToUint32(-1)).toBe(seedToUint32(-1));
  expect(seedToUint32(2 ** 40 + 5)).not.toBe(seedToUint32(5));
});

test('xoshiro128** (test data) is deterministic per seed', () => {
  const draw = (seed: number) => {
    const r = new Xoshiro128(seed);
    return Array.from({ length: 5 }, () => r.nextUint32());
  };
  expect(draw(42)).toEqual(draw(42));
  expect(draw(42)).not.toEqual(draw(43));
});

test('argmax takes the first of equal maxima; topN orders by value then index; kthLargest counts ties', () => {
  expect(argmax(logits)).toBe(1);
  expect(topN(logits, 3)).toEqual([1, 4, 2]);
  expect(topN(logits, 0)).toEqual([]);
  expect(topN(Float32Array.from([5, 4, 3]), 5)).toEqual([0, 1, 2]);
  const all = Int32Array.from(logits.keys());
  expect([1, 2, 3, 4, 5, 6].map((k) => kthLargest(logits, all, k))).toEqual([3, 3, 2.5, 1, 0.5, -1]);
  const big = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
  const sorted = [...big].sort((a, b) => b - a);
  for (const k of [1, 17, 2500, 5000]) expect(kthLargest(big, Int32Array.from(big.keys()), k)).toBe(sorted[k - 1]);
});

test('logprobs are log_softmax of the raw logits, whatever the temperature; -1 asks for none', () => {
  const lse = Math.log(Array.from(logits).reduce((s, x) => s + Math.exp(x), 0));
  expect(logSumExp(logits)).toBeCloseTo(lse, 10);
  const r = sampleRow(logits, { ...base, temperature: 0, logprobs: 2 });
  expect(r.tokenId).toBe(1);
  expect(r.logprob).toBeCloseTo(3 - lse, 6);
  expect(r.topIds).toEqual([1, 4]);
  expect(r.topLogprobs[1]).toBeCloseTo(3 - lse, 6);
  const hot = sampleRow(logits, { ...base, temperature: 1.7, logprobs: 0 });
  expect(hot.logprob).toBeCloseTo(logits[hot.tokenId]! - lse, 6);
  expect(hot.topIds).toEqual([]);
  expect(Number.isNaN(sampleRow(logits, base).logprob)).toBe(true);
});

test('a seed reproduces its tokens; token i of a stream does not depend on the others', () => {
  const a = draws({ temperature: 0.9 }, 50, 123);
  expect(draws({ temperature: 0.9 }, 50, 123)).toEqual(a);
  expect(draws({ temperature: 0.9 }, 50, 124)).not.toEqual(a);
  expect(sampleRow(logits, { ...base, temperature: 0.9, seed: 123, counter: 37 }).tokenId).toBe(a[37]);
});

test('top_k=1 is greedy; top_k keeps the k best and their ties; top_p the nucleus; min_p the likely', () => {
  expect(new Set(draws({ topK: 1 }, 50))).toEqual(new Set([1]));
  expect(new Set(draws({ topK: 3 }, 400))).toEqual(new Set([1, 4, 2]));
  // top_k 1 of a tie keeps both tied tokens when sampling proper (k = 2 here: the 2nd is tied with the 1st).
  expect(new Set(draws({ topK: 2 }, 300))).toEqual(new Set([1, 4]));
  // Probabilities ~ [.07,.33,.20,.01,.33,.04]: the two 3.0 logits hold 0.66 of the mass.
  expect(new Set(draws({ topP: 0.6 }, 400))).toEqual(new Set([1, 4]));
  expect(new Set(draws({ topP: 0.75 }, 600))).toEqual(new Set([1, 4, 2]));
  // A tiny top_p keeps the best token and its tie.
  expect(new Set(draws({ topP: 1e-6 }, 200))).toEqual(new Set([1, 4]));
  // min_p 0.5: p/p_max = e^(l - 3) ≥ 0.5 keeps 3.0, 3.0 and 2.5 (e^-0.5 = 0.61).
  expect(new Set(draws({ minP: 0.5 }, 600))).toEqual(new Set([1, 4, 2]));
  expect(new Set(draws({ minP: 0.7 }, 300))).toEqual(new Set([1, 4]));
  // Filters compose: min-p, then top-k, then top-p over what is left.
  expect(new Set(draws({ minP: 0.5, topK: 3, topP: 0.5 }, 300))).toEqual(new Set([1, 4]));
});

test('sampling follows softmax(logits / T), also after top-p over a large vocabulary', () => {
  const n = 30000;
  const counts = new Array<number>(logits.length).fill(0);
  for (const id of draws({ temperature: 0.5 }, n, 11)) counts[id]!++;
  const w = Array.from(logits).map((x) => Math.exp(x / 0.5));
  const total = w.reduce((a, b) => a + b, 0);
  counts.forEach((c, i) => expect(Math.abs(c / n - w[i]! / total)).toBeLessThan(0.015));

  // 50k-token vocabulary with a few dominant tokens: top-p 0.9 keeps exactly the smallest prefix.
  const vocab = new Float32Array(50000).fill(-15);
  [[10, 4], [20, 3.5], [30, 3], [40, 2]].forEach(([id, v]) => (vocab[id!] = v!));
  const weights = Array.from(vocab, (v) => Math.exp(v));
  const z = weights.reduce((a, b) => a + b, 0);
  const p = [10, 20, 30, 40].map((id) => weights[id]! / z);
  const need = [1, 2, 3, 4].findIndex((m) => p.slice(0, m).reduce((a, b) => a + b, 0) >= 0.6) + 1;
  const seen = new Set(draws({ topP: 0.6 }, 150, 3, vocab));
  expect(seen).toEqual(new Set([10, 20, 30, 40].slice(0, need)));
});
