// Row bookkeeping and element-wise ops: embedding gather, residual add, SwiGLU's silu-mul,
// column split and row gather.
import type { Tensor } from '../backend.js';
import { cpu, CpuTensor, f32 } from './tensor.js';

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/**
 * Rows of `table` for the token ids. With `slice`, the table holds ids [slice.first, slice.first + rows) of
 * a vocabulary of slice.vocab (a tensor-parallel shard): other ids give zero rows.
 */
export function embedding(table: Tensor, ids: Int32Array, slice?: { first: number; vocab: number }): CpuTensor {
  const t = cpu(table, 'embedding');
  const [rows, hidden] = t.shape as [number, number];
  const first = slice?.first ?? 0;
  const vocab = slice?.vocab ?? rows;
  const src = t.data as Float32Array;
  const out = f32(ids.length, hidden);
  const dst = out.data as Float32Array;
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r]!;
    if (id < 0 || id >= vocab) throw new Error(`embedding: token id ${id} outside vocabulary 0..${vocab - 1}`);
    const local = id - first;
    if (local >= 0 && local < rows) dst.set(src.subarray(local * hidden, (local + 1) * hidden), r * hidden);
  }
  return out;
}

function sameShape(a: CpuTensor, b: CpuTensor, op: string): void {
  if (a.data.length !== b.data.length || a.rows !== b.rows) {
    throw new Error(`${op}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  }
}

export function addInPlace(dst: Tensor, src: Tensor): void {
  const d = cpu(dst, 'addInPlace');
  const s = cpu(src, 'addInPlace');
  sameShape(d, s, 'addInPlace');
  const a = d.data as Float32Array;
  const b = s.data as Float32Array;
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
}

/** out = silu(gate) * up, into an existing array (used by the MoE kernel on its scratch buffers). */
export function siluMulInto(gate: Float32Array, up: Float32Array, out: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) out[i] = silu(gate[i]!) * up[i]!;
}

export function siluMul(gate: Tensor, up: Tensor): CpuTensor {
  const g = cpu(gate, 'siluMul');
  const u = cpu(up, 'siluMul');
  sameShape(g, u, 'siluMul');
  const out = f32(g.rows, g.cols);
  siluMulInto(g.data as Float32Array, u.data as Float32Array, out.data as Float32Array, g.data.length);
  return out;
}

export function splitColumns(x: Tensor, widths: readonly number[]): CpuTensor[] {
  const xs = cpu(x, 'splitColumns');
  const total = widths.reduce((a, b) => a + b, 0);
  if (total !== xs.cols) throw new Error(`splitColumns: widths sum to ${total}, rows have ${xs.cols}`);
  const src = xs.data as Float32Array;
  const outs: CpuTensor[] = [];
  let col = 0;
  for (const width of widths) {
    const out = f32(xs.rows, width);
    const dst = out.data as Float32Array;
    for (let r = 0; r < xs.rows; r++) {
      const from = r * total + col;
      dst.set(src.subarray(from, from + width), r * width);
    }
    outs.push(out);
    col += width;
  }
  return outs;
}

export function gatherRows(x: Tensor, rows: Int32Array): CpuTensor {
  const xs = cpu(x, 'gatherRows');
  const n = xs.cols;
  const src = xs.data as Float32Array;
  const out = f32(rows.length, n);
  const dst = out.data as Float32Array;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (r < 0 || r >= xs.rows) throw new Error(`gatherRows: row ${r} outside 0..${xs.rows - 1}`);
    dst.set(src.subarray(r * n, (r + 1) * n), i * n);
  }
  return out;
}

