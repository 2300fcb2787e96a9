import { type LinearWeight, SKIPPED_EXPERT, type SwiGluWeights } from '../backend.js';
import { expertRange, localExpertIds } from '../../models/sharding.js';
import { normals, rng } from '../testing.js';
import { CpuBackend } from './index.js';
import type { CpuTensor } from './tensor.js';

const b = new CpuBackend();
const arr = (t: unknown) => (t as CpuTensor).data;

test('routerTopK: softmax over all experts, top-k in order, no renormalisation', () => {
  // probabilities ∝ [1, 2, 3, 1]
  const logits = b.upload(new Float32Array([0, Math.log(2), Math.log(3), 0]), [1, 4]);
  const { experts, weights } = b.routerTopK(logits, 2);
  expect([...arr(experts)]).toEqual([2, 1]);
  expect(arr(weights)[0]).toBeCloseTo(3 / 7, 6);
  expect(arr(weights)[1]).toBeCloseTo(2 / 7, 6);
  expect(() => b.routerTopK(logits, 5)).toThrow('k=5 with 4 experts');
});

const denseWeight = (r: () => number, out: number, inDim: number): LinearWeight => ({ kind: 'dense', weight: b.upload(normals(r, out * inDim, 0.5), [out, inDim]) });

function naiveLinear(x: Float32Array, w: LinearWeight, inDim: number, outDim: number): Float64Array {
  const wd = arr(w.weight);
  const scale = w.kind === 'int8' ? (arr(w.scale) as Float32Array) : undefined;
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    for (let i = 0; i < inDim; i++) y[o]! += x[i]! * wd[o * inDim + i]! * (scale ? scale[o]! : 1);
  }
  return y;
}

test('moeExperts equals, per row, the routing-weighted sum of the chosen SwiGLU experts (fp32 and int8)', () => {
  const r = rng(7);
  const hidden = 6;
  const ffn = 10;
  const numExperts = 5;
  const rows = 9;
  const dense = (out: number, inDim: number) => denseWeight(r, out, inDim);
  const int8 = (out: number, inDim: number): LinearWeight => ({
    kind: 'int8',
    weight: b.upload(Int8Array.from({ length: out * inDim }, () => Math.floor(r() * 255) - 127), [out, inDim]),
    scale: b.upload(Float32Array.from({ length: out }, () => r() / 50), [out]),
  });
  const experts: SwiGluWeights[] = Array.from({ length: numExperts }, (_, e) => {
    const make = e % 2 ? int8 : dense;
    return { gate: make(ffn, hidden), up: make(ffn, hidden), down: make(hidden, ffn) };
  });
  const x = normals(r, rows * hidden);
  const logits = normals(r, rows * numExperts, 2);
  const routing = b.routerTopK(b.upload(logits, [rows, numExperts]), 2);
  const y = arr(b.moeExperts(b.upload(x, [rows, hidden]), routing, b.createExpertSet(experts)));

  const ids = arr(routing.experts);
  const wts = arr(routing.weights);
  for (let t = 0; t < rows; t++) {
    const xt = x.subarray(t * hidden, (t + 1) * hidden);
    const ref = new Float64Array(hidden);
    for (let j = 0; j < 2; j++) {
      const ex = experts[ids[t * 2 + j]!]!;
      const g = naiveLinear(xt, ex.gate, hidden, ffn);
      const u = naiveLinear(xt, ex.up, hidden, ffn);
      const h = Float32Array.from(g, (gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const d = naiveLinear(h, ex.down, ffn, hidden);
      for (let c = 0; c < hidden; c++) ref[c]! += wts[t * 2 + j]! * d[c]!;
    }
    for (let c = 0; c < hidden; c++) expect(y[t * hidden + c]).toBeCloseTo(ref[c]!, 4);
  }
});

test('moeExperts over whole experts split between ranks: skipped slots add nothing, and the ranks sum to the full layer', () => {
  const r = rng(11);
  const hidden = 8;
  const ffn = 12;
  const numExperts = 8;
  const rows = 7;
  const experts: SwiGluWeights[] = Array.from({ length: numExperts }, () => ({ gate: denseWeight(r, ffn, hidden), up: denseWeight(r, ffn, hidden), down: denseWeight(r, hidden, ffn) }));
  const x = b.upload(normals(r, rows * hidden), [rows, hidden]);
  const routing = b.routerTopK(b.upload(normals(r, rows * numExperts, 2), [rows, numExperts]), 2);
  const full = arr(b.moeExperts(x, routing, b.createExpertSet(experts)));
  const ids = arr(routing.experts) as Int32Array;
  for (const ranks of [2, 4, 8]) {
    const sum = new Float64Array(rows * hidden);
    for (let rank = 0; rank < ranks; rank++) {
      const range = expertRange(numExperts, { rank, size: ranks });
      const local = { experts: b.upload(localExpertIds(ids, range), [rows, 2]), weights: routing.weights };
      const part = arr(b.moeExperts(x, local, b.createExpertSet(experts.slice(range.first, range.first + range.count))));
      part.forEach((v, i) => (sum[i]! += v));
    }
    sum.forEach((v, i) => expect(v).toBeCloseTo(full[i]!, 5));
  }
  // A rank that holds none of a row's experts gives that row zeros.
  const none = { experts: b.upload(new Int32Array(rows * 2).fill(SKIPPED_EXPERT), [rows, 2]), weights: routing.weights };
  expect([...arr(b.moeExperts(x, none, b.createExpertSet(experts.slice(0, 1))))].every((v) => v === 0)).toBe(true);
  // Any other id outside the set is an error, not a skip.
  const bad = { experts: b.upload(new Int32Array(rows * 2).fill(numExperts), [rows, 2]), weights: routing.weights };
  expect(() => b.moeExperts(x, bad, b.createExpertSet(experts))).toThrow(`expert id ${numExperts} outside 0..${numExperts - 1}`);
  expect(() => expertRange(16, { rank: 0, size: 3 })).toThrow('16 experts do not divide over 3 ranks');
});
