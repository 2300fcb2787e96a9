// Deterministic random numbers for tests (mulberry32 + Box–Muller), and random weights by place.
import type { RandomWindow } from './backend.js';
import { mix32 } from '../sampling/prng.js';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normals(random: () => number, n: number, std = 1, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/**
 * Element `index` of the random matrix `seed`: the sum of 4 hashed uniforms, scaled to N(0, std²)-like,
 * as the CUDA backend's fill kernel makes it (runtime/native/src/elementwise.cu, random_bf16_kernel).
 */
export function randomAt(seed: number, index: number, std: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / 4294967296) >>> 0;
  let h = mix32((seed ^ mix32((lo ^ mix32((hi + 0x9e3779b9) >>> 0)) >>> 0)) >>> 0);
  // fp32 arithmetic in the kernel's order (each term is exact, so its fused multiply-add rounds once).
  let s = 0;
  for (let j = 0; j < 4; j++) {
    h = mix32((h + 0x9e3779b9) >>> 0);
    s = Math.fround(s + (h >>> 8) * (1 / 16777216));
  }
  return Math.fround(Math.fround(Math.fround(s - 2) * Math.fround(1.7320508)) * Math.fround(std));
}

/** The window of a whole [rows, cols] matrix. */
export function wholeWindow(rows: number, cols: number): RandomWindow {
  return { fullCols: cols, rowRanges: [[0, rows]], colStart: 0 };
}

/** The [rows, cols] matrix `seed` as randomAt makes it, at `window` in the full one (the whole matrix without). */
export function randomWindow(rows: number, cols: number, std: number, seed: number, window = wholeWindow(rows, cols)): Float32Array {
  const w = window;
  const out = new Float32Array(rows * cols);
  let o = 0;
  for (const [start, end] of w.rowRanges) {
    for (let r = start; r < end; r++) for (let c = 0; c < cols; c++) out[o++] = randomAt(seed, r * w.fullCols + w.colStart + c, std);
  }
  if (o !== out.length) throw new Error(`random window: ${o} values for a [${rows}, ${cols}] matrix`);
  return out;
}
