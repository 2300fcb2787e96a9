// Cross-backend op conformance: every op of the Backend interface run on seeded random inputs,
// on a candidate backend and on a reference (the CPU backend, the executable specification), and
// compared with a per-op tolerance. A new backend (CUDA) passes this before any model test.
// Stateful ops (attention, Mamba conv and scan) run two steps, so cache and state updates count.
import type { Backend, LinearWeight, RaggedBatch, SwiGluWeights, Tensor } from './backend.js';
import { normals, rng } from './testing.js';

export interface OpCase {
  name: string;
  /** Largest acceptable |candidate − reference| over every output element. */
  tolerance: number;
  /** Runs the op on `b` and returns its outputs, downloaded. Inputs come from a fixed seed. */
  run(b: Backend): Promise<Float32Array[]>;
}

export interface OpResult {
  name: string;
  maxAbsDiff: number;
  tolerance: number;
  ok: boolean;
}

type Random = () => number;

function f32(b: Backend, r: Random, shape: number[], std = 1, mean = 0): Tensor {
  return b.upload(normals(r, shape.reduce((x, y) => x * y, 1), std, mean), shape);
}

function dense(b: Backend, r: Random, out: number, inDim: number, withBias = false): LinearWeight {
  return { kind: 'dense', weight: f32(b, r, [out, inDim], 1 / Math.sqrt(inDim)), bias: withBias ? f32(b, r, [out], 0.1) : undefined };
}

function int8(b: Backend, r: Random, out: number, inDim: number): LinearWeight {
  const q = Int8Array.from({ length: out * inDim }, () => Math.floor(r() * 255) - 127);
  const scale = Float32Array.from({ length: out }, () => (0.5 + r()) / (127 * Math.sqrt(inDim)));
  return { kind: 'int8', weight: b.upload(q, [out, inDim]), scale: b.upload(scale, [out]) };
}

/** Two sequences; step 0 runs their first `split` tokens, step 1 the rest (a decode token for one). */
function twoSteps(lens: [number, number], splits: [number, number], step: 0 | 1): RaggedBatch {
  let row = 0;
  const segments = lens.map((len, s) => {
    const from = step === 0 ? 0 : splits[s]!;
    const to = step === 0 ? splits[s]! : len;
    const seg = { rowStart: row, numRows: to - from, cachedLen: from, stateSlot: [2, 0][s]!, blockTable: Int32Array.from([[5, 1, 7], [0, 6, 3]][s]!) };
    row += to - from;
    return seg;
  });
  return { numRows: row, segments };
}

const LENS: [number, number] = [9, 6];
const SPLITS: [number, number] = [8, 3];

export const OP_CASES: OpCase[] = [
  {
    name: 'linear (fp32, bias; rows and columns off the tile sizes)',
    tolerance: 1e-5,
    async run(b) {
      const r = rng(1);
      const x = f32(b, r, [7, 37]);
      return [await b.download(b.linear(x, dense(b, r, 19, 37, true)))];
    },
  },
  {
    name: 'linear (int8 + per-row scale)',
    tolerance: 1e-5,
    async run(b) {
      const r = rng(2);
      const x = f32(b, r, [5, 33]);
      return [await b.download(b.linear(x, int8(b, r, 21, 33)))];
    },
  },
  {
    name: 'embedding, rmsNorm, siluMul, addInPlace, splitColumns, gatherRows',
    tolerance: 1e-6,
    async run(b) {
      const r = rng(3);
      const x = b.embedding(f32(b, r, [11, 8]), Int32Array.of(3, 0, 10, 3, 7));
      const n = b.rmsNorm(x, f32(b, r, [8], 0.2, 1), 1e-6);
      const [g, u] = b.splitColumns(n, [4, 4]) as [Tensor, Tensor];
      const s = b.siluMul(g, u);
      b.addInPlace(s, g);
      return [await b.download(n), await b.download(b.gatherRows(s, Int32Array.of(4, 0)))];
    },
  },
  {
    name: 'routerTopK + moeExperts (fp32 and int8 experts)',
    tolerance: 1e-5,
    async run(b) {
      const r = rng(4);
      const hidden = 12;
      const ffn = 20;
      const experts: SwiGluWeights[] = Array.from({ length: 5 }, (_, e) => {
        const make = e % 2 ? (o: number, i: number) => int8(b, r, o, i) : (o: number, i: number) => dense(b, r, o, i);
        return { gate: make(ffn, hidden), up: make(ffn, hidden), down: make(hidden, ffn) };
      });
      const x = f32(b, r, [9, hidden]);
      const routing = b.routerTopK(f32(b, r, [9, 5], 2), 2);
      return [await b.download(routing.weights), await b.download(b.moeExperts(x, routing, experts))];
    },
  },
  {
    name: 'pagedAttention (GQA 3, two sequences, two steps over scattered blocks)',
    tolerance: 1e-5,
    async run(b) {
      const r = rng(5);
      const [heads, kvHeads, dim] = [6, 2, 8];
      const cache = b.createKvCache(8, 4, kvHeads, dim);
      const shape = { numHeads: heads, numKvHeads: kvHeads, headDim: dim, scale: 1 / Math.sqrt(dim) };
      const outs: Float32Array[] = [];
      for (const step of [0, 1] as const) {
        const batch = twoSteps(LENS, SPLITS, step);
        const rows = batch.numRows;
        const q = f32(b, r, [rows, heads * dim]);
        outs.push(await b.download(b.pagedAttention(q, f32(b, r, [rows, kvHeads * dim]), f32(b, r, [rows, kvHeads * dim]), cache, batch, shape)));
      }
      return outs;
    },
  },
  {
    name: 'mambaConv + selectiveScan (two sequences, two steps through the state pool)',
    tolerance: 1e-5,
    async run(b) {
      const r = rng(6);
      const [dInner, dConv, dState] = [10, 4, 6];
      const state = b.createMambaState(3, dInner, dConv, dState);
      const convW = f32(b, r, [dInner, dConv], 0.5);
      const convB = f32(b, r, [dInner], 0.1);
      const negA = b.upload(Float32Array.from(normals(r, dInner * dState, 0.5), (v) => -Math.exp(v)), [dInner, dState]);
      const d = f32(b, r, [dInner], 0.3, 1);
      const outs: Float32Array[] = [];
      for (const step of [0, 1] as const) {
        const batch = twoSteps(LENS, SPLITS, step);
        const rows = batch.numRows;
        const xc = b.mambaConv(f32(b, r, [rows, dInner]), convW, convB, state, batch);
        const y = b.selectiveScan(
          { x: xc, dtRaw: f32(b, r, [rows, dInner], 1, -2), negA, b: f32(b, r, [rows, dState]), c: f32(b, r, [rows, dState]), d, z: f32(b, r, [rows, dInner]) },
          state,
          batch,
        );
        outs.push(await b.download(xc), await b.download(y));
      }
      return outs;
    },
  },
];

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    if (x.length !== y.length) worst = Infinity;
    for (let j = 0; j < x.length && worst !== Infinity; j++) {
      const d = Math.abs(x[j]! - y[j]!);
      worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
    }
  });
  return worst;
}

/** Runs every case on both backends; `ok` when the candidate stays within the case's tolerance. */
export async function compareBackends(candidate: Backend, reference: Backend, cases: OpCase[] = OP_CASES): Promise<OpResult[]> {
  const results: OpResult[] = [];
  for (const c of cases) {
    const diff = maxAbsDiff(await c.run(candidate), await c.run(reference));
    results.push({ name: c.name, maxAbsDiff: diff, tolerance: c.tolerance, ok: diff <= c.tolerance });
  }
  return results;
}
