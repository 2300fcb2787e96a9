// Sizes of the KV cache and Mamba state pools, from the config and the engine's limits.
import type { CacheGeometry } from '../engine/model-runner.js';
import { type JambaConfig, layerMixer } from './config.js';

const FP32_BYTES = 4; // the CPU backend keeps caches and state in fp32

export interface PoolLimits {
  maxModelLen: number;
  maxNumSeqs: number;
  kvBlockSize?: number;
  kvNumBlocks?: number;
}

export function cacheGeometry(cfg: JambaConfig, limits: PoolLimits): CacheGeometry {
  const blockSize = limits.kvBlockSize ?? 16;
  for (const [name, v] of [['maxModelLen', limits.maxModelLen], ['maxNumSeqs', limits.maxNumSeqs], ['kvBlockSize', blockSize]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`load options: ${name} must be a positive integer, got ${v}`);
  }
  const numBlocks = limits.kvNumBlocks ?? limits.maxNumSeqs * Math.ceil(limits.maxModelLen / blockSize);
  if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new Error(`load options: kvNumBlocks must be a positive integer, got ${numBlocks}`);
  let attentionLayers = 0;
  for (let i = 0; i < cfg.numHiddenLayers; i++) if (layerMixer(cfg, i) === 'attention') attentionLayers++;
  const mambaLayers = cfg.numHiddenLayers - attentionLayers;
  return {
    blockSize,
    numBlocks,
    numStateSlots: limits.maxNumSeqs,
    kvBytesPerToken: attentionLayers * 2 * cfg.numKeyValueHeads * cfg.headDim * FP32_BYTES,
    stateBytesPerSlot: mambaLayers * cfg.mambaDInner * (cfg.mambaDConv - 1 + cfg.mambaDState) * FP32_BYTES,
  };
}
