import { layerFeedForward, layerMixer, parseJambaConfig } from './config.js';

const parse = (fields: Record<string, unknown>) => parseJambaConfig(JSON.stringify(fields), '/m/config.json');

test('defaults are Jamba-1.5-Mini’s layer pattern; dt_rank "auto" = ceil(hidden/16)', () => {
  const c = parse({ hidden_size: 4096, eos_token_id: [2, 518], use_mamba_kernels: true });
  expect(c.mambaDtRank).toBe(256);
  expect(c.mambaDInner).toBe(8192);
  expect(c.headDim).toBe(128);
  expect(c.eosTokenIds).toEqual([2, 518]);
  const kinds = Array.from({ length: 8 }, (_, i) => `${layerMixer(c, i)}/${layerFeedForward(c, i)}`);
  expect(kinds).toEqual(['mamba/mlp', 'mamba/moe', 'mamba/mlp', 'mamba/moe', 'attention/mlp', 'mamba/moe', 'mamba/mlp', 'mamba/moe']);
  expect(parse({ hidden_size: 100, num_attention_heads: 4 }).mambaDtRank).toBe(7);
  expect(parse({ mamba_dt_rank: 5 }).mambaDtRank).toBe(5);
  expect(parse({ eos_token_id: 7 }).eosTokenIds).toEqual([7]);
  expect(parse({ num_attention_heads: 8, num_key_value_heads: null }).numKeyValueHeads).toBe(8);
  expect(parse({ num_experts: 1 }).numExperts).toBe(1); // top-k 2 by default, unused: all layers dense
  expect(layerFeedForward(parse({ num_experts: 1, num_experts_per_tok: 1 }), 1)).toBe('mlp');
});

test.each([
  [{ hidden_act: 'gelu' }, '/m/config.json: hidden_act must be "silu"'],
  [{ num_experts: 4, num_experts_per_tok: 5 }, '/m/config.json: num_experts_per_tok (5) must not exceed num_experts (4)'],
  [{ hidden_size: 100, num_attention_heads: 3 }, '/m/config.json: num_attention_heads (3) must divide hidden_size (100)'],
  [{ num_attention_heads: 32, num_key_value_heads: 5 }, '/m/config.json: num_key_value_heads (5) must divide num_attention_heads (32)'],
  [{ attn_layer_period: 4, attn_layer_offset: 4 }, '/m/config.json: attn_layer_offset (4) must be smaller than attn_layer_period (4)'],
  [{ mamba_dt_rank: 'big' }, '/m/config.json: mamba_dt_rank must be an integer'],
  [{ vocab_size: 1.5 }, '/m/config.json: vocab_size must be an integer'],
  [{ mamba_conv_bias: 'yes' }, '/m/config.json: mamba_conv_bias must be true or false'],
  [{ eos_token_id: ['x'] }, '/m/config.json: eos_token_id must be a token id'],
  [{ vocab_size: 10, eos_token_id: [2, 10] }, '/m/config.json: eos_token_id (10) must be below vocab_size (10)'],
  [{ sliding_window: 4096 }, '/m/config.json: sliding_window is not supported'],
  [{ model_type: 'llama' }, '/m/config.json: model_type must be "jamba"'],
])('rejects %j', (fields, message) => {
  expect(() => parse(fields)).toThrow(message);
});

test('rejects text that is not a JSON object', () => {
  expect(() => parseJambaConfig('{', '/m/config.json')).toThrow('/m/config.json: not valid JSON');
  expect(() => parseJambaConfig('[]', '/m/config.json')).toThrow('/m/config.json: must be a JSON object');
});
