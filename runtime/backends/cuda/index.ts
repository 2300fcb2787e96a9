// The CUDA backend: the Backend interface over libjamba_cuda.so. Ops do not run when called: each
// appends to the step's program (program.ts) and takes its output from the activation arena
// (arena.ts). `sample` hands the program and the step's packed inputs (step-payload.ts) to the native
// side in one call, on a worker thread, and gets back only token ids and the requested logprobs.
// Decode steps of a batch size seen before replay a CUDA graph.
//
// Element types: weights bf16 (ExpertsInt8: int8 + fp32 row scales), small parameters fp32, matmul
// inputs/outputs and most activations bf16, the residual stream and MoE sums fp32, KV cache bf16,
// Mamba conv state bf16 and SSM state fp32.
import type {
  ActivationPlan,
  AttentionShape,
  Backend,
  CacheElementBytes,
  DeviceMemory,
  DType,
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
  StagingMemory,
  StepInputs,
  SwiGluWeights,
  Tensor,
} from '../backend.js';
import { moePartialFloats } from '../../models/geometry.js';
import { Arena } from './arena.js';
import { pinnedStaging } from './staging.js';
import { CudaTiledInt8, tiledInt8, tiledInt8Bytes, untileInt8 } from './int8-tiles.js';
import { check, type ContextOptions, type NativeLib, openContext } from './native.js';
import { BYTES, type DeviceMatrix, DTYPE, type NativeDType, OP, Program } from './program.js';
import { packStep, type PayloadLayout, payloadBound } from './step-payload.js';
import { wholeWindow } from '../testing.js';
import { cuda, CudaExpertSet, CudaKvCache, CudaMambaState, CudaTensor, overlaps, sameMatrix } from './tensor.js';

/** Most top log-probabilities per sampled row (the sampling kernel's fixed output width). */
const MAX_TOP = 20;
/**
 * Split-K decode attention: blocks (sequence, KV head, slice) up to this many in all, so one long
 * sequence is cut into many slices and a large batch into few (the grid depends on the batch size only).
 */
const DECODE_ATTENTION_BLOCKS = 4096;
/**
 * The decode grid's target: 512 blocks (about 4 per SM on an H200) was the fastest of 256-4096 both for
 * one 256K-token sequence and for 64 sequences of 4K (docs/benchmarks/cuda.md); more slices only add
 * partials to merge. JAMBA_DECODE_ATTENTION_BLOCKS overrides it (a sweep switch) up to the partials' bound.
 */
const decodeAttentionBlocks = Math.min(DECODE_ATTENTION_BLOCKS, Number(process.env['JAMBA_DECODE_ATTENTION_BLOCKS']) || 512);
const MAX_DECODE_SPLITS = 128;
/** Arena, payload and result sizes for a backend used without reserveActivations (tests). */
const DEFAULT_PLAN: ActivationPlan = { activationBytes: 2 * 2 ** 30, maxRows: 8192, maxSeqs: 256, maxBlocksPerSeq: 4096 };
const SOURCE_DTYPE = { BF16: DTYPE.bf16, F16: DTYPE.f16, F32: DTYPE.f32 } as const;

/** Where a backend sits in a tensor-parallel group. */
export interface RankPlacement {
  shard?: { readonly rank: number; readonly size: number };
  /** Ranks on this backend's device (tests run a group on one GPU); default 1. */
  devicePeers?: number;
}

/** As many norms as one RMSNORMS op takes (include/jamba_native.h). */
const MAX_GROUPED_NORMS = 4;

/** A norm recorded as part of the last RMSNORM(S) op. */
interface PendingNorm {
  x: DeviceMatrix;
  weight: number;
  eps: number;
  out: DeviceMatrix;
}

interface Regions {
  arena: Arena;
  payloadDev: number;
  payloadBytes: number;
  resultDev: number;
  resultBytes: number;
  maxSeqs: number;
}

interface OpenStep {
  inputs: StepInputs;
  layout: PayloadLayout;
  payload: Uint8Array;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function bf16ToF32(bits: Uint16Array, out: Float32Array, n: number, srcStride: number, cols: number): void {
  const words = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0, o = 0; i < n; i++) for (let c = 0; c < cols; c++) words[o++] = bits[i * srcStride + c]! << 16;
}

export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly computesOnCallingThread = false;
  readonly cacheElementBytes: CacheElementBytes = { kv: 2, convState: 2, ssmState: 4 };
  readonly activationElementBytes = { act: 2, acc: 4 };
  readonly shard: { readonly rank: number; readonly size: number };
  /** Ranks on this backend's device (1 unless a group's ranks share it, as tests do): each sees its share. */
  private readonly devicePeers: number;
  private readonly program = new Program();
  private readonly owned = new Set<number>();
  private weightBytes = 0;
  private cacheBytes = 0;
  private regions?: Regions;
  private step?: OpenStep;
  /** Mamba slot resets asked for between steps: they run first in the next program. */
  private pendingResets: [ptr: number, bytes: number][] = [];
  /** The operands of the last ADD emitted (a following norm of its destination fuses with it). */
  private lastAdd?: { dst: DeviceMatrix; src: DeviceMatrix };
  /** The norms of the last RMSNORM or RMSNORMS op, which the next independent norm may join. */
  private lastNorms: PendingNorm[] = [];
  private readonly ptrOut = new Float64Array(1);
  private disposed = false;
  /**
   * While a load with staging memory runs: one device buffer, grown as needed, for the raw bytes that a
   * conversion or the quantizer reads once (instead of an allocation and a free per tensor).
   */
  private loadScratch?: { ptr: number; bytes: number };
  private stagedLoads = 0;

  private constructor(
    private readonly lib: NativeLib,
    placement: RankPlacement = {},
  ) {
    this.shard = placement.shard ?? { rank: 0, size: 1 };
    this.devicePeers = placement.devicePeers ?? 1;
  }

  static async open(device = 0, placement: RankPlacement & ContextOptions = {}): Promise<CudaBackend> {
    return new CudaBackend(await openContext(device, placement), placement);
  }

  /** Over a library already initialised (the step-flow tests pass a stand-in: CI has no GPU). */
  static over(lib: NativeLib, placement: RankPlacement = {}): CudaBackend {
    return new CudaBackend(lib, placement);
  }

  /** The native context's id (what a tensor-parallel group is made of). */
  get context(): number {
    return this.lib.context;
  }

  // --- memory ----------------------------------------------------------------------------------

  private malloc(bytes: number, what: string): number {
    check(this.lib, this.lib.malloc(Math.max(bytes, 1), this.ptrOut), `allocating ${what} (${bytes} bytes)`);
    const ptr = this.ptrOut[0]!;
    this.owned.add(ptr);
    return ptr;
  }

  private release(ptr: number): void {
    if (this.owned.delete(ptr)) check(this.lib, this.lib.free(ptr), 'freeing device memory');
  }

  private uploadBytes(ptr: number, data: ArrayBufferView, what: string): void {
    check(this.lib, this.lib.upload(ptr, data, data.byteLength), `uploading ${what}`);
  }

  upload(data: Float32Array | Int8Array | Int32Array, shape: readonly number[]): Tensor {
    if (product(shape) !== data.length) throw new Error(`upload: shape [${shape.join(', ')}] needs ${product(shape)} elements, got ${data.length}`);
    const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Int8Array ? 'i8' : 'i32';
    const ptr = this.malloc(data.byteLength, 'a tensor');
    this.uploadBytes(ptr, data, 'a tensor');
    this.weightBytes += data.byteLength;
    return new CudaTensor(ptr, dtype, [...shape]);
  }

  createStagingMemory(bytes: number): StagingMemory | undefined {
    const staging = pinnedStaging(this.lib, bytes);
    if (!staging) return undefined;
    this.stagedLoads++;
    let open = true;
    return {
      take: staging.take,
      give: staging.give,
      dispose: () => {
        if (!open) return;
        open = false;
        staging.dispose();
        if (--this.stagedLoads === 0 && this.loadScratch) {
          this.release(this.loadScratch.ptr);
          this.loadScratch = undefined;
        }
      },
    };
  }

  private rawBytes(data: RawTensorData, count: number, what: string): number {
    const expected = count * (data.dtype === 'F32' ? 4 : 2);
    if (data.bytes.byteLength !== expected) throw new Error(`${what}: ${data.bytes.byteLength} bytes for ${count} ${data.dtype} elements`);
    return expected;
  }

  /** Raw checkpoint bytes on the device, as they are (caller frees). */
  private stageRaw(data: RawTensorData, count: number, what: string): number {
    const ptr = this.malloc(this.rawBytes(data, count, what), what);
    this.uploadBytes(ptr, data.bytes, what);
    return ptr;
  }

  /** Raw checkpoint bytes on the device for `use`, which reads them once (in the load's scratch while a staged load runs). */
  private withRaw<T>(data: RawTensorData, count: number, what: string, use: (ptr: number) => T): T {
    if (this.stagedLoads === 0) {
      const staged = this.stageRaw(data, count, what);
      try {
        return use(staged);
      } finally {
        this.release(staged);
      }
    }
    const bytes = this.rawBytes(data, count, what);
    if (!this.loadScratch || this.loadScratch.bytes < bytes) {
      if (this.loadScratch) this.release(this.loadScratch.ptr);
      this.loadScratch = undefined; // not the freed buffer, should the allocation below fail
      this.loadScratch = { ptr: this.malloc(bytes, 'the load scratch'), bytes };
    }
    this.uploadBytes(this.loadScratch.ptr, data.bytes, what);
    return use(this.loadScratch.ptr);
  }

  uploadMatrix(data: RawTensorData, shape: readonly [number, number]): Tensor {
    const count = shape[0] * shape[1];
    if (data.dtype === 'BF16') {
      const ptr = this.stageRaw(data, count, 'a matrix');
      this.weightBytes += count * 2;
      return new CudaTensor(ptr, 'bf16', [...shape]);
    }
    const ptr = this.malloc(count * 2, 'a matrix');
    this.withRaw(data, count, 'a matrix', (staged) =>
      check(this.lib, this.lib.convert(ptr, DTYPE.bf16, staged, SOURCE_DTYPE[data.dtype], count), 'converting a matrix to bf16'),
    );
    this.weightBytes += count * 2;
    return new CudaTensor(ptr, 'bf16', [...shape]);
  }

  uploadInt8Matrix(data: RawTensorData, shape: readonly [number, number]): { weight: Tensor; scale: Tensor } {
    const [rows, cols] = shape;
    return this.withRaw(data, rows * cols, 'an expert weight', (staged) => this.quantizeInt8(staged, SOURCE_DTYPE[data.dtype], rows, cols, 'quantizing an expert weight'));
  }

  /** ExpertsInt8 on the device, into the tiled layout the int8 kernels read (int8-tiles.ts). */
  private quantizeInt8(source: number, sourceDtype: number, rows: number, cols: number, what: string): { weight: Tensor; scale: Tensor } {
    const bytes = tiledInt8Bytes(rows, cols);
    const q = this.malloc(bytes, 'an int8 weight');
    const scale = this.malloc(rows * 4, 'int8 scales');
    check(this.lib, this.lib.quantizeInt8(q, scale, source, sourceDtype, rows, cols), what);
    this.weightBytes += bytes + rows * 4;
    return { weight: new CudaTiledInt8(q, rows, cols), scale: new CudaTensor(scale, 'f32', [rows]) };
  }

  /** Fills [rows, cols] bf16 at `ptr` with the random matrix `seed` at `window` (the whole matrix without). */
  private fillRandom(ptr: number, rows: number, cols: number, std: number, seed: number, w = wholeWindow(rows, cols)): void {
    let at = 0;
    for (const [start, end] of w.rowRanges) {
      check(this.lib, this.lib.fillRandomBf16(ptr + at * cols * 2, end - start, cols, std, seed >>> 0, w.fullCols, start, w.colStart), 'filling a random matrix');
      at += end - start;
    }
    if (at !== rows) throw new Error(`random matrix: the window's rows make ${at}, the matrix has ${rows}`);
  }

  randomMatrix([rows, cols]: readonly [number, number], std: number, seed: number, window?: RandomWindow): Tensor {
    const ptr = this.malloc(rows * cols * 2, 'a random matrix');
    this.fillRandom(ptr, rows, cols, std, seed, window);
    this.weightBytes += rows * cols * 2;
    return new CudaTensor(ptr, 'bf16', [rows, cols]);
  }

  randomInt8Matrix([rows, cols]: readonly [number, number], std: number, seed: number, window?: RandomWindow): { weight: Tensor; scale: Tensor } {
    const staged = this.malloc(rows * cols * 2, 'a random matrix');
    this.fillRandom(staged, rows, cols, std, seed, window);
    const quantized = this.quantizeInt8(staged, DTYPE.bf16, rows, cols, 'quantizing a random matrix');
    this.release(staged);
    return quantized;
  }

  createExpertSet(experts: readonly SwiGluWeights[]): ExpertSet {
    if (experts.length === 0) throw new Error('expert set: no experts');
    const kind = experts[0]!.gate.kind;
    const table = new BigUint64Array(experts.length * 6);
    let hidden = 0;
    let ffn = 0;
    experts.forEach((e, i) => {
      const parts = [e.gate, e.up, e.down];
      parts.forEach((w, j) => {
        if (w.kind !== kind) throw new Error(`expert set: expert ${i} mixes ${kind} and ${w.kind} weights`);
        if (w.bias) throw new Error(`expert set: expert ${i} has a bias (Jamba experts have none)`);
        const t = kind === 'int8' ? tiledInt8(w.weight, 'expert set') : cuda(w.weight, 'expert set', 'bf16');
        table[i * 6 + j] = BigInt(t.ptr);
        table[i * 6 + 3 + j] = w.kind === 'int8' ? BigInt(cuda(w.scale, 'expert set', 'f32').ptr) : 0n;
      });
      const gate = cuda(e.gate.weight, 'expert set');
      const [f, h] = gate.shape as [number, number];
      if (i === 0) [ffn, hidden] = [f, h];
      const down = cuda(e.down.weight, 'expert set');
      if (f !== ffn || h !== hidden || cuda(e.up.weight, 'expert set').shape[0] !== ffn || down.shape[0] !== hidden || down.shape[1] !== ffn) {
        throw new Error(`expert set: expert ${i} shapes differ from expert 0 (hidden ${hidden}, ffn ${ffn})`);
      }
    });
    if (hidden % 16 !== 0 || ffn % 16 !== 0) {
      const sharded = this.shard.size > 1 ? ` (this rank's share of the feed-forward size over ${this.shard.size} tensor-parallel ranks)` : '';
      throw new Error(`expert set: the CUDA MoE kernels need hidden and feed-forward sizes that are multiples of 16; got hidden ${hidden}, ffn ${ffn}${sharded}`);
    }
    const ptr = this.malloc(table.byteLength, 'an expert table');
    this.uploadBytes(ptr, table, 'an expert table');
    return new CudaExpertSet(ptr, experts.length, hidden, ffn, kind === 'int8' ? 'i8' : 'bf16');
  }

  async download(t: Tensor): Promise<Float32Array> {
    const x = cuda(t, 'download');
    if (this.step && this.program.length > 0) await this.execute(-1, 0);
    if (x instanceof CudaTiledInt8) {
      const tiled = new Int8Array(x.bytes);
      check(this.lib, this.lib.download(tiled, x.ptr, tiled.byteLength), 'downloading an int8 weight');
      return Float32Array.from(untileInt8(tiled, x.rows, x.cols));
    }
    const elem = BYTES[x.dtype as NativeDType];
    const span = (x.rows - 1) * x.ld + x.cols;
    const raw = new Uint8Array(span * elem);
    check(this.lib, this.lib.download(raw, x.ptr, raw.byteLength), 'downloading a tensor');
    const out = new Float32Array(x.rows * x.cols);
    const pick = <A extends ArrayLike<number>>(src: A): void => {
      for (let r = 0, o = 0; r < x.rows; r++) for (let c = 0; c < x.cols; c++) out[o++] = src[r * x.ld + c]!;
    };
    if (x.dtype === 'bf16') bf16ToF32(new Uint16Array(raw.buffer), out, x.rows, x.ld, x.cols);
    else if (x.dtype === 'f32') pick(new Float32Array(raw.buffer));
    else if (x.dtype === 'i8') pick(new Int8Array(raw.buffer));
    else pick(new Int32Array(raw.buffer));
    return out;
  }

  createKvCache(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number): KvCache {
    const bytes = numBlocks * blockSize * numKvHeads * headDim * 2;
    const k = this.malloc(bytes, `the K cache (${numBlocks} blocks)`);
    const v = this.malloc(bytes, `the V cache (${numBlocks} blocks)`);
    const cache = new CudaKvCache(k, v, numBlocks, blockSize, numKvHeads, headDim);
    this.cacheBytes += cache.bytes;
    // Zeroed before first use: stale bits could be NaN, and a NaN key poisons attention even at weight 0.
    this.pendingResets.push([k, bytes], [v, bytes]);
    return cache;
  }

  createMambaState(numSlots: number, dInner: number, dConv: number, dState: number): MambaState {
    const conv = this.malloc(numSlots * dInner * (dConv - 1) * 2, 'the Mamba conv state');
    const ssm = this.malloc(numSlots * dInner * dState * 4, 'the Mamba SSM state');
    const state = new CudaMambaState(conv, ssm, numSlots, dInner, dConv, dState);
    this.cacheBytes += state.bytes;
    this.pendingResets.push([conv, numSlots * state.convSlotBytes], [ssm, numSlots * state.ssmSlotBytes]);
    return state;
  }

  resetMambaSlot(state: MambaState, slot: number): void {
    if (!(state instanceof CudaMambaState)) throw new Error('resetMambaSlot: state does not belong to the cuda backend');
    if (!Number.isInteger(slot) || slot < 0 || slot >= state.numSlots) throw new Error(`mamba state: slot ${slot} outside 0..${state.numSlots - 1}`);
    this.pendingResets.push([state.conv + slot * state.convSlotBytes, state.convSlotBytes], [state.ssm + slot * state.ssmSlotBytes, state.ssmSlotBytes]);
  }

  deviceMemory(): DeviceMemory {
    const info = new Float64Array(8);
    check(this.lib, this.lib.deviceInfo(info), 'reading device memory');
    if (this.devicePeers === 1) return { freeBytes: info[0]!, totalBytes: info[1]! };
    // Ranks sharing a device: each sees its share, used by what it allocated itself, so every rank's
    // pools come out the same size.
    const totalBytes = Math.floor(info[1]! / this.devicePeers);
    return { totalBytes, freeBytes: Math.max(0, totalBytes - info[6]!) };
  }

  reserveActivations(plan: ActivationPlan): number {
    if (this.regions) {
      this.release(this.regions.arena.base);
      this.release(this.regions.payloadDev);
      this.release(this.regions.resultDev);
      check(this.lib, this.lib.resetGraphs(), 'dropping CUDA graphs');
    }
    // Slack for alignment and the attention split-K partials, which the bound leaves to the backend.
    const partials = DECODE_ATTENTION_BLOCKS * 8 * (256 + 2) * 4; // ≤ 4096 (sequence, KV head, slice) blocks × GQA 8 × head dim 256
    const arenaBytes = Math.ceil(plan.activationBytes * 1.1) + partials + 64 * 2 ** 20;
    const payloadBytes = payloadBound(plan.maxRows, plan.maxSeqs, plan.maxBlocksPerSeq);
    const resultBytes = plan.maxSeqs * (2 + 2 * MAX_TOP) * 4;
    const arena = new Arena(this.malloc(arenaBytes, 'the activation arena'), arenaBytes);
    this.regions = {
      arena,
      payloadDev: this.malloc(payloadBytes, 'the step input buffer'),
      payloadBytes,
      resultDev: this.malloc(resultBytes, 'the step result buffer'),
      resultBytes,
      maxSeqs: plan.maxSeqs,
    };
    return arenaBytes + payloadBytes + resultBytes;
  }

  residentBytes(): { weights: number; caches: number } {
    return { weights: this.weightBytes, caches: this.cacheBytes };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.step = undefined;
    this.regions = undefined;
    this.owned.clear();
    this.weightBytes = 0;
    this.cacheBytes = 0;
    // The context frees its graphs and every allocation, and leaves its group (the group goes with its last rank).
    check(this.lib, this.lib.release(), 'releasing the device context');
  }

  // --- steps -------------------------------------------------------------------------------------

  private get r(): Regions {
    if (!this.regions) this.reserveActivations(DEFAULT_PLAN);
    return this.regions!;
  }

  beginStep(inputs: StepInputs): void {
    if (this.step) throw new Error('cuda backend: beginStep while a step is open');
    const r = this.r;
    if (inputs.sampling.length > r.maxSeqs) throw new Error(`cuda backend: ${inputs.sampling.length} sampled rows, sized for ${r.maxSeqs}`);
    const { layout, bytes } = packStep(inputs);
    if (layout.bytes > r.payloadBytes) throw new Error(`cuda backend: step inputs of ${layout.bytes} bytes exceed the ${r.payloadBytes}-byte buffer`);
    r.arena.reset();
    this.program.reset();
    this.step = { inputs, layout, payload: bytes };
  }

  beginScope(): void {
    this.r.arena.push();
  }

  endScope(): void {
    this.r.arena.pop();
  }

  endStep(): void {
    this.step = undefined;
    this.program.reset();
    this.regions?.arena.reset();
  }

  async completeStep(): Promise<void> {
    try {
      await this.execute(-1, 0);
    } finally {
      this.endStep();
    }
  }

  private open(op: string): OpenStep {
    if (!this.step) throw new Error(`${op}: no step is open (beginStep first)`);
    return this.step;
  }

  /** Device address of a payload section. */
  private payloadAt(offset: number): number {
    return this.r.payloadDev + offset;
  }

  private activation(dtype: DType, rows: number, cols: number, what: string): CudaTensor {
    return new CudaTensor(this.r.arena.alloc(rows * cols * BYTES[dtype as NativeDType], what), dtype, [rows, cols]);
  }

  /** Runs what the step recorded so far (and pending state resets), then downloads `resultBytes` of results. */
  private async execute(graphKey: number, resultBytes: number): Promise<Uint8Array> {
    const step = this.open('execute');
    const r = this.r;
    if (this.pendingResets.length > 0) {
      // Resets run before the step, outside any graph (a graph's program must not vary).
      const resets = new Program();
      for (const [ptr, bytes] of this.pendingResets) resets.emit(OP.MEMSET, ptr, bytes, 0);
      this.pendingResets = [];
      const none = new Uint8Array(0);
      check(this.lib, await this.lib.run(resets.view(), resets.length, none, 0, 0, none, 0, 0, -1), 'resetting Mamba state slots');
    }
    const result = new Uint8Array(resultBytes);
    const program = this.program.view();
    const rc = await this.lib.run(program, program.length, step.payload, step.layout.bytes, r.payloadDev, result, resultBytes, r.resultDev, graphKey);
    this.program.reset();
    check(this.lib, rc, 'running a step');
    return result;
  }

  async sample(logits: Tensor): Promise<SampleResult> {
    try {
      const step = this.open('sample');
      const l = cuda(logits, 'sample', 'f32');
      const rows = step.inputs.sampling.length;
      if (l.rows !== rows) throw new Error(`sample: ${l.rows} rows of logits for ${rows} sampled rows`);
      if (!l.contiguous) throw new Error('sample: logits must be contiguous');
      this.program.emit(OP.SAMPLE, l.ptr, rows, l.cols, this.payloadAt(step.layout.sampling), this.r.resultDev);
      return await this.runSampling(step, this.graphKey(step));
    } finally {
      this.endStep();
    }
  }

  async replay(): Promise<SampleResult | undefined> {
    const step = this.open('replay');
    const key = this.graphKey(step);
    if (key < 0 || this.lib.hasGraph(key) !== 1) return undefined;
    try {
      return await this.runSampling(step, key);
    } finally {
      this.endStep();
    }
  }

  /** Decode steps of one batch size share a CUDA graph (jb_run); other steps run eagerly. */
  private graphKey(step: OpenStep): number {
    return step.layout.pureDecode ? step.layout.numSeqs : -1;
  }

  /** Runs the step (its recorded program, or its graph) and decodes the sampled ids and logprobs. */
  private async runSampling(step: OpenStep, graphKey: number): Promise<SampleResult> {
    const rows = step.inputs.sampling.length;
    const raw = await this.execute(graphKey, rows * (2 + 2 * MAX_TOP) * 4);
    const words = new Int32Array(raw.buffer);
    const floats = new Float32Array(raw.buffer);
    const topN = Math.max(0, ...step.inputs.sampling.map((s) => s.logprobs));
    const out = {
      tokenIds: words.slice(0, rows),
      logprobs: floats.slice(rows, 2 * rows),
      topN,
      topIds: new Int32Array(rows * topN),
      topLogprobs: new Float32Array(rows * topN),
    };
    for (let i = 0; i < rows; i++) {
      out.topIds.set(words.subarray(2 * rows + i * MAX_TOP, 2 * rows + i * MAX_TOP + topN), i * topN);
      out.topLogprobs.set(floats.subarray(2 * rows + rows * MAX_TOP + i * MAX_TOP, 2 * rows + rows * MAX_TOP + i * MAX_TOP + topN), i * topN);
    }
    return out;
  }

  /** Milliseconds the device spent on the last step (benchmarks). */
  lastStepMs(): number {
    return this.lib.lastRunMs();
  }

  /** Benchmarks: the device time `flush` reports counts from here (see JB_OP_TIMER). */
  startTimer(): void {
    this.open('startTimer');
    this.program.emit(OP.TIMER);
  }

  /** Benchmarks: runs what the open step recorded and returns the device milliseconds it took. */
  async flush(): Promise<number> {
    await this.execute(-1, 0);
    return this.lib.lastRunMs();
  }

  /** With JAMBA_PROFILE_OPS=1: device ms and calls per op since the last read (undefined when off). */
  opProfile(): Record<string, { ms: number; calls: number }> | undefined {
    const out = new Float64Array(2 * Object.keys(OP).length);
    if (this.lib.opProfile(out) !== 0) return undefined;
    const profile: Record<string, { ms: number; calls: number }> = {};
    for (const [name, code] of Object.entries(OP)) if (out[2 * code + 1]! > 0) profile[name] = { ms: out[2 * code]!, calls: out[2 * code + 1]! };
    return profile;
  }

  /** Benchmarks: the measured copy bandwidth (GB/s, read + written) and bf16 GEMM rate (TFLOP/s). */
  measureCeilings(): { copyGBps: number; gemmTflops: number } {
    const out = new Float64Array(2);
    check(this.lib, this.lib.measureCeilings(out), 'measuring the device ceilings');
    return { copyGBps: out[0]!, gemmTflops: out[1]! };
  }

  // --- ops ------------------------------------------------------------------------------------------

  /** x as bf16 (a conversion op when it is not). */
  private bf16(x: CudaTensor, op: string): CudaTensor {
    if (x.dtype === 'bf16') return x;
    const out = this.activation('bf16', x.rows, x.cols, `${op} input`);
    this.program.emit(OP.CONVERT, x, out.ptr, DTYPE.bf16);
    return out;
  }

  allReduce(x: Tensor): void {
    if (this.shard.size === 1) return;
    this.open('allReduce');
    const xs = cuda(x, 'allReduce', 'f32', 'bf16');
    if (!xs.contiguous) throw new Error('allReduce: x must be contiguous');
    this.program.emit(OP.ALL_REDUCE, xs);
  }

  allGatherColumns(x: Tensor): Tensor {
    if (this.shard.size === 1) return x;
    this.open('allGatherColumns');
    const xs = cuda(x, 'allGatherColumns', 'f32');
    if (!xs.contiguous) throw new Error('allGatherColumns: x must be contiguous');
    const out = this.activation('f32', xs.rows, xs.cols * this.shard.size, 'allGatherColumns');
    this.program.emit(OP.ALL_GATHER, xs, out.ptr);
    return out;
  }

  embedding(table: Tensor, firstId = 0): Tensor {
    const step = this.open('embedding');
    const t = cuda(table, 'embedding', 'bf16', 'f32');
    const [vocab, hidden] = t.shape as [number, number];
    const rows = step.layout.numRows;
    const out = this.activation('f32', rows, hidden, 'embedding');
    this.program.emit(OP.EMBED, t.ptr, DTYPE[t.dtype as NativeDType], vocab, hidden, this.payloadAt(step.layout.ids), rows, out.ptr, firstId);
    return out;
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    this.open('rmsNorm');
    const xs = cuda(x, 'rmsNorm', 'f32', 'bf16');
    const w = cuda(weight, 'rmsNorm', 'f32');
    if (w.cols !== xs.cols) throw new Error(`rmsNorm: weight of ${w.cols} for rows of ${xs.cols}`);
    const out = this.activation('bf16', xs.rows, xs.cols, 'rmsNorm');
    // A norm of the tensor the op just before added into (the residual stream between sublayers): one
    // kernel does both, unless the output overlaps what was added (arena addresses are reused).
    const add = this.program.lastOp === OP.ADD ? this.lastAdd : undefined;
    if (add && sameMatrix(add.dst, xs) && !overlaps(out, add.src)) {
      this.program.dropLastOp();
      this.program.emit(OP.ADD_RMSNORM, add.dst, add.src, w.ptr, eps, out.ptr, DTYPE.bf16);
      return out;
    }
    // Norms of independent tensors in a row (Mamba's dt, B and C): one launch for all of them, which
    // runs where the first one was recorded, so a later norm joins only if it reads none of the earlier
    // outputs and writes none of their inputs.
    const norm: PendingNorm = { x: xs, weight: w.ptr, eps, out };
    const group = this.program.lastOp === OP.RMSNORM || this.program.lastOp === OP.RMSNORMS ? this.lastNorms : [];
    const joins =
      group.length > 0 &&
      group.length < MAX_GROUPED_NORMS &&
      group[0]!.x.rows === xs.rows &&
      group.every((n) => !overlaps(n.out, xs) && !overlaps(out, n.x));
    if (joins) {
      this.program.dropLastOp();
      this.lastNorms = [...group, norm];
      this.program.emit(OP.RMSNORMS, this.lastNorms.length, ...this.lastNorms.flatMap((n) => [n.x, n.weight, n.eps, n.out.ptr, DTYPE.bf16]));
    } else {
      this.lastNorms = [norm];
      this.program.emit(OP.RMSNORM, xs, w.ptr, eps, out.ptr, DTYPE.bf16);
    }
    return out;
  }

  linear(x: Tensor, w: LinearWeight, outType?: 'f32'): Tensor {
    this.open('linear');
    const xs = this.bf16(cuda(x, 'linear', 'f32', 'bf16'), 'linear');
    const weight = w.kind === 'int8' ? tiledInt8(w.weight, 'linear') : cuda(w.weight, 'linear', 'bf16');
    const [n, k] = weight.shape as [number, number];
    if (k !== xs.cols) throw new Error(`linear: x has ${xs.cols} columns, the weight [${n}, ${k}] wants ${k}`);
    const bias = w.bias ? cuda(w.bias, 'linear', 'f32').ptr : 0;
    const dtype: DType = outType ?? 'bf16';
    const out = this.activation(dtype, xs.rows, n, 'linear');
    if (w.kind === 'int8') {
      this.program.emit(OP.INT8_GEMM, xs, weight.ptr, cuda(w.scale, 'linear', 'f32').ptr, n, bias, out.ptr, DTYPE[dtype as NativeDType]);
    } else {
      this.program.emit(OP.GEMM, xs, weight.ptr, n, bias, out.ptr, DTYPE[dtype as NativeDType]);
    }
    return out;
  }

  addInPlace(dst: Tensor, src: Tensor): void {
    this.open('addInPlace');
    const d = cuda(dst, 'addInPlace', 'f32', 'bf16');
    const s = cuda(src, 'addInPlace', 'f32', 'bf16');
    if (d.rows !== s.rows || d.cols !== s.cols) throw new Error(`addInPlace: [${d.shape.join(', ')}] += [${s.shape.join(', ')}]`);
    this.program.emit(OP.ADD, d, s);
    this.lastAdd = { dst: d, src: s };
  }

  siluMul(gate: Tensor, up: Tensor): Tensor {
    this.open('siluMul');
    const g = cuda(gate, 'siluMul', 'f32', 'bf16');
    const u = cuda(up, 'siluMul', 'f32', 'bf16');
    if (g.rows !== u.rows || g.cols !== u.cols) throw new Error(`siluMul: [${g.shape.join(', ')}] vs [${u.shape.join(', ')}]`);
    const out = this.activation('bf16', g.rows, g.cols, 'siluMul');
    this.program.emit(OP.SILU_MUL, g, u, out.ptr);
    return out;
  }

  splitColumns(x: Tensor, widths: readonly number[]): Tensor[] {
    const xs = cuda(x, 'splitColumns');
    const total = widths.reduce((a, b) => a + b, 0);
    if (total !== xs.cols) throw new Error(`splitColumns: widths sum to ${total}, x has ${xs.cols} columns`);
    let from = 0;
    return widths.map((w) => {
      const view = xs.columns(from, w);
      from += w;
      return view;
    });
  }

  gatherSampleRows(x: Tensor): Tensor {
    const step = this.open('gatherSampleRows');
    const xs = cuda(x, 'gatherSampleRows');
    const n = step.layout.numSamples;
    const out = this.activation(xs.dtype, n, xs.cols, 'gatherSampleRows');
    this.program.emit(OP.GATHER, xs, this.payloadAt(step.layout.sampleRows), n, out.ptr);
    return out;
  }

  routerTopK(logits: Tensor, k: number): Routing {
    this.open('routerTopK');
    const l = cuda(logits, 'routerTopK', 'f32', 'bf16');
    if (!Number.isInteger(k) || k < 1 || k > l.cols || k > 8) throw new Error(`routerTopK: k=${k} with ${l.cols} experts (at most 8)`);
    const experts = this.activation('i32', l.rows, k, 'router experts');
    const weights = this.activation('f32', l.rows, k, 'router weights');
    this.program.emit(OP.ROUTER, l, k, experts.ptr, weights.ptr);
    return { experts, weights };
  }

  moeExperts(x: Tensor, routing: Routing, experts: ExpertSet): Tensor {
    const ids = cuda(routing.experts, 'moeExperts', 'i32');
    const wts = cuda(routing.weights, 'moeExperts', 'f32');
    return this.experts(x, ids, wts, experts, 'moeExperts');
  }

  denseMlp(x: Tensor, mlp: ExpertSet): Tensor {
    if (mlp.numExperts !== 1) throw new Error('denseMlp: expects a one-expert set');
    return this.experts(x, undefined, undefined, mlp, 'denseMlp');
  }

  /** The MoE op; without routing every row goes to expert 0 with weight 1 (a dense MLP). */
  private experts(x: Tensor, ids: CudaTensor | undefined, wts: CudaTensor | undefined, experts: ExpertSet, op: string): Tensor {
    this.open(op);
    if (!(experts instanceof CudaExpertSet)) throw new Error(`${op}: expert set does not belong to the cuda backend`);
    const xs = this.bf16(cuda(x, op, 'f32', 'bf16'), op);
    const rows = xs.rows;
    const k = ids ? ids.cols : 1;
    if (xs.cols !== experts.hidden || (ids && ids.rows !== rows)) throw new Error(`${op}: x [${xs.shape.join(', ')}] does not match the experts' hidden ${experts.hidden}`);
    const pairs = rows * k;
    const e = experts.numExperts;
    // Routing books (moe.cu's Books): counts, offsets, pair lists, the grouped GEMM's tile map and its
    // count, the tail-tile map and its count; 4 ints of slack.
    const alignInts = 2 * e + 1 + 2 * pairs + 2 * (Math.ceil(pairs / 8) + e) + 1 + 2 * e + 1 + 4;
    const align = this.r.arena.alloc(alignInts * 4, 'moe routing');
    // h [pairs, ffn] (bf16, or fp16 scaled per 64 channels), then x's rows as fp16 and the inverse scales
    // of x's rows and of h's blocks: the decode kernels' fp16 inputs (moe.cu, GemmParams::a16).
    const hBytes = pairs * experts.ffn * 2 + rows * experts.hidden * 2 + (rows + pairs * Math.ceil(experts.ffn / 64)) * 4;
    const h = this.r.arena.alloc(hBytes, 'moe intermediate');
    const partialBytes = moePartialFloats(pairs, experts.hidden, experts.ffn) * 4;
    const partial = this.r.arena.alloc(partialBytes, 'moe partial sums');
    const out = this.activation('f32', rows, experts.hidden, op);
    this.program.emit(OP.MOE, xs, ids?.ptr ?? 0, wts?.ptr ?? 0, k, experts.table, e, experts.ffn, DTYPE[experts.weightDtype], align, h, partial, partialBytes, out.ptr);
    return out;
  }

  pagedAttention(q: Tensor, k: Tensor, v: Tensor, cache: KvCache, batch: RaggedBatch, shape: AttentionShape): Tensor {
    const step = this.open('pagedAttention');
    if (batch !== step.inputs.batch) throw new Error('pagedAttention: the batch is not the step\'s');
    if (!(cache instanceof CudaKvCache)) throw new Error('pagedAttention: cache does not belong to the cuda backend');
    // bf16 inputs (the tensor-core kernels' type); the model's projections are bf16 already.
    const qs = this.bf16(cuda(q, 'pagedAttention', 'bf16', 'f32'), 'pagedAttention');
    const ks = this.bf16(cuda(k, 'pagedAttention', 'bf16', 'f32'), 'pagedAttention');
    const vs = this.bf16(cuda(v, 'pagedAttention', 'bf16', 'f32'), 'pagedAttention');
    const { numHeads, numKvHeads, headDim } = shape;
    if (qs.cols !== numHeads * headDim || ks.cols !== numKvHeads * headDim || vs.cols !== numKvHeads * headDim) {
      throw new Error('pagedAttention: q, k, v widths do not match the heads');
    }
    if (numKvHeads !== cache.numKvHeads || headDim !== cache.headDim) throw new Error('pagedAttention: the cache has other heads');
    if (numHeads % numKvHeads !== 0) throw new Error(`pagedAttention: ${numHeads} heads over ${numKvHeads} KV heads`);
    if (headDim > 256 || headDim % 8 !== 0) throw new Error(`pagedAttention: head dim ${headDim} (a multiple of 8 up to 256)`);
    const L = step.layout;
    const maxSplits = Math.min(MAX_DECODE_SPLITS, Math.max(1, Math.floor(decodeAttentionBlocks / Math.max(1, L.numDecode * numKvHeads))));
    const partial = L.numDecode > 0 ? this.r.arena.alloc(L.numDecode * numHeads * maxSplits * (headDim + 2) * 4, 'attention partials') : 0;
    const out = this.activation('bf16', qs.rows, numHeads * headDim, 'pagedAttention');
    this.program.emit(
      OP.ATTENTION, qs, ks, vs, cache.k, cache.v, cache.blockSize, numHeads, numKvHeads, headDim, shape.scale,
      this.payloadAt(L.meta), L.numSeqs, this.payloadAt(L.rowSeq), this.payloadAt(L.blockTables),
      this.payloadAt(L.prefillTiles), L.numPrefillTiles, this.payloadAt(L.decodeSeqs), L.numDecode, maxSplits, partial, out.ptr,
    );
    return out;
  }

  mambaConv(x: Tensor, weight: Tensor, bias: Tensor | undefined, state: MambaState, batch: RaggedBatch): Tensor {
    const step = this.open('mambaConv');
    if (batch !== step.inputs.batch) throw new Error('mambaConv: the batch is not the step\'s');
    if (!(state instanceof CudaMambaState)) throw new Error('mambaConv: state does not belong to the cuda backend');
    const xs = cuda(x, 'mambaConv', 'bf16', 'f32');
    const w = cuda(weight, 'mambaConv', 'f32');
    if (xs.cols !== state.dInner || w.shape[0] !== state.dInner || w.shape[1] !== state.dConv) throw new Error('mambaConv: shapes do not match the state');
    const b = bias ? cuda(bias, 'mambaConv', 'f32').ptr : 0;
    const L = step.layout;
    const out = this.activation('bf16', xs.rows, state.dInner, 'mambaConv');
    this.program.emit(OP.CONV, xs, w.ptr, b, state.conv, state.dConv, this.payloadAt(L.meta), L.numSeqs, this.payloadAt(L.rowSeq), out.ptr);
    return out;
  }

  selectiveScan(inputs: SelectiveScanInputs, state: MambaState, batch: RaggedBatch): Tensor {
    const step = this.open('selectiveScan');
    if (batch !== step.inputs.batch) throw new Error('selectiveScan: the batch is not the step\'s');
    if (!(state instanceof CudaMambaState)) throw new Error('selectiveScan: state does not belong to the cuda backend');
    const t = (x: Tensor, name: string) => cuda(x, `selectiveScan ${name}`, 'bf16', 'f32');
    const x = t(inputs.x, 'x');
    const negA = cuda(inputs.negA, 'selectiveScan negA', 'f32');
    const d = cuda(inputs.d, 'selectiveScan d', 'f32');
    if (x.cols !== state.dInner || negA.shape[1] !== state.dState) throw new Error('selectiveScan: shapes do not match the state');
    const L = step.layout;
    const out = this.activation('bf16', x.rows, state.dInner, 'selectiveScan');
    this.program.emit(
      OP.SCAN, x, t(inputs.dtRaw, 'dt'), negA.ptr, t(inputs.b, 'b'), t(inputs.c, 'c'), d.ptr, t(inputs.z, 'z'), state.ssm, state.dState,
      this.payloadAt(L.meta), L.numSeqs, this.payloadAt(L.decodeSeqs), L.numDecode, out.ptr,
    );
    return out;
  }
}
