// The op interface every backend implements (CPU, CUDA). The model in runtime/models/ is written
// only against this file.
//
// Rules of the interface:
// - Tensors are opaque handles to backend-owned memory (host arrays on CPU, device memory on CUDA).
//   The model never reads their contents; only `download` (tests) and `sample` bring data back.
// - Activations are 2-D row-major [rows, cols]: one row per token of the step, all sequences of the
//   step concatenated (a "ragged batch"). Every op runs over all rows of the step at once, so nothing
//   crosses the interface per element, per token or per sequence.
// - A step is bracketed by `beginStep(inputs)` … `sample(logits)` or `completeStep()` (or `endStep()`
//   to discard it): the backend sees the step's layout and host inputs once, at the start (a GPU
//   backend uploads them in one copy).
//   Ops may only record work: a GPU backend runs the whole step when `sample` is awaited, so a step
//   crosses to the native side once.
// - Ops return fresh tensors, except `addInPlace`, which updates the residual stream. Returned tensors
//   are activations: they live until the end of the innermost `beginScope`/`endScope` bracket, or of
//   the step, so a GPU backend can hand out activation memory from a stack arena. Weights (`upload*`),
//   KV caches, Mamba state and expert sets persist until `dispose()`.
// - Element types are the backend's business: the CPU backend computes in fp32; a GPU backend keeps
//   weights and most activations in bf16 (accumulating in fp32) and the KV cache in bf16.

export type DType = 'f32' | 'bf16' | 'i8' | 'i32';

/** Opaque handle to a backend-owned tensor. */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/**
 * Host memory that a backend places checkpoint bytes from fastest (page-locked for a GPU: uploads from it
 * are DMA transfers at the bus's rate instead of copies through the driver's own staging). The loader
 * reads tensors into it and gives each buffer back once the backend has placed it.
 */
export interface StagingMemory {
  /** A buffer of `bytes`, or undefined when none is free now (the caller reads into plain memory). */
  take(bytes: number): Uint8Array | undefined;
  /** Returns a buffer `take` gave, once its bytes are placed (others are ignored). */
  give(buf: Uint8Array): void;
  /** Frees it (after the load). */
  dispose(): void;
}

/** Raw little-endian checkpoint bytes of a floating-point tensor, as stored in safetensors. */
export interface RawTensorData {
  readonly dtype: 'BF16' | 'F16' | 'F32';
  readonly bytes: Uint8Array;
}

/**
 * A linear layer's weight, y = x · Wᵀ (+ bias). `dense`: weight [out, in] in the backend's matrix type.
 * `int8`: ExpertsInt8 weight [out, in] with one fp32 scale per output row; the kernel accumulates
 * Σ q·x in (at least) fp32 and then multiplies by the row's scale (dequantization inside the kernel;
 * no wider copy of the weight exists).
 */
export type LinearWeight =
  | { readonly kind: 'dense'; readonly weight: Tensor; readonly bias?: Tensor }
  | { readonly kind: 'int8'; readonly weight: Tensor; readonly scale: Tensor; readonly bias?: Tensor };

/** One SwiGLU MLP: down(silu(gate(x)) * up(x)). Used for MoE experts and dense MLPs alike. */
export interface SwiGluWeights {
  readonly gate: LinearWeight; // [ffn, hidden]
  readonly up: LinearWeight; // [ffn, hidden]
  readonly down: LinearWeight; // [hidden, ffn]
}

/**
 * Where a local [rows, cols] matrix sits in a full one of `fullCols` columns: its rows are the full
 * rows of `rowRanges` in order, its columns [colStart, colStart + cols).
 */
export interface RandomWindow {
  readonly fullCols: number;
  readonly rowRanges: readonly (readonly [number, number])[];
  readonly colStart: number;
}

/** Opaque handle: one MoE layer's experts, laid out as the backend's grouped kernel wants them. */
export interface ExpertSet {
  readonly numExperts: number;
  readonly hidden: number;
  readonly ffn: number;
}

/** One sequence's rows in a step's ragged batch. */
export interface SequenceSegment {
  /** First row of this sequence in the step's activations. */
  readonly rowStart: number;
  /** Rows (tokens) this sequence contributes to the step. */
  readonly numRows: number;
  /** Tokens already in its KV cache / folded into its Mamba state (position of the first row). */
  readonly cachedLen: number;
  /** Its slot in every Mamba state pool. */
  readonly stateSlot: number;
  /** Its KV block ids, in order (covering cachedLen + numRows positions). */
  readonly blockTable: Int32Array;
}

/** The layout of one step: all sequences' tokens concatenated, segment by segment. */
export interface RaggedBatch {
  readonly numRows: number;
  readonly segments: readonly SequenceSegment[];
}

/**
 * How to pick one row's next token. Filters apply to softmax(logits / temperature) in vLLM's order:
 * min-p, then top-k, then top-p; ties at a threshold are kept. The draw is an inverse-CDF walk in
 * token-id order with the uniform `counterUniform(seed, counter)`, so a seed reproduces its tokens
 * whatever else runs in the step, and a recomputed (preempted) sequence draws the same token.
 */
export interface SamplingRow {
  /** 0 means greedy (argmax; the lowest id wins ties). */
  readonly temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables. */
  readonly topP: number;
  /** Keep the k most likely tokens (and ties with the k-th); 0 disables. */
  readonly topK: number;
  /** Keep tokens with probability ≥ minP · max probability; 0 disables. */
  readonly minP: number;
  /** 32-bit seed of the request's random stream. */
  readonly seed: number;
  /** Index of the token being drawn in that stream (the number of tokens generated before it). */
  readonly counter: number;
  /** Log-probabilities of the n most likely tokens under the raw logits (0: only none). -1: no logprobs at all. */
  readonly logprobs: number;
}

/** Sampled tokens of one step, one entry per sampled row, in the order given. */
export interface SampleResult {
  readonly tokenIds: Int32Array;
  /** log_softmax(raw logits) at the chosen token; NaN where the row asked for no logprobs. */
  readonly logprobs: Float32Array;
  /** Per row `topN` entries: the most likely tokens under the raw logits, most likely first (ties: lower id). */
  readonly topN: number;
  readonly topIds: Int32Array;
  readonly topLogprobs: Float32Array;
}

/** The host inputs of one step, handed to the backend once. */
export interface StepInputs {
  readonly batch: RaggedBatch;
  /** Token ids of the step's rows. */
  readonly tokenIds: Int32Array;
  /** Rows whose logits are sampled, with how. */
  readonly sampleRows: Int32Array;
  readonly sampling: readonly SamplingRow[];
}

/** Opaque handle: one attention layer's paged KV cache, K and V each [numBlocks, blockSize, numKvHeads, headDim]. */
export interface KvCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/** Opaque handle: one Mamba layer's state pool, conv [slots, dInner, dConv-1] and SSM [slots, dInner, dState]. */
export interface MambaState {
  readonly numSlots: number;
  readonly dInner: number;
  readonly dConv: number;
  readonly dState: number;
}

/** Bytes per element of what the backend keeps per token and per sequence (sizes the pools). */
export interface CacheElementBytes {
  readonly kv: number;
  readonly convState: number;
  readonly ssmState: number;
}

/**
 * A routing slot whose expert is not in the set given to `moeExperts` (under expert parallelism, an expert
 * held by another rank): the slot contributes nothing.
 */
export const SKIPPED_EXPERT = -1;

/** Router output: for each row, the top-k experts and their (not renormalised) softmax weights. */
export interface Routing {
  readonly experts: Tensor; // [rows, k] i32: an expert of the set, or SKIPPED_EXPERT
  readonly weights: Tensor; // [rows, k] f32
}

export interface AttentionShape {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Multiplies q·k before the softmax (Jamba: 1/sqrt(headDim)). */
  readonly scale: number;
}

export interface SelectiveScanInputs {
  readonly x: Tensor; // [rows, dInner]   conv output (after SiLU)
  readonly dtRaw: Tensor; // [rows, dInner]   dt_proj(dt) + bias, before softplus
  readonly negA: Tensor; // [dInner, dState] A = -exp(A_log), precomputed at load
  readonly b: Tensor; // [rows, dState]
  readonly c: Tensor; // [rows, dState]
  readonly d: Tensor; // [dInner]
  readonly z: Tensor; // [rows, dInner]   gate
}

/** What the largest step can hold, for `reserveActivations`. */
export interface ActivationPlan {
  readonly activationBytes: number;
  readonly maxRows: number;
  readonly maxSeqs: number;
  /** KV blocks one sequence can hold (its block table's length). */
  readonly maxBlocksPerSeq: number;
}

export interface DeviceMemory {
  readonly freeBytes: number;
  readonly totalBytes: number;
}

export interface Backend {
  readonly name: string;
  /**
   * True when ops compute on the calling thread as they are called (CPU): the model then yields to the
   * event loop between layers so long prefills do not starve HTTP. False when ops only record work.
   */
  readonly computesOnCallingThread: boolean;
  readonly cacheElementBytes: CacheElementBytes;
  /** This backend's place in a tensor-parallel group (rank 0 of 1 when it runs the model alone). */
  readonly shard: { readonly rank: number; readonly size: number };

  // --- memory -------------------------------------------------------------------------------
  /** A tensor from exact host data (small parameters, test inputs): kept in fp32 / int8 / int32. */
  upload(data: Float32Array | Int8Array | Int32Array, shape: readonly number[]): Tensor;
  /**
   * About `bytes` of staging memory for loading checkpoint bytes (see StagingMemory); undefined where
   * plain memory is as good (the CPU keeps what it is given) or none can be had.
   */
  createStagingMemory?(bytes: number): StagingMemory | undefined;
  /** A GEMM weight [out, in] from checkpoint bytes, kept in the backend's matrix type (CPU fp32, GPU bf16). */
  uploadMatrix(data: RawTensorData, shape: readonly [number, number]): Tensor;
  /**
   * An ExpertsInt8 weight [out, in] from checkpoint bytes: per output row, scale = max|W|/127 and
   * q = clamp(round_half_even(W/scale), ±127) in IEEE fp32 (runtime/quant/expertsint8.ts), done where
   * the weight will live (on the GPU for a GPU backend).
   */
  uploadInt8Matrix(data: RawTensorData, shape: readonly [number, number]): { weight: Tensor; scale: Tensor };
  /**
   * A matrix [rows, cols] of N(0, std²)-like random values made where it lives (benchmarks' random
   * weights). Each value is a function of (seed, its index in the full matrix): `window` says where this
   * matrix sits in a larger one (a tensor-parallel rank's shard), so the ranks' shards are slices of the
   * same full matrix.
   */
  randomMatrix(shape: readonly [number, number], std: number, seed: number, window?: RandomWindow): Tensor;
  /** A random matrix quantized by the ExpertsInt8 rule where it lives, as uploadInt8Matrix would. */
  randomInt8Matrix(shape: readonly [number, number], std: number, seed: number, window?: RandomWindow): { weight: Tensor; scale: Tensor };
  /** Groups one MoE layer's experts for `moeExperts` (all dense or all int8, same shapes). */
  createExpertSet(experts: readonly SwiGluWeights[]): ExpertSet;
  /** Copies a tensor back to the host as fp32 (tests, debugging). Ends nothing. */
  download(t: Tensor): Promise<Float32Array>;
  createKvCache(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number): KvCache;
  createMambaState(numSlots: number, dInner: number, dConv: number, dState: number): MambaState;
  /** Zeroes one slot's conv and SSM state. */
  resetMambaSlot(state: MambaState, slot: number): void;
  /** Device memory now, for sizing pools; undefined where memory is the host's. */
  deviceMemory(): DeviceMemory | undefined;
  /** Element sizes of activations (bf16/fp32 on a GPU), for the activation bound. */
  readonly activationElementBytes: { readonly act: number; readonly acc: number };
  /**
   * Sets aside device memory for the largest step: its activations (see models/geometry.ts
   * activationBytesBound), its host inputs and workspaces; returns the bytes reserved. 0 on the host.
   */
  reserveActivations(plan: ActivationPlan): number;
  /** Bytes held by weights (`upload*`, expert sets) and by caches/state pools. */
  residentBytes(): { weights: number; caches: number };
  dispose(): void;

  // --- steps ---------------------------------------------------------------------------------
  /** Starts a step. Activations made until the step ends are released together. */
  beginStep(inputs: StepInputs): void;
  /** Activations made until the matching endScope are released by it (nesting allowed). */
  beginScope(): void;
  endScope(): void;
  /**
   * Samples one token per `inputs.sampleRows` row from logits [sampleRows, vocab] and ends the step.
   * The only await of a step.
   */
  sample(logits: Tensor): Promise<SampleResult>;
  /**
   * Right after beginStep: runs the whole step, sampling included, from what the backend captured for a
   * step of the same shape before (a CUDA graph), and ends it; undefined when it has nothing captured,
   * and the model then records the step op by op as usual. Saves recording what would not be used.
   */
  replay?(): Promise<SampleResult | undefined>;
  /** Runs what the step recorded and ends it, when no row is sampled (a prefill chunk). */
  completeStep(): Promise<void>;
  /** Ends a step and discards what it recorded (a step that failed or is abandoned). */
  endStep(): void;

  // --- ops over the step's rows --------------------------------------------------------------
  /**
   * out[r] = table[ids[r] − firstId] for the step's token ids; rows whose id is outside
   * [firstId, firstId + table rows) are zero (a vocabulary-parallel slice). table [vocab, hidden] → [rows, hidden].
   */
  embedding(table: Tensor, firstId?: number): Tensor;
  /** out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight. x [rows, n], weight [n]. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor;
  /**
   * out = x · Wᵀ (+ bias). x [rows, in] → [rows, out], in the backend's activation type, or in fp32
   * when `out` is 'f32' (logits, router logits).
   */
  linear(x: Tensor, w: LinearWeight, out?: 'f32'): Tensor;
  /** dst += src, same shape. */
  addInPlace(dst: Tensor, src: Tensor): void;
  /** out = silu(gate) * up, same shape. */
  siluMul(gate: Tensor, up: Tensor): Tensor;
  /** Splits the columns of x [rows, Σwidths] into tensors [rows, widths[i]] (views where the backend can). */
  splitColumns(x: Tensor, widths: readonly number[]): Tensor[];
  /** The step's sampled rows of x (inputs.sampleRows), in that order. */
  gatherSampleRows(x: Tensor): Tensor;

  // --- tensor parallelism ----------------------------------------------------------------------
  /** x ← Σ over the group's ranks of their x (same shape everywhere), in place. Alone: nothing. */
  allReduce(x: Tensor): void;
  /** The ranks' x [rows, cols] side by side in rank order → [rows, size·cols]. Alone: x. */
  allGatherColumns(x: Tensor): Tensor;

  // --- mixture of experts --------------------------------------------------------------------
  /** Softmax (fp32) over all experts of each row of logits [rows, numExperts], then top-k; no renormalisation. */
  routerTopK(logits: Tensor, k: number): Routing;
  /**
   * out[r] = Σ_j routing.weights[r, j] · expert_{routing.experts[r, j]}(x[r]), each expert a SwiGLU MLP;
   * slots of SKIPPED_EXPERT are left out of the sum. Grouped: each expert runs once over all rows routed to it.
   */
  moeExperts(x: Tensor, routing: Routing, experts: ExpertSet): Tensor;
  /** A dense SwiGLU MLP given as a one-expert set: every row through expert 0 with weight 1 → [rows, hidden]. */
  denseMlp(x: Tensor, mlp: ExpertSet): Tensor;

  // --- attention -----------------------------------------------------------------------------
  /**
   * Writes k, v [rows, numKvHeads·headDim] of the new tokens into the cache at positions
   * cachedLen.. of each sequence (through its block table), then causal GQA attention of q
   * [rows, numHeads·headDim] over each sequence's cached + new keys. No positional embedding.
   * → [rows, numHeads·headDim].
   */
  pagedAttention(q: Tensor, k: Tensor, v: Tensor, cache: KvCache, batch: RaggedBatch, shape: AttentionShape): Tensor;

  // --- Mamba ---------------------------------------------------------------------------------
  /**
   * Depthwise causal conv1d over (each sequence's conv state ++ its new rows), then SiLU; updates the
   * conv state to the last dConv-1 inputs. x [rows, dInner], weight [dInner, dConv], bias [dInner].
   */
  mambaConv(x: Tensor, weight: Tensor, bias: Tensor | undefined, state: MambaState, batch: RaggedBatch): Tensor;
  /**
   * Selective scan, per sequence from its SSM state: delta = softplus(dtRaw);
   * h = exp(delta·A)·h + delta·B·x; y = h·C + D·x; out = y·silu(z). Updates the SSM state.
   * → [rows, dInner].
   */
  selectiveScan(inputs: SelectiveScanInputs, state: MambaState, batch: RaggedBatch): Tensor;
}
