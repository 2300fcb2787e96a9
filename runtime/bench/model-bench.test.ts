// The bench command's model path, on the CPU with the tiny preset (the GPU presets need the device).
import { benchModel } from './model-bench.js';

test('jamba-runtime bench --preset jamba-tiny --random-weights: decode, prefill and a long prompt, each measured', async () => {
  const lines: string[] = [];
  const result = await benchModel({
    preset: 'jamba-tiny',
    quantization: 'expertsint8',
    backend: 'cpu',
    batches: [1, 3],
    context: 24,
    prefills: [40],
    longPrompt: 200,
    maxNumBatchedTokens: 64,
    steps: 2,
    log: (line) => lines.push(line),
  });
  expect(result).toMatchObject({ preset: 'jamba-tiny', quantization: 'expertsint8', backend: 'cpu' });
  expect(result.decode.map((d) => d.batch)).toEqual([1, 3]);
  for (const d of result.decode) {
    expect(d.stepMsMedian).toBeGreaterThan(0);
    expect(d.tokensPerSecond).toBeCloseTo((d.batch * 1000) / d.stepMsMedian, 6);
  }
  expect(result.prefill).toEqual([{ tokens: 40, seconds: expect.any(Number), tokensPerSecond: expect.any(Number) }]);
  expect(result.longPrompt?.tokens).toBe(200);
  expect(result.weightBytes).toBeGreaterThan(0);
  expect(lines.some((l) => l.startsWith('decode batch 3 over 24'))).toBe(true);
  await expect(benchModel({ ...result, preset: 'no-such-model', backend: 'cpu', batches: [1], context: 8, prefills: [], longPrompt: 0, maxNumBatchedTokens: 64, steps: 1, log: () => {}, quantization: 'none' })).rejects.toThrow(
    "unknown preset 'no-such-model'",
  );
}, 60000);
