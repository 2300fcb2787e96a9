// The model's weights as backend tensors, by checkpoint name. Tensors are uploaded as the loader
// streams them; a few are reshaped or precomputed on the way in (conv1d's [Di, 1, k] becomes
// [Di, k]; A_log becomes -exp(A_log), as every step would otherwise recompute it).
import type { Backend, LinearWeight, Tensor } from '../backends/backend.js';
import type { HostWeight } from '../loader/load-weights.js';

function negExp(logs: Float32Array): Float32Array {
  const out = new Float32Array(logs.length);
  for (let i = 0; i < logs.length; i++) out[i] = -Math.exp(logs[i]!);
  return out;
}

export class WeightStore {
  private readonly dense = new Map<string, Tensor>();
  private readonly int8 = new Map<string, { weight: Tensor; scale: Tensor }>();

  constructor(private readonly backend: Backend) {}

  add(name: string, w: HostWeight): void {
    const b = this.backend;
    if (w.kind === 'int8') {
      this.int8.set(name, { weight: b.upload(w.q, w.shape), scale: b.upload(w.scale, [w.shape[0]!]) });
    } else if (name.endsWith('.mamba.A_log')) {
      this.dense.set(name, b.upload(negExp(w.data), w.shape));
    } else if (name.endsWith('.mamba.conv1d.weight')) {
      this.dense.set(name, b.upload(w.data, [w.shape[0]!, w.shape[2]!]));
    } else {
      this.dense.set(name, b.upload(w.data, w.shape));
    }
  }

  tensor(name: string): Tensor {
    const t = this.dense.get(name);
    if (!t) throw new Error(`weights: no tensor ${name}${this.int8.has(name) ? ' (it is int8)' : ''}`);
    return t;
  }

  /** The linear layer `prefix` (prefix.weight, and prefix.bias when `withBias`), fp32 or int8. */
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
