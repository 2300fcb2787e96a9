// The contract between the engine (scheduling, bookkeeping, sampling) and the model (tensors).
// The engine never touches tensors; the model never decides what runs. One `step` call runs every
// sequence scheduled this step through the whole network, so nothing crosses this boundary per
// token per layer. The runner also samples (on the device where there is one), so only token ids and
// the requested logprobs come back.
import type { Backend, SampleResult, SamplingRow } from '../backends/backend.js';

export type { SampleResult, SamplingRow };

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
  /** How to sample a token from the logits of the last of `tokens`; absent for non-final prefill chunks. */
  sample?: SamplingRow;
}

export interface CacheGeometry {
  /** Tokens per KV block. */
  blockSize: number;
  /** KV blocks in the pool (shared by all sequences). */
  numBlocks: number;
  /** Mamba state slots in the pool (one per running sequence). */
  numStateSlots: number;
  /** Longest sequence (prompt + output) the pools are sized for. */
  maxModelLen: number;
  /** Bytes of KV cache per token (all attention layers, K and V). */
  kvBytesPerToken: number;
  /** Bytes of Mamba state per slot (all Mamba layers, conv + SSM). */
  stateBytesPerSlot: number;
}

export interface ModelRunner {
  readonly vocabSize: number;
  readonly geometry: CacheGeometry;
  /**
   * Runs one batched forward step and samples one token for each sequence with `sample`, in the
   * order given.
   */
  step(seqs: StepSequence[]): Promise<SampleResult>;
  /** Clears a Mamba state slot for reuse by a new sequence (KV blocks need no clearing). */
  resetStateSlot(slot: number): void;
  /** Frees backend memory. */
  dispose(): void;
}

export type Quantization = 'none' | 'expertsint8';

/** `auto` picks CUDA when a GPU is visible, else the CPU. */
export type BackendChoice = 'auto' | 'cpu' | 'cuda';

export function isBackendChoice(name: string): name is BackendChoice {
  return name === 'auto' || name === 'cpu' || name === 'cuda';
}

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
  backend: BackendChoice;
  /** GPUs (ranks) to split the model over; default 1. */
  tensorParallelSize?: number;
  /** Share of device memory for weights, KV cache and state (GPU backends); default 0.9. */
  gpuMemoryUtilization?: number;
  /** Longest sequence (prompt + generated) the engine will run; default depends on the backend. */
  maxModelLen?: number;
  /** Most tokens in one step: sizes a GPU backend's activation arena. */
  maxNumBatchedTokens?: number;
  /**
   * Most sequences running at once: sizes the Mamba state pool. Default: 16 on the CPU; on a GPU 256,
   * or fewer where their state would take more than a quarter of the memory the weights leave
   * (defaultDeviceMaxNumSeqs in models/geometry.ts).
   */
  maxNumSeqs?: number;
  /** Tokens per KV block (default 16). */
  kvBlockSize?: number;
  /**
   * KV pool size in blocks; default: on the CPU, enough for maxNumSeqs sequences of maxModelLen; on a
   * GPU, what fits in the memory left after weights, state and activations.
   */
  kvNumBlocks?: number;
  onProgress?: (p: LoadProgress) => void;
}

export interface LoadedModel {
  runner: ModelRunner;
  /** The backend that runs the model (`auto` resolved). */
  backendName: string;
  /** That backend (benchmarks read its timings and memory); absent when ranks in workers own theirs. */
  backend?: Backend;
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
  /** How loading the checkpoint went (absent for random weights). */
  loadStats?: { bytes: number; seconds: number; readWaitSeconds: number; placeSeconds: number };
}
// Implemented by runtime/models/load.ts: `loadModel(dir: string, opts: LoadOptions): Promise<LoadedModel>`.
