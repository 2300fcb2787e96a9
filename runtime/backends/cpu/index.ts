// The CPU backend: plain TypeScript over typed arrays, fp32 math (int8 for ExpertsInt8 weights).
// It is the executable specification of every op in ../backend.ts.
import type { Backend, KvCache, MambaState, Tensor } from '../backend.js';
import { pagedAttention } from './attention.js';
import { addInPlace, embedding, gatherRows, siluMul, splitColumns } from './elementwise.js';
import { mambaConv, selectiveScan } from './mamba.js';
import { linear } from './matmul.js';
import { moeExperts, routerTopK } from './moe.js';
import { rmsNorm } from './norm.js';
import { cpu, CpuKvCache, CpuMambaState, CpuTensor } from './tensor.js';

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
    const cache = new CpuKvCache(numBlocks, blockSize, numKvHeads, headDim);
    this.caches.add(cache);
    return cache;
  }

  createMambaState(numSlots: number, dInner: number, dConv: number, dState: number): MambaState {
    const state = new CpuMambaState(numSlots, dInner, dConv, dState);
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

  embedding = embedding;
  rmsNorm = rmsNorm;
  linear = linear;
  addInPlace = addInPlace;
  siluMul = siluMul;
  splitColumns = splitColumns;
  gatherRows = gatherRows;
  routerTopK = routerTopK;
  moeExperts = moeExperts;
  pagedAttention = pagedAttention;
  mambaConv = mambaConv;
  selectiveScan = selectiveScan;
}
