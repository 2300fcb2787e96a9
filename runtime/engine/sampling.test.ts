import { Xoshiro128, seedToUint32 } from './prng.js';
import { argmax, logSumExp, sampleToken, topN } from './sampling.js';
import type { SamplingParams } from './sequence.js';

const base: SamplingParams = { temperature: 1, topP: 1, topK: 0, maxTokens: 1, stop: [], stopTokenIds: [], ignoreEos: false };
const logits = Float32Array.from([1.0, 3.0, 2.5, -1.0, 3.0, 0.5]);

test('xoshiro128** is deterministic per seed, differs across seeds, and is roughly uniform', () => {
  const draw = (seed: number) => {
    const r = new Xoshiro128(seed);
    return Array.from({ length: 5 }, () => r.nextUint32());
  };
  expect(draw(42)).toEqual(draw(42));
  expect(draw(42)).not.toEqual(draw(43));
  const r = new Xoshiro128(7);
  let sum = 0;
  for (let i = 0; i < 20000; i++) {
    const u = r.nextFloat();
    expect(u).toBeGreaterThanOrEqual(0);
    expect(u).toBeLessThan(1);
    sum += u;
  }
  expect(sum / 20000).toBeCloseTo(0.5, 1);
  expect(seedToUint32(-1)).toBe(seedToUint32(-1));
  expect(seedToUint32(2 ** 40 + 5)).not.toBe(seedToUint32(5));
});

test('argmax takes the first of equal maxima; topN orders by value then index', () => {
  expect(argmax(logits)).toBe(1);
  expect(topN(logits, 3)).toEqual([1, 4, 2]);
  expect(topN(logits, 0)).toEqual([]);
  expect(topN(Float32Array.from([5, 4, 3]), 5)).toEqual([0, 1, 2]);
});

test('logprobs are log_softmax of the raw logits, whatever the temperature', () => {
  const lse = Math.log(Array.from(logits).reduce((s, x) => s + Math.exp(x), 0));
  expect(logSumExp(logits)).toBeCloseTo(lse, 10);
  const r = sampleToken(logits, { ...base, temperature: 0, logprobs: 2 }, new Xoshiro128(1));
  expect(r.tokenId).toBe(1);
  expect(r.logprob).toBeCloseTo(3 - lse, 6);
  expect(r.topLogprobs!.map((t) => t.tokenId)).toEqual([1, 4]);
  const hot = sampleToken(logits, { ...base, temperature: 1.7, logprobs: 1 }, new Xoshiro128(1));
  expect(hot.logprob).toBeCloseTo(logits[hot.tokenId]! - lse, 6);
  expect(sampleToken(logits, base, new Xoshiro128(1)).logprob).toBeUndefined();
});

test('top_k=1 is greedy; top_k restricts to the k best; top_p to the nucleus', () => {
  const rng = new Xoshiro128(3);
  for (let i = 0; i < 50; i++) expect(sampleToken(logits, { ...base, topK: 1 }, rng).tokenId).toBe(1);
  const seen = new Set<number>();
  for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, { ...base, topK: 3 }, rng).tokenId);
  expect(seen).toEqual(new Set([1, 4, 2]));
  // Probabilities ~ [.07,.33,.20,.01,.33,.04]: the two 3.0 logits hold 0.66 of the mass.
  const nucleus = new Set<number>();
  for (let i = 0; i < 400; i++) nucleus.add(sampleToken(logits, { ...base, topP: 0.6 }, rng).tokenId);
  expect(nucleus).toEqual(new Set([1, 4]));
  // A tiny top_p keeps exactly one token.
  for (let i = 0; i < 20; i++) expect(sampleToken(logits, { ...base, topP: 1e-6 }, rng).tokenId).toBe(1);
});

test('sampling follows softmax(logits / T)', () => {
  const rng = new Xoshiro128(11);
  const counts = new Array<number>(logits.length).fill(0);
  const n = 30000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, { ...base, temperature: 0.5 }, rng).tokenId]!++;
  const w = Array.from(logits).map((x) => Math.exp(x / 0.5));
  const total = w.reduce((a, b) => a + b, 0);
  counts.forEach((c, i) => expect(Math.abs(c / n - w[i]! / total)).toBeLessThan(0.015));
});
