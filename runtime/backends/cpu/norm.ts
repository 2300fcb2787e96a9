// RMSNorm, computed in fp32 as Jamba does for every norm (layers, final, and Mamba's dt/B/C).
import type { Tensor } from '../backend.js';
import { cpu, CpuTensor, f32, f32Data } from './tensor.js';

export function rmsNorm(x: Tensor, weight: Tensor, eps: number): CpuTensor {
  const xs = cpu(x, 'rmsNorm');
  const w = f32Data(weight, 'rmsNorm');
  const n = xs.cols;
  if (w.length !== n) throw new Error(`rmsNorm: weight of ${w.length} for rows of ${n}`);
  const src = xs.data as Float32Array;
  const out = f32(xs.rows, n);
  const dst = out.data as Float32Array;
  for (let r = 0; r < xs.rows; r++) {
    const base = r * n;
    let sumSq = 0;
    for (let i = 0; i < n; i++) sumSq += src[base + i]! * src[base + i]!;
    // torch: x * rsqrt(mean + eps), then weight * that; both products rounded to fp32.
    const inv = Math.fround(1 / Math.sqrt(Math.fround(sumSq / n) + eps));
    for (let i = 0; i < n; i++) dst[base + i] = w[i]! * Math.fround(src[base + i]! * inv);
  }
  return out;
}
