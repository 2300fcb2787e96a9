// Writes a small random Jamba checkpoint (config.json + bf16 safetensors, optionally sharded) for
// tests that need a real model directory: loader errors, batching and chunking equivalence.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normals, rng } from '../../backends/testing.js';
import { bf16Bytes, type TensorToWrite, writeSafetensors } from '../../loader/safetensors-writer.js';
import { parseJambaConfig } from '../config.js';
import { jambaTensorSpecs } from '../weights.js';

export const TINY_CONFIG = {
  model_type: 'jamba',
  vocab_size: 97,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  attn_layer_period: 2,
  attn_layer_offset: 1,
  expert_layer_period: 2,
  expert_layer_offset: 0,
  num_experts: 4,
  num_experts_per_tok: 2,
  mamba_d_state: 8,
  mamba_d_conv: 4,
  mamba_expand: 2,
  mamba_dt_rank: 'auto',
  mamba_conv_bias: true,
  mamba_proj_bias: true,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  eos_token_id: [2, 5],
  bos_token_id: 1,
  pad_token_id: 0,
  hidden_act: 'silu',
  torch_dtype: 'bfloat16',
};

/** Value distribution per tensor, loosely like the fixture generator's (peaked logits, stable Mamba). */
function randomTensor(name: string, shape: number[], random: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('layernorm.weight')) return normals(random, n, 0.1, 1);
  if (name.endsWith('A_log')) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.log(1 + (i % shape[1]!)) + 0.3 * (random() - 0.5);
    return out;
  }
  if (name.endsWith('mamba.D')) return normals(random, n, 0.3, 1);
  if (name.endsWith('dt_proj.bias')) return normals(random, n, 1, -3);
  if (name === 'model.embed_tokens.weight') return normals(random, n, 1);
  if (name.endsWith('.bias')) return normals(random, n, 0.1);
  return normals(random, n, 1.5 / Math.sqrt(shape[shape.length - 1]!));
}

export interface TinyCheckpointOptions {
  config?: Record<string, unknown>;
  seed?: number;
  /** Tensors per shard; when set, writes model-0000k-of-0000n.safetensors + the index. */
  shardSize?: number;
  /** Rewrites tensors before writing (to break the checkpoint on purpose). */
  edit?: (tensors: Record<string, TensorToWrite>) => void;
}

export async function writeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions = {}): Promise<Record<string, unknown>> {
  const config = { ...TINY_CONFIG, ...opts.config };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 1));
  const random = rng(opts.seed ?? 1);
  const tensors: Record<string, TensorToWrite> = {};
  for (const spec of jambaTensorSpecs(parseJambaConfig(JSON.stringify(config)))) {
    tensors[spec.name] = { dtype: 'BF16', shape: spec.shape, data: bf16Bytes(randomTensor(spec.name, spec.shape, random)) };
  }
  opts.edit?.(tensors);
  if (!opts.shardSize) {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return config;
  }
  const names = Object.keys(tensors);
  const shards = Math.ceil(names.length / opts.shardSize);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: Record<string, TensorToWrite> = {};
    for (const name of names.slice(s * opts.shardSize, (s + 1) * opts.shardSize)) {
      part[name] = tensors[name]!;
      weightMap[name] = file;
    }
    await writeSafetensors(join(dir, file), part);
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 1));
  return config;
}
