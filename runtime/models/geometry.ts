// Memory planning: the KV cache and Mamba state pools, and the activation arena a step needs, from
// the config, the engine's limits and what the backend holds per element. On a GPU the KV pool takes
// whatever the memory budget leaves after weights, state and activations (as vLLM's
// --gpu-memory-utilization); on the CPU it is sized for max-num-seqs sequences of max-model-len.
import type { CacheElementBytes, DeviceMemory } from '../backends/backend.js';
import type { CacheGeometry } from '../engine/model-runner.js';
import { type JambaConfig, layerFeedForward, layerMixer } from './config.js';

export interface PoolLimits {
  maxModelLen: number;
  maxNumSeqs: number;
  kvBlockSize?: number;
  kvNumBlocks?: number;
}

function layerCounts(cfg: JambaConfig): { attention: number; mamba: number } {
  let attention = 0;
  for (let i = 0; i < cfg.numHiddenLayers; i++) if (layerMixer(cfg, i) === 'attention') attention++;
  return { attention, mamba: cfg.numHiddenLayers - attention };
}

export function kvBytesPerToken(cfg: JambaConfig, bytes: CacheElementBytes): number {
  return layerCounts(cfg).attention * 2 * cfg.numKeyValueHeads * cfg.headDim * bytes.kv;
}

export function stateBytesPerSlot(cfg: JambaConfig, bytes: CacheElementBytes): number {
  const perChannel = (cfg.mambaDConv - 1) * bytes.convState + cfg.mambaDState * bytes.ssmState;
  return layerCounts(cfg).mamba * cfg.mambaDInner * perChannel;
}

function checkLimits(limits: PoolLimits, blockSize: number): void {
  for (const [name, v] of [['maxModelLen', limits.maxModelLen], ['maxNumSeqs', limits.maxNumSeqs], ['kvBlockSize', blockSize]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`load options: ${name} must be a positive integer, got ${v}`);
  }
}

/** Pools sized for the limits: maxNumSeqs sequences of maxModelLen tokens (unless kvNumBlocks says otherwise). */
export function cacheGeometry(cfg: JambaConfig, limits: PoolLimits, bytes: CacheElementBytes): CacheGeometry {
  const blockSize = limits.kvBlockSize ?? 16;
  checkLimits(limits, blockSize);
  const numBlocks = limits.kvNumBlocks ?? limits.maxNumSeqs * Math.ceil(limits.maxModelLen / blockSize);
  if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new Error(`load options: kvNumBlocks must be a positive integer, got ${numBlocks}`);
  return {
    blockSize,
    numBlocks,
    numStateSlots: limits.maxNumSeqs,
    maxModelLen: limits.maxModelLen,
    kvBytesPerToken: kvBytesPerToken(cfg, bytes),
    stateBytesPerSlot: stateBytesPerSlot(cfg, bytes),
  };
}

const GIB = 2 ** 30;
const gib = (n: number): string => `${(n / GIB).toFixed(2)} GiB`;

/** Sequences at once on the CPU by default: its steps are slow, and each sequence holds a Mamba state. */
export const CPU_DEFAULT_MAX_NUM_SEQS = 16;
/** Sequences at once on a GPU by default (vLLM's long-standing max_num_seqs). */
export const GPU_DEFAULT_MAX_NUM_SEQS = 256;

/**
 * max-num-seqs on a GPU when none is given: 256, or as many as keep their Mamba state within a quarter
 * of what `utilization` × total leaves after the weights (the rest is for the KV cache and activations),
 * at least 1. A batch of 16 left an H200 mostly idle under 64 concurrent streams.
 */
export function defaultDeviceMaxNumSeqs(cfg: JambaConfig, bytes: CacheElementBytes, memory: DeviceMemory, utilization: number): number {
  const left = Math.floor(utilization * memory.totalBytes) - (memory.totalBytes - memory.freeBytes);
  const perSlot = stateBytesPerSlot(cfg, bytes);
  if (perSlot === 0) return GPU_DEFAULT_MAX_NUM_SEQS;
  return Math.max(1, Math.min(GPU_DEFAULT_MAX_NUM_SEQS, Math.floor(left / 4 / perSlot)));
}

/**
 * Pools sized from device memory: of `utilization` × total, what weights (already resident, so
 * counted by total − free), the state pool and `reservedBytes` (activations, workspaces) leave goes
 * to the KV cache. Refuses, with what to change, when that cannot hold one sequence of maxModelLen.
 */
export function deviceCacheGeometry(
  cfg: JambaConfig,
  limits: PoolLimits,
  bytes: CacheElementBytes,
  memory: DeviceMemory,
  utilization: number,
  reservedBytes: number,
): CacheGeometry {
  const blockSize = limits.kvBlockSize ?? 16;
  checkLimits(limits, blockSize);
  const perToken = kvBytesPerToken(cfg, bytes);
  const state = limits.maxNumSeqs * stateBytesPerSlot(cfg, bytes);
  const used = memory.totalBytes - memory.freeBytes;
  const budget = Math.floor(utilization * memory.totalBytes) - used - state - reservedBytes;
  const blocksPerSeq = Math.ceil(limits.maxModelLen / blockSize);
  let numBlocks = limits.kvNumBlocks;
  if (numBlocks === undefined) {
    // An attention-free model keeps no KV: the block books still need an entry per sequence.
    numBlocks = perToken === 0 ? limits.maxNumSeqs * blocksPerSeq : Math.floor(Math.max(0, budget) / (perToken * blockSize));
    if (numBlocks < blocksPerSeq) {
      const fits = numBlocks * blockSize;
      throw new Error(
        `GPU memory: ${gib(utilization * memory.totalBytes)} usable (gpu-memory-utilization ${utilization}), ${gib(used)} taken by weights, ` +
          `${gib(state)} by Mamba state for ${limits.maxNumSeqs} sequences and ${gib(reservedBytes)} by activations leave room for ` +
          `${fits} tokens of KV cache, fewer than one sequence of max-model-len ${limits.maxModelLen}. ` +
          'Lower --max-model-len, --max-num-seqs or --max-num-batched-tokens, raise --gpu-memory-utilization, or use ExpertsInt8.',
      );
    }
  }
  return {
    blockSize,
    numBlocks,
    numStateSlots: limits.maxNumSeqs,
    maxModelLen: limits.maxModelLen,
    kvBytesPerToken: perToken,
    stateBytesPerSlot: stateBytesPerSlot(cfg, bytes),
  };
}

/**
 * fp32 partial sums of an MoE over `pairs` (token, expert) pairs, K split into slices (moe.cu picks how
 * many fit): up to 16 slices for very few rows, where the gated GEMM's are kept too (twice the FFN wide),
 * 8 for small batches (or two of the gated GEMM's: a dense MLP of 33-64 rows on Hopper), up to 4 for
 * decode-sized batches, one (the down projection's sum) beyond.
 */
export function moePartialFloats(pairs: number, hidden: number, ffn: number): number {
  if (pairs <= 16) return 16 * pairs * Math.max(hidden, 2 * ffn);
  if (pairs <= 64) return pairs * Math.max(8 * hidden, 2 * 2 * ffn);
  return (pairs <= 1024 ? 4 : 1) * pairs * hidden;
}

/** The most moePartialFloats asks for any batch of at most `maxPairs` pairs (it grows within each regime). */
function moePartialFloatsUpTo(maxPairs: number, hidden: number, ffn: number): number {
  return Math.max(...[16, 64, 1024, maxPairs].map((p) => moePartialFloats(Math.min(p, maxPairs), hidden, ffn)));
}

/** Element sizes of a backend's activations, for the arena bound. */
export interface ActivationBytes {
  /** Matmul inputs/outputs and most activations (bf16 on a GPU). */
  readonly act: number;
  /** The residual stream, routing weights and MoE partial sums (fp32). */
  readonly acc: number;
}

/**
 * Upper bound of the activation memory one step needs with `maxTokens` rows and `maxSeqs` sampled
 * rows: the step-wide tensors (residual stream, final norm, logits) plus the largest layer scope
 * (each decoder layer frees its temporaries). Mirrors the tensors the model asks for; a GPU backend
 * checks it at run time.
 */
export function activationBytesBound(cfg: JambaConfig, maxTokens: number, maxSeqs: number, e: ActivationBytes): number {
  const T = maxTokens;
  const H = cfg.hiddenSize;
  const di = cfg.mambaDInner;
  const q = cfg.numAttentionHeads * cfg.headDim;
  const kv = cfg.numKeyValueHeads * cfg.headDim;
  const k = cfg.numExpertsPerTok;
  const ffn = cfg.intermediateSize;
  const stepWide = T * H * e.acc + maxSeqs * (2 * H * e.act + cfg.vocabSize * e.acc);
  const mamba = T * (2 * H * e.act + 2 * di * e.act + di * e.act + (cfg.mambaDtRank + 2 * cfg.mambaDState) * 2 * e.act + di * e.acc + di * e.act);
  const attention = T * (2 * H * e.act + (2 * q + 2 * kv) * e.act);
  // x's rows again in 16 bits, a scale per row and per 64 channels of each pair: the GPU's fp16 decode inputs.
  const halfRows = (pairsPerRow: number) => T * (H * e.act + (1 + pairsPerRow * Math.ceil(ffn / 64)) * e.acc);
  const moe =
    T * (H * e.act + cfg.numExperts * e.acc + k * 8 + k * 4 + k * ffn * e.act + H * e.acc) + halfRows(k) + moePartialFloatsUpTo(T * k, H, ffn) * e.acc + 4 * 4 * cfg.numExperts;
  const mlp = T * (H * e.act + 3 * ffn * e.act + H * e.acc) + halfRows(1);
  let widest = 0;
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const mixer = layerMixer(cfg, i) === 'attention' ? attention : mamba;
    const ff = layerFeedForward(cfg, i) === 'moe' ? moe : mlp;
    widest = Math.max(widest, mixer, ff);
  }
  return stepWide + widest;
}
