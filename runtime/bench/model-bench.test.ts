// The bench command's model path, on the CPU with the tiny preset (the GPU presets need the device).
import { benchModel, type ModelBenchOptions } from './model-bench.js';

/** The tiny preset on the CPU; each test sets what it measures. */
const TINY: Omit<ModelBenchOptions, 'quantization' | 'batches' | 'context' | 'prefills' | 'longPrompt' | 'tensorParallelSize' | 'log'> = {
  preset: 'jamba-tiny',
  backend: 'cpu',
  maxNumBatchedTokens: 64,
  steps: 2,
};

test('jamba-runtime bench --preset jamba-tiny --random-weights: decode, prefill and a long prompt, each measured', async () => {
  const lines: string[] = [];
  const result = await benchModel({
    ...TINY,
    quantization: 'expertsint8',
    batches: [1, 3],
    context: 24,
    prefills: [40],
    longPrompt: 200,
    tensorParallelSize: 1,
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
  await expect(benchModel({ ...result, preset: 'no-such-model', backend: 'cpu', batches: [1], context: 8, prefills: [], longPrompt: 0, maxNumBatchedTokens: 64, steps: 1, tensorParallelSize: 1, log: () => {}, quantization: 'none' })).rejects.toThrow(
    "unknown preset 'no-such-model'",
  );
}, 60000);

test('bench --tensor-parallel-size 2: the random model split over two ranks (worker threads) is measured the same way', async () => {
  const lines: string[] = [];
  const result = await benchModel({
    ...TINY,
    quantization: 'none',
    batches: [2],
    context: 16,
    prefills: [24],
    longPrompt: 0,
    tensorParallelSize: 2,
    log: (line) => lines.push(line),
  });
  expect(result.decode).toEqual([expect.objectContaining({ batch: 2, context: 16 })]);
  expect(result.prefill.map((p) => p.tokens)).toEqual([24]);
  expect(lines[0]).toMatch(/^model: jamba-tiny none on cpu/);
}, 60000);
