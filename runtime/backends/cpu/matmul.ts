// Linear layers: out = x · Wᵀ (+ bias), W row-major [out, in], fp32 or ExpertsInt8.
//
// Loop order: each weight row is read once per call and applied to every row (token) of the step,
// four tokens at a time, so the weight stream — the dominant memory traffic — is not repeated per
// token. Int8 rows are accumulated as Σ q·x and multiplied by the row's scale at the end: the
// dequantization happens inside the kernel and no fp32 copy of the weight exists.
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

/** out[t, o] = scale[o] · Σ_i x[t, i] · W[o, i] + bias[o] for t < rows; x and out are row-major. */
export function linearInto(x: Float32Array, rows: number, w: RawLinear, out: Float32Array): void {
  const { weight, outDim, inDim, scale, bias } = w;
  for (let o = 0; o < outDim; o++) {
    const wo = o * inDim;
    const s = scale ? scale[o]! : 1;
    const b = bias ? bias[o]! : 0;
    let t = 0;
    for (; t + 4 <= rows; t += 4) {
      const x0 = t * inDim;
      const x1 = x0 + inDim;
      const x2 = x1 + inDim;
      const x3 = x2 + inDim;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let i = 0; i < inDim; i++) {
        const wi = weight[wo + i]!;
        a0 += wi * x[x0 + i]!;
        a1 += wi * x[x1 + i]!;
        a2 += wi * x[x2 + i]!;
        a3 += wi * x[x3 + i]!;
      }
      out[t * outDim + o] = a0 * s + b;
      out[(t + 1) * outDim + o] = a1 * s + b;
      out[(t + 2) * outDim + o] = a2 * s + b;
      out[(t + 3) * outDim + o] = a3 * s + b;
    }
    for (; t < rows; t++) {
      const xt = t * inDim;
      // Four partial sums break the add dependency chain of a single-token dot product.
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let i = 0;
      for (; i + 4 <= inDim; i += 4) {
        a0 += weight[wo + i]! * x[xt + i]!;
        a1 += weight[wo + i + 1]! * x[xt + i + 1]!;
        a2 += weight[wo + i + 2]! * x[xt + i + 2]!;
        a3 += weight[wo + i + 3]! * x[xt + i + 3]!;
      }
      for (; i < inDim; i++) a0 += weight[wo + i]! * x[xt + i]!;
      out[t * outDim + o] = (a0 + a1 + a2 + a3) * s + b;
    }
  }
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
