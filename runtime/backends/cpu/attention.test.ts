import type { RaggedBatch, SequenceSegment } from '../backend.js';
import { normals, rng } from '../testing.js';
import { CpuBackend } from './index.js';
import type { CpuTensor } from './tensor.js';

const b = new CpuBackend();
const arr = (t: unknown) => (t as CpuTensor).data as Float32Array;

function batchOf(parts: Omit<SequenceSegment, 'rowStart'>[]): RaggedBatch {
  let row = 0;
  const segments = parts.map((p) => {
    const seg = { ...p, rowStart: row };
    row += p.numRows;
    return seg;
  });
  return { numRows: row, segments };
}

test('a first token attends only to itself: output = its value, per KV group (GQA)', () => {
  const heads = 4;
  const kvHeads = 2;
  const dim = 2;
  const cache = b.createKvCache(4, 2, kvHeads, dim);
  const q = b.upload(new Float32Array(heads * dim).fill(3), [1, heads * dim]);
  const k = b.upload(new Float32Array(kvHeads * dim).fill(1), [1, kvHeads * dim]);
  const v = b.upload(new Float32Array([1, 2, 3, 4]), [1, kvHeads * dim]);
  const batch = batchOf([{ numRows: 1, cachedLen: 0, stateSlot: 0, blockTable: new Int32Array([3]) }]);
  const out = arr(b.pagedAttention(q, k, v, cache, batch, { numHeads: heads, numKvHeads: kvHeads, headDim: dim, scale: 1 }));
  // query heads 0,1 read KV head 0; heads 2,3 read KV head 1
  expect([...out]).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
});

/** Causal softmax attention of one full sequence, contiguous, in float64. */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, len: number, heads: number, kvHeads: number, dim: number): Float64Array {
  const out = new Float64Array(len * heads * dim);
  const group = heads / kvHeads;
  for (let t = 0; t < len; t++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      const s: number[] = [];
      for (let j = 0; j <= t; j++) {
        let dot = 0;
        for (let d = 0; d < dim; d++) dot += q[(t * heads + h) * dim + d]! * k[(j * kvHeads + kh) * dim + d]!;
        s.push(dot / Math.sqrt(dim));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let j = 0; j <= t; j++) {
        for (let d = 0; d < dim; d++) out[(t * heads + h) * dim + d]! += (e[j]! / z) * v[(j * kvHeads + kh) * dim + d]!;
      }
    }
  }
  return out;
}

test('paged attention over scattered blocks, two sequences in two steps, equals full causal attention', () => {
  const r = rng(3);
  const heads = 6;
  const kvHeads = 2;
  const dim = 4;
  const blockSize = 4;
  const cache = b.createKvCache(16, blockSize, kvHeads, dim);
  const lens = [5, 11];
  const tables = [new Int32Array([9, 2]), new Int32Array([0, 14, 5])];
  const seqs = lens.map((len) => ({ q: normals(r, len * heads * dim), k: normals(r, len * kvHeads * dim), v: normals(r, len * kvHeads * dim) }));
  const splits = [3, 7]; // step 1 runs tokens [0, split), step 2 the rest
  const shape = { numHeads: heads, numKvHeads: kvHeads, headDim: dim, scale: 1 / Math.sqrt(dim) };
  const got = lens.map((len) => new Float32Array(len * heads * dim));

  for (const stepNo of [0, 1]) {
    const ranges = lens.map((len, i) => (stepNo === 0 ? [0, splits[i]!] : [splits[i]!, len]) as [number, number]);
    const rowsOf = (what: 'q' | 'k' | 'v', width: number) => {
      const parts = ranges.map(([from, to], i) => seqs[i]![what].subarray(from * width, to * width));
      const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      return b.upload(all, [all.length / width, width]);
    };
    const batch = batchOf(ranges.map(([from, to], i) => ({ numRows: to - from, cachedLen: from, stateSlot: i, blockTable: tables[i]! })));
    const out = arr(b.pagedAttention(rowsOf('q', heads * dim), rowsOf('k', kvHeads * dim), rowsOf('v', kvHeads * dim), cache, batch, shape));
    ranges.forEach(([from, to], i) => {
      const seg = batch.segments[i]!;
      got[i]!.set(out.subarray(seg.rowStart * heads * dim, (seg.rowStart + to - from) * heads * dim), from * heads * dim);
    });
  }
  lens.forEach((len, i) => {
    const ref = naiveAttention(seqs[i]!.q, seqs[i]!.k, seqs[i]!.v, len, heads, kvHeads, dim);
    ref.forEach((v, j) => expect(got[i]![j]).toBeCloseTo(v, 5));
  });
});

test('a block table too short for the positions is an error naming the position', () => {
  const cache = b.createKvCache(2, 2, 1, 1);
  const one = b.upload(new Float32Array(3), [3, 1]);
  const batch = batchOf([{ numRows: 3, cachedLen: 0, stateSlot: 0, blockTable: new Int32Array([1]) }]);
  expect(() => b.pagedAttention(one, one, one, cache, batch, { numHeads: 1, numKvHeads: 1, headDim: 1, scale: 1 })).toThrow(
    'position 2 maps to block undefined',
  );
});
