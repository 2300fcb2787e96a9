import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadProgress } from '../engine/model-runner.js';
import { openCheckpoint } from './checkpoint.js';
import { CpuBackend } from '../backends/cpu/index.js';
import type { CpuTensor } from '../backends/cpu/tensor.js';
import { WeightStore } from '../models/weight-store.js';
import { type RawTensor, loadWeights } from './load-weights.js';
import { bf16Bytes, f32Bytes, writeSafetensors } from './safetensors-writer.js';

async function checkpointOf(tensors: Parameters<typeof writeSafetensors>[1]) {
  const dir = await mkdtemp(join(tmpdir(), 'load-weights-'));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return openCheckpoint(dir);
}

const expertName = 'model.layers.0.feed_forward.experts.0.up_proj.weight';

test('streams raw tensors in file order with progress and ETA from the injected clock; the store quantizes expert weights', async () => {
  const ckpt = await checkpointOf({
    a: { dtype: 'F32', shape: [2], data: f32Bytes([1, 2]) }, // 8 bytes
    [expertName]: { dtype: 'BF16', shape: [2, 2], data: bf16Bytes([1, -0.5, 0, 0]) }, // 8 bytes
    c: { dtype: 'BF16', shape: [8], data: bf16Bytes([1, 2, 3, 4, 5, 6, 7, 8]) }, // 16 bytes
  });
  let clock = 0;
  const progress: LoadProgress[] = [];
  const seen = new Map<string, RawTensor>();
  const store = new WeightStore(new CpuBackend(), true);
  await loadWeights(
    ckpt,
    [{ name: 'c', shape: [8] }, { name: expertName, shape: [2, 2] }, { name: 'a', shape: [2] }],
    { onProgress: (p) => progress.push(p), now: () => (clock += 1000) },
    (name, t) => {
      seen.set(name, t);
      store.add(name, t);
    },
  );
  await ckpt.close();
  expect(progress.map((p) => p.tensorName)).toEqual(['a', expertName, 'c']);
  expect(progress.map((p) => p.bytesLoaded)).toEqual([8, 16, 32]);
  expect(progress.map((p) => p.ratio)).toEqual([0.25, 0.5, 1]);
  // start at t=1 s; after `a` t=2 s: 1 s for 8 bytes, 24 left → 3 s.
  expect(progress[0]!.etaSeconds).toBeCloseTo(3, 9);
  expect(progress[2]!.etaSeconds).toBe(0);

  // The checkpoint's own bytes, not a conversion.
  expect(seen.get(expertName)).toMatchObject({ dtype: 'BF16', shape: [2, 2] });
  expect([...seen.get(expertName)!.bytes]).toEqual([...bf16Bytes([1, -0.5, 0, 0])]);
  expect(seen.get('a')).toMatchObject({ dtype: 'F32', shape: [2] });

  const expert = store.linear(expertName.replace(/\.weight$/, ''));
  expect(expert.kind).toBe('int8');
  if (expert.kind === 'int8') {
    expect([...((expert.weight as CpuTensor).data as Int8Array)]).toEqual([127, -64, 0, 0]); // -0.5 / (1/127) = -63.5 → -64 (half to even)
    expect([...((expert.scale as CpuTensor).data as Float32Array)]).toEqual([Math.fround(1 / 127), 0]);
  }
  expect([...((store.tensor('a') as CpuTensor).data as Float32Array)]).toEqual([1, 2]);
  // bf16: 14 params × 2; deployed: a and c as bf16 (10 × 2) + int8 expert (4 + 2 scales × 4)
  expect(store.bytes).toEqual({ bf16: 28, deployed: 20 + 4 + 8 });
});

test('a mismatched checkpoint lists each problem (file and tensor) before reading any data', async () => {
  const ckpt = await checkpointOf({ a: { dtype: 'F32', shape: [3], data: f32Bytes([1, 2, 3]) }, extra: { dtype: 'F32', shape: [1], data: f32Bytes([0]) } });
  const file = join(ckpt.dir, 'model.safetensors');
  let loaded = 0;
  const expected = [{ name: 'a', shape: [2] }, ...Array.from({ length: 10 }, (_, i) => ({ name: `m${i}`, shape: [1] }))];
  const error = await loadWeights(ckpt, expected, {}, () => loaded++).catch((e: Error) => e);
  await ckpt.close();
  expect(loaded).toBe(0);
  expect(String(error)).toContain(`${file}: tensor a has shape [3], expected [2]`);
  expect(String(error)).toContain(`${file}: missing tensor m0 (shape [1])`);
  expect(String(error)).toContain('… and 4 more'); // 12 problems, 8 listed (the unexpected `extra` among the rest)
});
