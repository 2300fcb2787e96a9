// What one tensor-parallel rank holds on its GPU, from the config alone (no allocation): weights as
// deployed (bf16, or ExpertsInt8's int8 + fp32 row scales), KV cache per token and Mamba state per
// sequence, in the CUDA backend's element types. The operator's sizing module (operator/api/sizing.ts)
// must agree with it; a test compares the two.
import { int8WeightBytes, isExpertsInt8Weight } from '../quant/expertsint8.js';
import type { JambaConfig } from './config.js';
import { kvBytesPerToken, stateBytesPerSlot } from './geometry.js';
import { localConfig, type Shard, slicedShape, tensorSlice } from './sharding.js';
import { jambaTensorSpecs } from './weights.js';

/** The CUDA backend's cache element types (bf16 KV and conv state, fp32 SSM state). */
const GPU_CACHE_BYTES = { kv: 2, convState: 2, ssmState: 4 };

export interface RankMemory {
  weightBytes: number;
  kvBytesPerToken: number;
  stateBytesPerSequence: number;
}

export function rankMemory(cfg: JambaConfig, shard: Shard, quantization: 'none' | 'expertsint8'): RankMemory {
  let weightBytes = 0;
  for (const spec of jambaTensorSpecs(cfg)) {
    const shape = slicedShape(spec.shape, tensorSlice(spec.name, cfg, shard));
    weightBytes +=
      quantization === 'expertsint8' && isExpertsInt8Weight(spec.name) ? int8WeightBytes(shape[0]!, shape[1]!) : shape.reduce((a, b) => a * b, 1) * 2;
  }
  const local = localConfig(cfg, shard);
  return { weightBytes, kvBytesPerToken: kvBytesPerToken(local, GPU_CACHE_BYTES), stateBytesPerSequence: stateBytesPerSlot(local, GPU_CACHE_BYTES) };
}
