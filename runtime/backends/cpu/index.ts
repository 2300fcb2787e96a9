// The CPU backend: plain TypeScript over typed arrays, fp32 math (int8 for ExpertsInt8 weights).
// It is the executable specification of every op in ../backend.ts.
import type {
  AttentionShape,
  Backend,
  KvCache,
  LinearWeight,
  MambaState,
  RaggedBatch,
  Routing,
  SelectiveScanInputs,
  SwiGluWeights,
  Tensor,
} from '../backend.js';
import { pagedAttention } from './attention.js';
import { addInPlace, embedding, gatherRows, siluMul, splitColumns } from './elementwise.js';
import { mambaConv, selectiveScan } from './mamba.js';
import { linear } from './matmul.js';
import { moeExperts, routerTopK } from './moe.js';
import { rmsNorm } from './norm.js';
import { cpu, CpuKvCache, CpuMambaState, CpuTensor } from './tensor.js';

/** Runs an allocation, turning V8's bare RangeError into one that says what was too big. */
function allocating<T>(what: string, bytes: number, make: () => T): T {
  try {
    return make();
  } catch (cause) {
    if (!(cause instanceof RangeError)) throw cause;
    const gib = (bytes / 2 ** 30).toFixed(2);
    throw new Error(`cpu backend: cannot allocate the ${what} (${gib} GiB); lower the max model length or max sequences, or set kvNumBlocks`, { cause });
  }
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  private weightBytes = 0;
  private readonly caches = new Set<CpuKvCache | CpuMambaState>();

  upload(data: Float32Array | Int8Array | Int32Array, shape: readonly number[]): Tensor {
    this.weightBytes += data.byteLength;
    return new CpuTensor(data, [...shape]);
  }

  async download(t: Tensor): Promise<Float32Array> {
    return (cpu(t, 'download').data as Float32Array).slice();
  }

  createKvCache(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number): KvCache {
    const bytes = 2 * numBlocks * blockSize * numKvHeads * headDim * 4;
    const cache = allocating(`KV cache of ${numBlocks} blocks × ${blockSize} tokens`, bytes, () => new CpuKvCache(numBlocks, blockSize, numKvHeads, headDim));
    this.caches.add(cache);
    return cache;
  }

  createMambaState(numSlots: number, dInner: number, dConv: number, dState: number): MambaState {
    const bytes = numSlots * dInner * (dConv - 1 + dState) * 4;
    const state = allocating(`Mamba state pool of ${numSlots} slots`, bytes, () => new CpuMambaState(numSlots, dInner, dConv, dState));
    this.caches.add(state);
    return state;
  }

  resetMambaSlot(state: MambaState, slot: number): void {
    if (!(state instanceof CpuMambaState)) throw new Error('resetMambaSlot: state does not belong to the cpu backend');
    state.resetSlot(slot);
  }

  // Activations are ordinary typed arrays here: the GC frees them, so a step needs no bracketing.
  beginStep(): void {}
  endStep(): void {}

  residentBytes(): { weights: number; caches: number } {
    let caches = 0;
    for (const c of this.caches) caches += c.bytes;
    return { weights: this.weightBytes, caches };
  }

  dispose(): void {
    this.caches.clear();
    this.weightBytes = 0;
  }

  // --- ops: each lives in the file of its family ---------------------------------------------
  embedding(table: Tensor, ids: Int32Array): Tensor {
    return embedding(table, ids);
  }
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return rmsNorm(x, weight, eps);
  }
  linear(x: Tensor, w: LinearWeight): Tensor {
    return linear(x, w);
  }
  addInPlace(dst: Tensor, src: Tensor): void {
    addInPlace(dst, src);
  }
  siluMul(gate: Tensor, up: Tensor): Tensor {
    return siluMul(gate, up);
  }
  splitColumns(x: Tensor, widths: readonly number[]): Tensor[] {
    return splitColumns(x, widths);
  }
  gatherRows(x: Tensor, rows: Int32Array): Tensor {
    return gatherRows(x, rows);
  }
  routerTopK(logits: Tensor, k: number): Routing {
    return routerTopK(logits, k);
  }
  moeExperts(x: Tensor, routing: Routing, experts: readonly SwiGluWeights[]): Tensor {
    return moeExperts(x, routing, experts);
  }
  pagedAttention(q: Tensor, k: Tensor, v: Tensor, cache: KvCache, batch: RaggedBatch, shape: AttentionShape): Tensor {
    return pagedAttention(q, k, v, cache, batch, shape);
  }
  mambaConv(x: Tensor, weight: Tensor, bias: Tensor | undefined, state: MambaState, batch: RaggedBatch): Tensor {
    return mambaConv(x, weight, bias, state, batch);
  }
  selectiveScan(inputs: SelectiveScanInputs, state: MambaState, batch: RaggedBatch): Tensor {
    return selectiveScan(inputs, state, batch);
  }
}
