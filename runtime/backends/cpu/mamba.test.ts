import type { RaggedBatch } from '../backend.js';
import { normals, rng } from '../testing.js';
import { CpuBackend } from './index.js';
import { softplus } from './mamba.js';
import type { CpuTensor } from './tensor.js';

const b = new CpuBackend();
const arr = (t: unknown) => (t as CpuTensor).data as Float32Array;
const silu = (v: number) => v / (1 + Math.exp(-v));

function oneSeq(numRows: number, cachedLen: number, stateSlot: number): RaggedBatch {
  return { numRows, segments: [{ rowStart: 0, numRows, cachedLen, stateSlot, blockTable: new Int32Array(0) }] };
}

test('softplus matches torch (log1p(exp(x)), identity above 20)', () => {
  expect(softplus(0)).toBeCloseTo(Math.log(2), 12);
  expect(softplus(-30)).toBeCloseTo(Math.exp(-30), 20);
  expect(softplus(25)).toBe(25);
});

test('mambaConv: an impulse walks through the kernel taps, newest tap last', () => {
  const state = b.createMambaState(1, 1, 3, 1);
  const w = b.upload(new Float32Array([1, 2, 3]), [1, 3]);
  const bias = b.upload(new Float32Array([0.5]), [1]);
  const x = b.upload(new Float32Array([1, 0, 0, 0]), [4, 1]);
  const y = arr(b.mambaConv(x, w, bias, state, oneSeq(4, 0, 0)));
  [3.5, 2.5, 1.5, 0.5].forEach((pre, t) => expect(y[t]).toBeCloseTo(silu(pre), 6));
});

/** Full-sequence depthwise causal conv with zero history, then SiLU. x [len, dInner], w [dInner, k]. */
function naiveConv(x: Float32Array, len: number, dInner: number, w: Float32Array, k: number, bias: Float32Array): Float64Array {
  const out = new Float64Array(len * dInner);
  for (let t = 0; t < len; t++) {
    for (let c = 0; c < dInner; c++) {
      let s = bias[c]!;
      for (let j = 0; j < k; j++) {
        const src = t - (k - 1) + j;
        if (src >= 0) s += w[c * k + j]! * x[src * dInner + c]!;
      }
      out[t * dInner + c] = silu(s);
    }
  }
  return out;
}

/** The selective scan of one full sequence from a zero state, in float64. */
function naiveScan(
  x: Float32Array, dt: Float32Array, negA: Float32Array, bm: Float32Array, cm: Float32Array, d: Float32Array, z: Float32Array,
  len: number, dInner: number, dState: number,
): Float64Array {
  const h = new Float64Array(dInner * dState);
  const out = new Float64Array(len * dInner);
  for (let t = 0; t < len; t++) {
    for (let c = 0; c < dInner; c++) {
      const delta = softplus(dt[t * dInner + c]!);
      let y = 0;
      for (let s = 0; s < dState; s++) {
        const i = c * dState + s;
        h[i] = Math.exp(delta * negA[i]!) * h[i]! + delta * bm[t * dState + s]! * x[t * dInner + c]!;
        y += h[i]! * cm[t * dState + s]!;
      }
      out[t * dInner + c] = (y + d[c]! * x[t * dInner + c]!) * silu(z[t * dInner + c]!);
    }
  }
  return out;
}

test('conv and scan in chunks through the state pool (two slots, interleaved) equal the full-sequence formulas', () => {
  const r = rng(11);
  const dInner = 5;
  const dConv = 4;
  const dState = 3;
  const len = 9;
  const state = b.createMambaState(3, dInner, dConv, dState);
  const w = normals(r, dInner * dConv);
  const bias = normals(r, dInner);
  const negA = Float32Array.from(normals(r, dInner * dState), (v) => -Math.exp(v));
  const d = normals(r, dInner);
  const seqs = [0, 1].map(() => ({
    x: normals(r, len * dInner),
    dt: normals(r, len * dInner, 1, -1),
    bm: normals(r, len * dState),
    cm: normals(r, len * dState),
    z: normals(r, len * dInner),
  }));
  const slots = [2, 0];
  const chunks: [number, number][] = [[0, 2], [2, 3], [3, 9]]; // includes a chunk shorter than dConv-1
  const convOut = seqs.map(() => new Float32Array(len * dInner));
  const scanOut = seqs.map(() => new Float32Array(len * dInner));
  const rows = (a: Float32Array, from: number, to: number, width: number) => b.upload(a.slice(from * width, to * width), [to - from, width]);
  for (const [from, to] of chunks) {
    seqs.forEach((s, i) => {
      const batch = oneSeq(to - from, from, slots[i]!);
      const xc = b.mambaConv(rows(s.x, from, to, dInner), b.upload(w, [dInner, dConv]), b.upload(bias, [dInner]), state, batch);
      convOut[i]!.set(arr(xc), from * dInner);
      // The scan runs on the naive conv output so that each op is checked on its own.
      const xRef = Float32Array.from(naiveConv(s.x, len, dInner, w, dConv, bias)).slice(from * dInner, to * dInner);
      const y = b.selectiveScan(
        {
          x: b.upload(xRef, [to - from, dInner]),
          dtRaw: rows(s.dt, from, to, dInner),
          negA: b.upload(negA, [dInner, dState]),
          b: rows(s.bm, from, to, dState),
          c: rows(s.cm, from, to, dState),
          d: b.upload(d, [dInner]),
          z: rows(s.z, from, to, dInner),
        },
        state,
        batch,
      );
      scanOut[i]!.set(arr(y), from * dInner);
    });
  }
  seqs.forEach((s, i) => {
    naiveConv(s.x, len, dInner, w, dConv, bias).forEach((v, j) => expect(convOut[i]![j]).toBeCloseTo(v, 5));
    const xConv = Float32Array.from(naiveConv(s.x, len, dInner, w, dConv, bias));
    naiveScan(xConv, s.dt, negA, s.bm, s.cm, d, s.z, len, dInner, dState).forEach((v, j) => expect(scanOut[i]![j]).toBeCloseTo(v, 4));
  });

  // Resetting a slot restarts its sequence from zero state.
  b.resetMambaSlot(state, slots[0]!);
  const again = b.mambaConv(rows(seqs[0]!.x, 0, 2, dInner), b.upload(w, [dInner, dConv]), b.upload(bias, [dInner]), state, oneSeq(2, 0, slots[0]!));
  expect([...arr(again)]).toEqual([...convOut[0]!.subarray(0, 2 * dInner)]);
});

test('a state slot outside the pool is an error', () => {
  const state = b.createMambaState(2, 1, 2, 1);
  const x = b.upload(new Float32Array(1), [1, 1]);
  expect(() => b.mambaConv(x, b.upload(new Float32Array(2), [1, 2]), undefined, state, oneSeq(1, 0, 2))).toThrow('state slot 2 outside 0..1');
});
