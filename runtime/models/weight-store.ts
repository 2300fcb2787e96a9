// The model's weights as backend tensors, by checkpoint name. Tensors are placed as the loader streams
// them, each where the backend wants it:
// - GEMM weights (projections, router, embedding, lm_head) go to the backend as raw checkpoint bytes
//   (`uploadMatrix`: fp32 on the CPU, bf16 on a GPU, with no host-side widening);
// - with ExpertsInt8, expert and dense-MLP weights are quantized by the backend (`uploadInt8Matrix`:
//   on the device for a GPU backend);
// - small parameters (norms, biases, conv taps, A, D) are decoded to fp32 on the host. A few are reshaped
//   or precomputed on the way in (conv1d's [Di, 1, k] becomes [Di, k]; A_log becomes -exp(A_log), as
//   every step would otherwise recompute it).
import type { Backend, LinearWeight, RandomWindow, Tensor } from '../backends/backend.js';
import { toFloat32 } from '../loader/dtype.js';
import type { RawTensor } from '../loader/load-weights.js';
import { randomWindow } from '../backends/testing.js';
import { int8WeightBytes, isExpertsInt8Weight } from '../quant/expertsint8.js';

const MATRIX = /(_proj\.weight|\.router\.weight|embed_tokens\.weight|^lm_head\.weight)$/;

function negExp(logs: Float32Array): Float32Array {
  return Float32Array.from(logs, (v) => -Math.exp(v));
}

export interface WeightBytes {
  /** Bytes in a bf16 deployment: 2 per parameter. */
  bf16: number;
  /** Bytes as deployed: 2 per bf16 parameter, 1 per int8 parameter plus 4 per scale. */
  deployed: number;
}

export class WeightStore {
  private readonly dense = new Map<string, Tensor>();
  private readonly int8 = new Map<string, { weight: Tensor; scale: Tensor }>();
  readonly bytes: WeightBytes = { bf16: 0, deployed: 0 };

  constructor(
    private readonly backend: Backend,
    private readonly quantizeExperts: boolean,
  ) {}

  add(name: string, t: RawTensor): void {
    const b = this.backend;
    const count = t.shape.reduce((x, y) => x * y, 1);
    this.bytes.bf16 += count * 2;
    if (this.quantizeExperts && isExpertsInt8Weight(name)) {
      const [rows, cols] = t.shape as [number, number];
      this.int8.set(name, b.uploadInt8Matrix(t, [rows, cols]));
      this.bytes.deployed += int8WeightBytes(rows, cols);
      return;
    }
    this.bytes.deployed += count * 2;
    if (MATRIX.test(name) && t.shape.length === 2) {
      this.dense.set(name, b.uploadMatrix(t, t.shape as [number, number]));
    } else if (name.endsWith('.mamba.A_log')) {
      this.dense.set(name, b.upload(negExp(toFloat32(t.bytes, t.dtype, count)), t.shape));
    } else if (name.endsWith('.mamba.conv1d.weight')) {
      this.dense.set(name, b.upload(toFloat32(t.bytes, t.dtype, count), [t.shape[0]!, t.shape[2]!]));
    } else {
      this.dense.set(name, b.upload(toFloat32(t.bytes, t.dtype, count), t.shape));
    }
  }

  /**
   * Random weights of the checkpoint's shapes made by the backend (benchmarks at real size without a
   * checkpoint): matrices N(0, 0.02²) (ExpertsInt8 weights quantized like loaded ones), norms 1,
   * A = −(1..dState) per channel as Mamba initialises it, D 1, dt bias of softplus⁻¹(0.01), conv
   * taps N(0, 0.1²). The values only need to keep activations finite.
   */
  addRandom(name: string, shape: number[], seed: number, window?: RandomWindow): void {
    const b = this.backend;
    const count = shape.reduce((x, y) => x * y, 1);
    this.bytes.bf16 += count * 2;
    if (this.quantizeExperts && isExpertsInt8Weight(name)) {
      const [rows, cols] = shape as [number, number];
      this.int8.set(name, b.randomInt8Matrix([rows, cols], 0.02, seed, window));
      this.bytes.deployed += int8WeightBytes(rows, cols);
      return;
    }
    this.bytes.deployed += count * 2;
    if (MATRIX.test(name) && shape.length === 2) {
      this.dense.set(name, b.randomMatrix(shape as [number, number], 0.02, seed, window));
    } else if (name.endsWith('.mamba.A_log')) {
      const dState = shape[1]!;
      this.dense.set(name, b.upload(Float32Array.from({ length: count }, (_, i) => -((i % dState) + 1)), shape));
    } else if (name.endsWith('.mamba.conv1d.weight')) {
      this.dense.set(name, b.upload(randomWindow(shape[0]!, shape[2]!, 0.1, seed, window), [shape[0]!, shape[2]!]));
    } else if (name.endsWith('.mamba.dt_proj.bias')) {
      this.dense.set(name, b.upload(new Float32Array(count).fill(Math.log(Math.expm1(0.01))), shape));
    } else if (/(layernorm|_norm)\.weight$|\.mamba\.D$/.test(name)) {
      this.dense.set(name, b.upload(new Float32Array(count).fill(1), shape));
    } else {
      this.dense.set(name, b.upload(new Float32Array(count), shape));
    }
  }

  tensor(name: string): Tensor {
    const t = this.dense.get(name);
    if (!t) throw new Error(`weights: no tensor ${name}${this.int8.has(name) ? ' (it is int8)' : ''}`);
    return t;
  }

  /** The linear layer `prefix` (prefix.weight, and prefix.bias when `withBias`), dense or int8. */
  linear(prefix: string, withBias = false): LinearWeight {
    const bias = withBias ? this.tensor(`${prefix}.bias`) : undefined;
    const q = this.int8.get(`${prefix}.weight`);
    if (q) return { kind: 'int8', weight: q.weight, scale: q.scale, bias };
    return { kind: 'dense', weight: this.tensor(`${prefix}.weight`), bias };
  }

  /** Names of the int8 weights (for tests and the memory report). */
  int8Names(): string[] {
    return [...this.int8.keys()];
  }

  denseNames(): string[] {
    return [...this.dense.keys()];
  }
}
