// config.json of a Jamba checkpoint: parsed, defaulted as transformers' JambaConfig does, and
// validated. Every error names config.json and the field.

export interface JambaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  attnLayerPeriod: number;
  attnLayerOffset: number;
  expertLayerPeriod: number;
  expertLayerOffset: number;
  numExperts: number;
  numExpertsPerTok: number;
  mambaDState: number;
  mambaDConv: number;
  mambaExpand: number;
  mambaDInner: number;
  mambaDtRank: number;
  mambaConvBias: boolean;
  mambaProjBias: boolean;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  eosTokenIds: number[];
  bosTokenId?: number;
  padTokenId?: number;
  maxPositionEmbeddings: number;
  /** The checkpoint's declared dtype (informational; the loader reads each tensor's own dtype). */
  torchDtype?: string;
}

export type LayerMixer = 'attention' | 'mamba';
export type LayerFeedForward = 'moe' | 'mlp';

/** Layer i is attention iff i % attn_layer_period == attn_layer_offset, else Mamba. */
export function layerMixer(cfg: JambaConfig, layer: number): LayerMixer {
  return layer % cfg.attnLayerPeriod === cfg.attnLayerOffset ? 'attention' : 'mamba';
}

/** Layer i has an MoE iff i % expert_layer_period == expert_layer_offset (and there is more than one expert). */
export function layerFeedForward(cfg: JambaConfig, layer: number): LayerFeedForward {
  return cfg.numExperts > 1 && layer % cfg.expertLayerPeriod === cfg.expertLayerOffset ? 'moe' : 'mlp';
}

class ConfigReader {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly file: string,
  ) {}

  fail(field: string, why: string): never {
    throw new Error(`${this.file}: ${field} ${why}`);
  }

  private get(field: string, fallback: unknown): unknown {
    const v = this.raw[field];
    return v === undefined ? fallback : v;
  }

  int(field: string, fallback?: number, min = 1): number {
    const v = this.get(field, fallback);
    if (v === undefined) this.fail(field, 'is missing');
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `must be an integer, got ${JSON.stringify(v)}`);
    if (v < min) this.fail(field, `must be at least ${min}, got ${v}`);
    return v;
  }

  optionalInt(field: string, fallback?: number): number | undefined {
    const v = this.get(field, fallback);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.fail(field, `must be a token id, got ${JSON.stringify(v)}`);
    return v;
  }

  positive(field: string, fallback: number): number {
    const v = this.get(field, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(field, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.get(field, fallback);
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  value(field: string, fallback?: unknown): unknown {
    return this.get(field, fallback);
  }
}

/** Parses the text of config.json; `file` names it in errors. */
export function parseJambaConfig(text: string, file = 'config.json'): JambaConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new Error(`${file}: not valid JSON`, { cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: must be a JSON object`);
  const r = new ConfigReader(raw as Record<string, unknown>, file);

  const modelType = r.value('model_type');
  if (modelType !== undefined && modelType !== 'jamba') r.fail('model_type', `must be "jamba", got ${JSON.stringify(modelType)}`);
  const hiddenAct = r.value('hidden_act', 'silu');
  if (hiddenAct !== 'silu') r.fail('hidden_act', `must be "silu" (the only activation supported), got ${JSON.stringify(hiddenAct)}`);
  const slidingWindow = r.value('sliding_window');
  if (slidingWindow !== undefined && slidingWindow !== null) r.fail('sliding_window', 'is not supported (must be null)');

  // Defaults are transformers' JambaConfig defaults.
  const hiddenSize = r.int('hidden_size', 4096);
  const numAttentionHeads = r.int('num_attention_heads', 32);
  // transformers treats a null num_key_value_heads as "no GQA".
  const numKeyValueHeads = r.value('num_key_value_heads') === null ? numAttentionHeads : r.int('num_key_value_heads', numAttentionHeads);
  if (hiddenSize % numAttentionHeads !== 0) {
    r.fail('num_attention_heads', `(${numAttentionHeads}) must divide hidden_size (${hiddenSize})`);
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    r.fail('num_key_value_heads', `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  const numExperts = r.int('num_experts', 16);
  const numExpertsPerTok = r.int('num_experts_per_tok', 2);
  // With one expert every layer is a dense MLP (as in transformers), so top-k is unused.
  if (numExperts > 1 && numExpertsPerTok > numExperts) r.fail('num_experts_per_tok', `(${numExpertsPerTok}) must not exceed num_experts (${numExperts})`);
  const attnLayerPeriod = r.int('attn_layer_period', 8);
  const attnLayerOffset = r.int('attn_layer_offset', 4, 0);
  if (attnLayerOffset >= attnLayerPeriod) r.fail('attn_layer_offset', `(${attnLayerOffset}) must be smaller than attn_layer_period (${attnLayerPeriod})`);
  const expertLayerPeriod = r.int('expert_layer_period', 2);
  const expertLayerOffset = r.int('expert_layer_offset', 1, 0);
  if (expertLayerOffset >= expertLayerPeriod) {
    r.fail('expert_layer_offset', `(${expertLayerOffset}) must be smaller than expert_layer_period (${expertLayerPeriod})`);
  }
  const mambaExpand = r.int('mamba_expand', 2);
  const dtRankRaw = r.value('mamba_dt_rank', 'auto');
  const mambaDtRank = dtRankRaw === 'auto' ? Math.ceil(hiddenSize / 16) : r.int('mamba_dt_rank');

  const eosRaw = r.value('eos_token_id', 2);
  const eosList = Array.isArray(eosRaw) ? eosRaw : eosRaw === null ? [] : [eosRaw];
  for (const id of eosList) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) r.fail('eos_token_id', `must be a token id or a list of them, got ${JSON.stringify(eosRaw)}`);
  }
  const vocabSize = r.int('vocab_size', 65536);
  const bosTokenId = r.optionalInt('bos_token_id', 1);
  const padTokenId = r.optionalInt('pad_token_id', 0);
  const specialIds: [string, unknown][] = [
    ...eosList.map((id): [string, unknown] => ['eos_token_id', id]),
    ['bos_token_id', bosTokenId],
    ['pad_token_id', padTokenId],
  ];
  for (const [field, id] of specialIds) {
    if (typeof id === 'number' && id >= vocabSize) r.fail(field, `(${id}) must be below vocab_size (${vocabSize})`);
  }
  const torchDtype = r.value('torch_dtype') ?? r.value('dtype');
  if (torchDtype !== undefined && typeof torchDtype !== 'string') r.fail('torch_dtype', `must be a string, got ${JSON.stringify(torchDtype)}`);

  return {
    vocabSize,
    hiddenSize,
    intermediateSize: r.int('intermediate_size', 14336),
    numHiddenLayers: r.int('num_hidden_layers', 32),
    numAttentionHeads,
    numKeyValueHeads,
    headDim: hiddenSize / numAttentionHeads,
    attnLayerPeriod,
    attnLayerOffset,
    expertLayerPeriod,
    expertLayerOffset,
    numExperts,
    numExpertsPerTok,
    mambaDState: r.int('mamba_d_state', 16),
    mambaDConv: r.int('mamba_d_conv', 4),
    mambaExpand,
    mambaDInner: mambaExpand * hiddenSize,
    mambaDtRank,
    mambaConvBias: r.bool('mamba_conv_bias', true),
    mambaProjBias: r.bool('mamba_proj_bias', false),
    rmsNormEps: r.positive('rms_norm_eps', 1e-6),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    eosTokenIds: eosList as number[],
    bosTokenId,
    padTokenId,
    maxPositionEmbeddings: r.int('max_position_embeddings', 262144),
    torchDtype: torchDtype as string | undefined,
  };
}
