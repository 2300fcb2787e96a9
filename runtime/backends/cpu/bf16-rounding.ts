// The CPU backend rounding to bf16 exactly where the CUDA backend stores bf16 — op outputs between ops,
// the inputs of the ops that read bf16, the KV cache, the MoE intermediate — and exact (fp32) everywhere
// else: a numerical model of the GPU path on the CPU. A GPU result that differs from this one by more
// than accumulation order is not rounding. Not modelled: the bf16 softmax probabilities inside the
// attention kernel.
import type { AttentionShape, ExpertSet, KvCache, LinearWeight, MambaState, RaggedBatch, Routing, SelectiveScanInputs, Tensor } from '../backend.js';
import { CpuBackend } from './index.js';
import { CpuExpertSet } from './moe.js';
import { cpu, CpuTensor } from './tensor.js';

const scratch = new Float32Array(1);
const bits = new Uint32Array(scratch.buffer);

/** Round to nearest even at bf16 (NaN kept), in place. */
function roundBf16(values: Float32Array): void {
  for (let i = 0; i < values.length; i++) {
    scratch[0] = values[i]!;
    const u = bits[0]!;
    if ((u & 0x7f800000) === 0x7f800000) continue;
    bits[0] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
    values[i] = scratch[0]!;
  }
}

/** A bf16-rounded copy of an fp32 tensor (other dtypes as they are). */
export function bf16(t: Tensor): Tensor {
  const c = t as CpuTensor;
  if (c.dtype !== 'f32') return t;
  const data = Float32Array.from(c.data as Float32Array);
  roundBf16(data);
  return new CpuTensor(data, c.shape);
}

export class Bf16RoundingCpuBackend extends CpuBackend {
  override rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return bf16(super.rmsNorm(x, weight, eps));
  }

  override linear(x: Tensor, w: LinearWeight, out?: 'f32'): Tensor {
    const y = super.linear(bf16(x), w);
    return out === 'f32' ? y : bf16(y);
  }

  override siluMul(gate: Tensor, up: Tensor): Tensor {
    return bf16(super.siluMul(gate, up));
  }

  override denseMlp(x: Tensor, mlp: ExpertSet): Tensor {
    if (!(mlp instanceof CpuExpertSet) || mlp.numExperts !== 1) throw new Error('denseMlp: expects a one-expert set of the cpu backend');
    return this.expert(bf16(x), mlp, 0);
  }

  /** Like the CUDA kernel: per (row, slot) an fp32 expert output (bf16 intermediate), summed in slot order. */
  override moeExperts(x: Tensor, routing: Routing, experts: ExpertSet): Tensor {
    if (!(experts instanceof CpuExpertSet)) throw new Error('moeExperts: expert set does not belong to the cpu backend');
    const xs = cpu(bf16(x), 'moeExperts');
    const ids = cpu(routing.experts, 'moeExperts', 'i32').data as Int32Array;
    const weights = cpu(routing.weights, 'moeExperts').data as Float32Array;
    const rows = xs.rows;
    const hidden = xs.cols;
    const k = ids.length / rows;
    const slots = new Float32Array(rows * k * hidden);
    for (let e = 0; e < experts.numExperts; e++) {
      const pairs: number[] = [];
      for (let i = 0; i < ids.length; i++) if (ids[i] === e) pairs.push(i);
      if (pairs.length === 0) continue;
      const gathered = new Float32Array(pairs.length * hidden);
      pairs.forEach((pair, j) => gathered.set((xs.data as Float32Array).subarray(Math.floor(pair / k) * hidden, Math.floor(pair / k) * hidden + hidden), j * hidden));
      const y = cpu(this.expert(new CpuTensor(gathered, [pairs.length, hidden]), experts, e), 'moeExperts').data as Float32Array;
      pairs.forEach((pair, j) => {
        for (let c = 0; c < hidden; c++) slots[pair * hidden + c] = y[j * hidden + c]! * weights[pair]!;
      });
    }
    const out = new Float32Array(rows * hidden);
    for (let t = 0; t < rows; t++) for (let j = 0; j < k; j++) for (let c = 0; c < hidden; c++) out[t * hidden + c]! += slots[(t * k + j) * hidden + c]!;
    return new CpuTensor(out, [rows, hidden]);
  }

  /** One expert on bf16 rows: fp32 gate and up, bf16 silu(gate)·up, fp32 down. */
  private expert(x: Tensor, set: CpuExpertSet, e: number): Tensor {
    const w = set.experts[e]!;
    return super.linear(bf16(super.siluMul(super.linear(x, w.gate), super.linear(x, w.up))), w.down);
  }

  override pagedAttention(q: Tensor, k: Tensor, v: Tensor, cache: KvCache, batch: RaggedBatch, shape: AttentionShape): Tensor {
    return bf16(super.pagedAttention(bf16(q), bf16(k), bf16(v), cache, batch, shape));
  }

  override mambaConv(x: Tensor, weight: Tensor, bias: Tensor | undefined, state: MambaState, batch: RaggedBatch): Tensor {
    return bf16(super.mambaConv(bf16(x), weight, bias, state, batch));
  }

  override selectiveScan(inputs: SelectiveScanInputs, state: MambaState, batch: RaggedBatch): Tensor {
    return bf16(super.selectiveScan(inputs, state, batch));
  }
}
