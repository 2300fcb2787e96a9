import { normals, rng } from '../testing.js';
import { CpuBackend } from './index.js';
import type { CpuTensor } from './tensor.js';

const b = new CpuBackend();

function naiveLinear(x: Float32Array, rows: number, w: ArrayLike<number>, out: number, inDim: number, scale?: Float32Array, bias?: Float32Array): number[] {
  const y: number[] = [];
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i]! * w[o * inDim + i]! * (scale ? scale[o]! : 1);
      y.push(s + (bias ? bias[o]! : 0));
    }
  }
  return y;
}

function data(t: unknown): Float32Array {
  return (t as CpuTensor).data as Float32Array;
}

test('linear: hand-checked 1×2 · [3×2]ᵀ + bias', () => {
  const x = b.upload(new Float32Array([1, 2]), [1, 2]);
  const w = b.upload(new Float32Array([1, 0, 0, 1, 1, 1]), [3, 2]);
  const bias = b.upload(new Float32Array([0.5, 0, -1]), [3]);
  expect([...data(b.linear(x, { kind: 'dense', weight: w, bias }))]).toEqual([1.5, 2, 2]);
});

test('linear: int8 weight is scaled per output row after accumulation', () => {
  const x = b.upload(new Float32Array([1, 2]), [1, 2]);
  const q = b.upload(new Int8Array([1, -1, 127, 0]), [2, 2]);
  const scale = b.upload(new Float32Array([0.5, 0.25]), [2]);
  expect([...data(b.linear(x, { kind: 'int8', weight: q, scale }))]).toEqual([-0.5, 31.75]);
});

test.each([1, 2, 3, 4, 5, 9])('linear: %i rows (tiles and remainders) match the naive product', (rows) => {
  const r = rng(rows);
  const inDim = 7;
  const out = 5;
  const x = normals(r, rows * inDim);
  const w = normals(r, out * inDim);
  const bias = normals(r, out);
  const y = data(b.linear(b.upload(x, [rows, inDim]), { kind: 'dense', weight: b.upload(w, [out, inDim]), bias: b.upload(bias, [out]) }));
  const ref = naiveLinear(x, rows, w, out, inDim, undefined, bias);
  ref.forEach((v, i) => expect(y[i]).toBeCloseTo(v, 5));

  const q = Int8Array.from({ length: out * inDim }, () => Math.floor(r() * 255) - 127);
  const scale = Float32Array.from({ length: out }, () => r() / 100);
  const yq = data(b.linear(b.upload(x, [rows, inDim]), { kind: 'int8', weight: b.upload(q, [out, inDim]), scale: b.upload(scale, [out]) }));
  naiveLinear(x, rows, q, out, inDim, scale).forEach((v, i) => expect(yq[i]).toBeCloseTo(v, 5));
});

test('linear: a shape mismatch names the shapes', () => {
  const x = b.upload(new Float32Array(6), [2, 3]);
  const w = b.upload(new Float32Array(8), [2, 4]);
  expect(() => b.linear(x, { kind: 'dense', weight: w })).toThrow('linear: input [2, 3] does not match weight [2, 4]');
});
