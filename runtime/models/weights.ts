// Checkpoint tensor names and shapes of a Jamba model, from its config: one table per block kind,
// in the checkpoint's own naming (see DESIGN.md §2).
import { type JambaConfig, layerFeedForward, layerMixer } from './config.js';

export interface TensorSpec {
  name: string;
  shape: number[];
}

type Table = [suffix: string, shape: number[]][];

function attentionTable(c: JambaConfig): Table {
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  return [
    ['self_attn.q_proj.weight', [q, c.hiddenSize]],
    ['self_attn.k_proj.weight', [kv, c.hiddenSize]],
    ['self_attn.v_proj.weight', [kv, c.hiddenSize]],
    ['self_attn.o_proj.weight', [c.hiddenSize, q]],
  ];
}

function mambaTable(c: JambaConfig): Table {
  const di = c.mambaDInner;
  const table: Table = [
    ['mamba.in_proj.weight', [2 * di, c.hiddenSize]],
    ['mamba.conv1d.weight', [di, 1, c.mambaDConv]],
    ['mamba.x_proj.weight', [c.mambaDtRank + 2 * c.mambaDState, di]],
    ['mamba.dt_proj.weight', [di, c.mambaDtRank]],
    ['mamba.dt_proj.bias', [di]],
    ['mamba.A_log', [di, c.mambaDState]],
    ['mamba.D', [di]],
    ['mamba.out_proj.weight', [c.hiddenSize, di]],
    ['mamba.dt_layernorm.weight', [c.mambaDtRank]],
    ['mamba.b_layernorm.weight', [c.mambaDState]],
    ['mamba.c_layernorm.weight', [c.mambaDState]],
  ];
  if (c.mambaConvBias) table.push(['mamba.conv1d.bias', [di]]);
  if (c.mambaProjBias) table.push(['mamba.in_proj.bias', [2 * di]], ['mamba.out_proj.bias', [c.hiddenSize]]);
  return table;
}

function swiGluTable(c: JambaConfig, prefix: string): Table {
  return [
    [`${prefix}gate_proj.weight`, [c.intermediateSize, c.hiddenSize]],
    [`${prefix}up_proj.weight`, [c.intermediateSize, c.hiddenSize]],
    [`${prefix}down_proj.weight`, [c.hiddenSize, c.intermediateSize]],
  ];
}

function moeTable(c: JambaConfig): Table {
  const table: Table = [['feed_forward.router.weight', [c.numExperts, c.hiddenSize]]];
  for (let j = 0; j < c.numExperts; j++) table.push(...swiGluTable(c, `feed_forward.experts.${j}.`));
  return table;
}

/** Every tensor the checkpoint must hold, in model order. */
export function jambaTensorSpecs(c: JambaConfig): TensorSpec[] {
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize] }];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const table: Table = [
      ['input_layernorm.weight', [c.hiddenSize]],
      ...(layerMixer(c, i) === 'attention' ? attentionTable(c) : mambaTable(c)),
      ['pre_ff_layernorm.weight', [c.hiddenSize]],
      ...(layerFeedForward(c, i) === 'moe' ? moeTable(c) : swiGluTable(c, 'feed_forward.')),
    ];
    for (const [suffix, shape] of table) specs.push({ name: `model.layers.${i}.${suffix}`, shape });
  }
  specs.push({ name: 'model.final_layernorm.weight', shape: [c.hiddenSize] });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize] });
  return specs;
}

/** Tensors a checkpoint may hold that the model does not read (a tied lm_head saved anyway). */
export function ignorableTensors(c: JambaConfig): Set<string> {
  return new Set(c.tieWordEmbeddings ? ['lm_head.weight'] : []);
}
