// The contract between the engine (scheduling, bookkeeping, sampling) and the model (tensors).
// The engine never touches tensors; the model never decides what runs. One `step` call runs every
// sequence scheduled this step through the whole network, so nothing crosses this boundary per
// token per layer.

/** One sequence's share of a step: a prefill chunk or a single decode token. */
export interface StepSequence {
  /** Index into the backend's Mamba state pool (conv + SSM state), owned by this sequence. */
  stateSlot: number;
  /** KV-cache block ids, in order, covering at least cachedLen + tokens.length positions. */
  blockTable: Int32Array;
  /** Tokens of this sequence already in the KV cache / folded into the Mamba state. */
  cachedLen: number;
  /** Tokens to run now (prompt chunk, or the last sampled token). */
  tokens: Int32Array;
  /** Whether to return logits for the last token of `tokens` (false for non-final prefill chunks). */
  wantLogits: boolean;
}

export interface CacheGeometry {
  /** Tokens per KV block. */
  blockSize: number;
  /** KV blocks in the pool (shared by all sequences). */
  numBlocks: number;
  /** Mamba state slots in the pool (one per running sequence). */
  numStateSlots: number;
  /** Bytes of KV cache per token (all attention layers, K and V). */
  kvBytesPerToken: number;
  /** Bytes of Mamba state per slot (all Mamba layers, conv + SSM). */
  stateBytesPerSlot: number;
}

export interface ModelRunner {
  readonly vocabSize: number;
  readonly geometry: CacheGeometry;
  /**
   * Runs one batched forward step. Returns one row of `vocabSize` fp32 logits per sequence with
   * `wantLogits`, in the order given, packed into one array.
   */
  step(seqs: StepSequence[]): Promise<Float32Array>;
  /** Clears a Mamba state slot for reuse by a new sequence (KV blocks need no clearing). */
  resetStateSlot(slot: number): void;
  /** Frees backend memory. */
  dispose(): void;
}

export type Quantization = 'none' | 'expertsint8';

export interface LoadProgress {
  bytesLoaded: number;
  bytesTotal: number;
  /** bytesLoaded / bytesTotal, 0..1. */
  ratio: number;
  /** Seconds left at the rate so far; undefined until there is a rate. */
  etaSeconds?: number;
  /** Tensor just loaded, for the log. */
  tensorName: string;
}

export interface LoadOptions {
  quantization: Quantization;
  backend: 'cpu';
  /** Longest sequence (prompt + generated) the engine will run. */
  maxModelLen: number;
  /** Most sequences running at once: sizes the Mamba state pool. */
  maxNumSeqs: number;
  /** Tokens per KV block (default 16). */
  kvBlockSize?: number;
  /** KV pool size in blocks; default: enough for maxNumSeqs sequences of maxModelLen. */
  kvNumBlocks?: number;
  onProgress?: (p: LoadProgress) => void;
}

export interface LoadedModel {
  runner: ModelRunner;
  /** Parsed config.json fields the engine and server need. */
  info: {
    vocabSize: number;
    eosTokenIds: number[];
    bosTokenId?: number;
    padTokenId?: number;
  };
  /** Bytes of weights as held in memory after conversion (int8 experts count 1 byte + scales). */
  weightBytes: number;
  /** Bytes the same weights would take in bf16 (for the ExpertsInt8 saving). */
  weightBytesBf16: number;
  /**
   * Bytes the backend really holds for weights (the CPU backend keeps non-quantized weights in
   * fp32, so this exceeds weightBytes there). Optional: added by the model loader.
   */
  residentWeightBytes?: number;
}
// Implemented by runtime/models/load.ts: `loadModel(dir: string, opts: LoadOptions): Promise<LoadedModel>`.
