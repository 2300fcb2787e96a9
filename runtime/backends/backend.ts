// The op interface every backend implements (CPU now, CUDA next). The model in runtime/models/ is
// written only against this file.
//
// Rules of the interface:
// - Tensors are opaque handles to backend-owned memory (host arrays on CPU, device memory on CUDA).
//   The model never reads their contents; only `download` brings data back to the host.
// - Activations are 2-D row-major [rows, cols]: one row per token of the step, all sequences of the
//   step concatenated (a "ragged batch"). Every op runs over all rows of the step at once, so nothing
//   crosses the interface per element, per token or per sequence.
// - Ops that need to know where one sequence ends and the next begins (attention, Mamba conv and
//   scan) take the step's `RaggedBatch` descriptor; a GPU backend uploads it once per step.
// - Ops return fresh tensors, except `addInPlace`, which updates the residual stream. Tensors an
//   op returns are activations: they live until `endStep()`, so a GPU backend can hand out
//   activation memory from one arena per step and recycle it in bulk (the CPU backend leaves them
//   to the GC). Weights (`upload`), KV caches and Mamba state persist until `dispose()`.

export type DType = 'f32' | 'i8' | 'i32';

/** Opaque handle to a backend-owned tensor. */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/**
 * A linear layer's weight, y = x · Wᵀ (+ bias). `dense`: fp32 weight [out, in]. `int8`: ExpertsInt8
 * weight [out, in] with one fp32 scale per output row; the kernel accumulates Σ q·x in (at least) fp32 and then
 * multiplies by the row's scale (dequantization inside the kernel; no fp32 copy of the weight).
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

/** Router output: for each row, the top-k experts and their (not renormalised) softmax weights. */
export interface Routing {
  readonly experts: Tensor; // [rows, k] i32
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

export interface Backend {
  readonly name: string;

  // --- memory -------------------------------------------------------------------------------
  /** Makes a backend tensor from host data (the CPU backend adopts the array without copying). */
  upload(data: Float32Array | Int8Array | Int32Array, shape: readonly number[]): Tensor;
  /** Copies an f32 tensor back to the host. */
  download(t: Tensor): Promise<Float32Array>;
  createKvCache(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number): KvCache;
  createMambaState(numSlots: number, dInner: number, dConv: number, dState: number): MambaState;
  /** Zeroes one slot's conv and SSM state. */
  resetMambaSlot(state: MambaState, slot: number): void;
  /** Brackets one forward step: activations made in between are released by endStep(). */
  beginStep(): void;
  endStep(): void;
  /** Bytes held by tensors made with `upload` and by caches/state pools. */
  residentBytes(): { weights: number; caches: number };
  dispose(): void;

  // --- ops over the step's rows --------------------------------------------------------------
  /** out[r] = table[ids[r]]. table [vocab, hidden] → [rows, hidden]. */
  embedding(table: Tensor, ids: Int32Array): Tensor;
  /** out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight. x [rows, n], weight [n]. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor;
  /** out = x · Wᵀ (+ bias). x [rows, in] → [rows, out]. */
  linear(x: Tensor, w: LinearWeight): Tensor;
  /** dst += src, same shape. */
  addInPlace(dst: Tensor, src: Tensor): void;
  /** out = silu(gate) * up, same shape. */
  siluMul(gate: Tensor, up: Tensor): Tensor;
  /** Splits the columns of x [rows, Σwidths] into tensors [rows, widths[i]]. */
  splitColumns(x: Tensor, widths: readonly number[]): Tensor[];
  /** out[i] = x[rows[i]]. */
  gatherRows(x: Tensor, rows: Int32Array): Tensor;

  // --- mixture of experts --------------------------------------------------------------------
  /** Softmax (fp32) over all experts of each row of logits [rows, numExperts], then top-k; no renormalisation. */
  routerTopK(logits: Tensor, k: number): Routing;
  /**
   * out[r] = Σ_j routing.weights[r, j] · expert_{routing.experts[r, j]}(x[r]), each expert a SwiGLU MLP.
   * Grouped: each expert runs once over all rows routed to it.
   */
  moeExperts(x: Tensor, routing: Routing, experts: readonly SwiGluWeights[]): Tensor;

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
