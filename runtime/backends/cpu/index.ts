// The CPU backend: plain TypeScript over typed arrays, fp32 math (int8 for ExpertsInt8 weights).
// It is the executable specification of every op in ../backend.ts.
import type {
  AttentionShape,
  Backend,
  CacheElementBytes,
  DeviceMemory,
  ExpertSet,
  KvCache,
  LinearWeight,
  MambaState,
  RaggedBatch,
  RandomWindow,
  RawTensorData,
  Routing,
  SampleResult,
  SelectiveScanInputs,
  StepInputs,
  SwiGluWeights,
  Tensor,
} from '../backend.js';
import { decodeInto } from '../../loader/dtype.js';
import { quantizeRows } from '../../quant/expertsint8.js';
import { sampleRow } from '../../sampling/sampler.js';
import { randomWindow } from '../testing.js';
import { pagedAttention } from './attention.js';
import { addInPlace, embedding, gatherRows, siluMul, splitColumns } from './elementwise.js';
import { mambaConv, selectiveScan } from './mamba.js';
import { linear } from './matmul.js';
import { CpuExpertSet, moeExperts, routerTopK } from './moe.js';
import { rmsNorm } from './norm.js';
import { cpu, CpuKvCache, CpuMambaState, CpuTensor, f32Data } from './tensor.js';
import type { SharedMemoryCollective } from '../../parallel/collective.js';

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

function rawToF32(data: RawTensorData, count: number): Float32Array {
  const out = new Float32Array(count);
  decodeInto(data.bytes, data.dtype, 0, count, out);
  return out;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly computesOnCallingThread = true;
  readonly cacheElementBytes: CacheElementBytes = { kv: 4, convState: 4, ssmState: 4 };
  readonly shard: { readonly rank: number; readonly size: number };
  private weightBytes = 0;
  private readonly caches = new Set<CpuKvCache | CpuMambaState>();
  private step?: StepInputs;

  /** Alone, or rank `collective.rank` of a tensor-parallel group whose ranks exchange through `collective`. */
  constructor(private readonly collective?: SharedMemoryCollective) {
    this.shard = { rank: collective?.rank ?? 0, size: collective?.size ?? 1 };
  }

  upload(data: Float32Array | Int8Array | Int32Array, shape: readonly number[]): Tensor {
    this.weightBytes += data.byteLength;
    return new CpuTensor(data, [...shape]);
  }

  uploadMatrix(data: RawTensorData, shape: readonly [number, number]): Tensor {
    return this.upload(rawToF32(data, shape[0] * shape[1]), shape);
  }

  uploadInt8Matrix(data: RawTensorData, shape: readonly [number, number]): { weight: Tensor; scale: Tensor } {
    const [rows, cols] = shape;
    const { q, scale } = quantizeRows(rows, cols, (r, out) => decodeInto(data.bytes, data.dtype, r * cols, cols, out));
    return { weight: this.upload(q, shape), scale: this.upload(scale, [rows]) };
  }

  randomMatrix(shape: readonly [number, number], std: number, seed: number, window?: RandomWindow): Tensor {
    return this.upload(randomWindow(shape[0], shape[1], std, seed, window), shape);
  }

  randomInt8Matrix(shape: readonly [number, number], std: number, seed: number, window?: RandomWindow): { weight: Tensor; scale: Tensor } {
    const values = randomWindow(shape[0], shape[1], std, seed, window);
    return this.uploadInt8Matrix({ dtype: 'F32', bytes: new Uint8Array(values.buffer) }, shape);
  }

  createExpertSet(experts: readonly SwiGluWeights[]): ExpertSet {
    return new CpuExpertSet(experts);
  }

  async download(t: Tensor): Promise<Float32Array> {
    return Float32Array.from(cpu(t, 'download', t.dtype).data);
  }

  deviceMemory(): DeviceMemory | undefined {
    return undefined;
  }

  readonly activationElementBytes = { act: 4, acc: 4 };

  // Activations are garbage-collected host arrays: nothing to set aside.
  reserveActivations(): number {
    return 0;
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

  // Activations are ordinary typed arrays here: the GC frees them, so scopes need no bookkeeping.
  beginStep(inputs: StepInputs): void {
    if (this.step) throw new Error('cpu backend: beginStep while a step is open');
    this.step = inputs;
  }
  beginScope(): void {}
  endScope(): void {}
  endStep(): void {
    this.step = undefined;
  }
  async completeStep(): Promise<void> {
    this.endStep(); // the ops already ran as they were called
  }

  async sample(logits: Tensor): Promise<SampleResult> {
    const inputs = this.stepInputs('sample');
    try {
      const l = cpu(logits, 'sample');
      const rows = inputs.sampling.length;
      if (l.rows !== rows) throw new Error(`sample: ${l.rows} rows of logits for ${rows} sampled rows`);
      const vocab = l.cols;
      const topN = Math.max(0, ...inputs.sampling.map((r) => r.logprobs));
      const out = {
        tokenIds: new Int32Array(rows),
        logprobs: new Float32Array(rows),
        topN,
        topIds: new Int32Array(rows * topN).fill(-1),
        topLogprobs: new Float32Array(rows * topN).fill(NaN),
      };
      inputs.sampling.forEach((row, r) => {
        const s = sampleRow((l.data as Float32Array).subarray(r * vocab, (r + 1) * vocab), row);
        out.tokenIds[r] = s.tokenId;
        out.logprobs[r] = s.logprob;
        out.topIds.set(s.topIds, r * topN);
        out.topLogprobs.set(s.topLogprobs, r * topN);
      });
      return out;
    } finally {
      this.endStep();
    }
  }

  private stepInputs(op: string): StepInputs {
    if (!this.step) throw new Error(`${op}: no step is open (beginStep first)`);
    return this.step;
  }

  residentBytes(): { weights: number; caches: number } {
    let caches = 0;
    for (const c of this.caches) caches += c.bytes;
    return { weights: this.weightBytes, caches };
  }

  dispose(): void {
    this.caches.clear();
    this.weightBytes = 0;
    this.step = undefined;
  }

  // --- ops: each lives in the file of its family ---------------------------------------------
  embedding(table: Tensor, firstId = 0): Tensor {
    const ids = this.stepInputs('embedding').tokenIds;
    if (this.shard.size === 1 && firstId === 0) return embedding(table, ids);
    return embedding(table, ids, { first: firstId, vocab: table.shape[0]! * this.shard.size });
  }
  allReduce(x: Tensor): void {
    if (this.collective) this.collective.allReduce(f32Data(x, 'allReduce'));
  }
  allGatherColumns(x: Tensor): Tensor {
    if (!this.collective) return x;
    const t = cpu(x, 'allGatherColumns');
    return new CpuTensor(this.collective.allGatherColumns(t.data as Float32Array, t.rows, t.cols), [t.rows, t.cols * this.shard.size]);
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
  gatherSampleRows(x: Tensor): Tensor {
    return gatherRows(x, this.stepInputs('gatherSampleRows').sampleRows);
  }
  routerTopK(logits: Tensor, k: number): Routing {
    return routerTopK(logits, k);
  }
  denseMlp(x: Tensor, mlp: ExpertSet): Tensor {
    if (!(mlp instanceof CpuExpertSet) || mlp.numExperts !== 1) throw new Error('denseMlp: expects a one-expert set of the cpu backend');
    const w = mlp.experts[0]!;
    return this.linear(this.siluMul(this.linear(x, w.gate), this.linear(x, w.up)), w.down);
  }
  moeExperts(x: Tensor, routing: Routing, experts: ExpertSet): Tensor {
    if (!(experts instanceof CpuExpertSet)) throw new Error('moeExperts: expert set does not belong to the cpu backend');
    return moeExperts(x, routing, experts.experts);
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
