// Linear layers: out = x · Wᵀ (+ bias), W row-major [out, in], fp32 or ExpertsInt8.
//
// Loop order: each weight row is read from memory once per call and applied to every row (token)
// of the step, so the weight stream — the dominant memory traffic — is not repeated per token.
// Int8 rows are accumulated as Σ q·x and multiplied by the row's scale at the end: the
// dequantization happens inside the kernel and no fp32 copy of the weight exists.
// Accumulators are JS numbers (float64), at least as precise as the fp32 the interface asks for;
// results are rounded to fp32 when stored.
import type { LinearWeight, Tensor } from '../backend.js';
import { cpu, CpuTensor, f32, f32Data } from './tensor.js';

export interface RawLinear {
  weight: Float32Array | Int8Array; // [outDim, inDim]
  outDim: number;
  inDim: number;
  scale?: Float32Array; // [outDim], int8 only
  bias?: Float32Array; // [outDim]
}

export function rawLinear(w: LinearWeight, op: string): RawLinear {
  const weight = cpu(w.weight, op, w.kind === 'int8' ? 'i8' : 'f32');
  if (weight.shape.length !== 2) throw new Error(`${op}: weight must be 2-D, got [${weight.shape.join(', ')}]`);
  const [outDim, inDim] = weight.shape as [number, number];
  const raw: RawLinear = { weight: weight.data as Float32Array | Int8Array, outDim, inDim };
  if (w.kind === 'int8') {
    raw.scale = f32Data(w.scale, op);
    if (raw.scale.length !== outDim) throw new Error(`${op}: ${raw.scale.length} scales for ${outDim} rows`);
  }
  if (w.bias) {
    raw.bias = f32Data(w.bias, op);
    if (raw.bias.length !== outDim) throw new Error(`${op}: bias of ${raw.bias.length} for ${outDim} rows`);
  }
  return raw;
}

/**
 * out[t, o] = scale[o] · Σ_i x[t, i] · W[o, i] + bias[o] for t < rows; x and out are row-major.
 * Register tile: 4 weight rows × 2 tokens (8 accumulators, 6 loads per 8 multiply-adds); the
 * 4 weight rows stay in L1 while all the step's tokens pass over them.
 */
export function linearInto(x: Float32Array, rows: number, w: RawLinear, out: Float32Array): void {
  const { weight, outDim, inDim, scale, bias } = w;
  let o = 0;
  for (; o + 4 <= outDim; o += 4) {
    const w0 = o * inDim;
    const w1 = w0 + inDim;
    const w2 = w1 + inDim;
    const w3 = w2 + inDim;
    let t = 0;
    for (; t + 2 <= rows; t += 2) {
      const x0 = t * inDim;
      const x1 = x0 + inDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0; // token t, rows o..o+3
      let b0 = 0, b1 = 0, b2 = 0, b3 = 0; // token t+1
      for (let i = 0; i < inDim; i++) {
        const p = x[x0 + i]!;
        const q = x[x1 + i]!;
        const u0 = weight[w0 + i]!;
        const u1 = weight[w1 + i]!;
        const u2 = weight[w2 + i]!;
        const u3 = weight[w3 + i]!;
        a0 += u0 * p; a1 += u1 * p; a2 += u2 * p; a3 += u3 * p;
        b0 += u0 * q; b1 += u1 * q; b2 += u2 * q; b3 += u3 * q;
      }
      store4(out, t * outDim + o, o, a0, a1, a2, a3, scale, bias);
      store4(out, (t + 1) * outDim + o, o, b0, b1, b2, b3, scale, bias);
    }
    if (t < rows) {
      const x0 = t * inDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let i = 0; i < inDim; i++) {
        const p = x[x0 + i]!;
        a0 += weight[w0 + i]! * p; a1 += weight[w1 + i]! * p; a2 += weight[w2 + i]! * p; a3 += weight[w3 + i]! * p;
      }
      store4(out, t * outDim + o, o, a0, a1, a2, a3, scale, bias);
    }
  }
  for (; o < outDim; o++) {
    const wo = o * inDim;
    for (let t = 0; t < rows; t++) {
      const xt = t * inDim;
      let acc = 0;
      for (let i = 0; i < inDim; i++) acc += weight[wo + i]! * x[xt + i]!;
      out[t * outDim + o] = acc * (scale ? scale[o]! : 1) + (bias ? bias[o]! : 0);
    }
  }
}

function store4(
  out: Float32Array, at: number, o: number, a0: number, a1: number, a2: number, a3: number,
  scale: Float32Array | undefined, bias: Float32Array | undefined,
): void {
  if (scale) {
    a0 *= scale[o]!; a1 *= scale[o + 1]!; a2 *= scale[o + 2]!; a3 *= scale[o + 3]!;
  }
  if (bias) {
    a0 += bias[o]!; a1 += bias[o + 1]!; a2 += bias[o + 2]!; a3 += bias[o + 3]!;
  }
  out[at] = a0; out[at + 1] = a1; out[at + 2] = a2; out[at + 3] = a3;
}

export function linear(x: Tensor, w: LinearWeight): CpuTensor {
  const raw = rawLinear(w, 'linear');
  const xs = cpu(x, 'linear');
  if (xs.cols !== raw.inDim) {
    throw new Error(`linear: input [${xs.shape.join(', ')}] does not match weight [${raw.outDim}, ${raw.inDim}]`);
  }
  const out = f32(xs.rows, raw.outDim);
  linearInto(xs.data as Float32Array, xs.rows, raw, out.data as Float32Array);
  return out;
}
