import { isExpertsInt8Weight, quantizeRows, roundHalfEven } from './expertsint8.js';

test('round half to even, as torch.round', () => {
  expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, -3]);
});

test('per-row symmetric scale max|W|/127; q = round(W/scale); zero rows stay zero', () => {
  const rows = [
    [0.5, -1.27, 0.005],
    [0, 0, 0],
    [254, 1, -127],
  ];
  const { q, scale } = quantizeRows(3, 3, (r, out) => out.set(rows[r]!));
  expect(scale[0]).toBe(Math.fround(Math.fround(1.27) / 127));
  expect(scale[1]).toBe(0);
  expect(scale[2]).toBe(2);
  // 0.5/0.01 = 50; 0.005/0.01 = 0.5 → 0 (half to even); 1/2 = 0.5 → 0; -127/2 = -63.5 → -64
  expect([...q]).toEqual([50, -127, 0, 0, 0, 0, 127, 0, -64]);
  // Dequantized values stay within half a step of the original.
  rows.forEach((row, r) => row.forEach((w, i) => expect(Math.abs(q[r * 3 + i]! * scale[r]! - w)).toBeLessThanOrEqual(scale[r]! / 2 + 1e-9)));
});

test('which weights are quantized: expert and dense MLP projections only', () => {
  expect(isExpertsInt8Weight('model.layers.3.feed_forward.experts.12.down_proj.weight')).toBe(true);
  expect(isExpertsInt8Weight('model.layers.0.feed_forward.gate_proj.weight')).toBe(true);
  expect(isExpertsInt8Weight('model.layers.3.feed_forward.router.weight')).toBe(false);
  expect(isExpertsInt8Weight('model.layers.4.self_attn.q_proj.weight')).toBe(false);
  expect(isExpertsInt8Weight('model.layers.2.mamba.in_proj.weight')).toBe(false);
  expect(isExpertsInt8Weight('lm_head.weight')).toBe(false);
});
