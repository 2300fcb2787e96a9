import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadProgress } from '../engine/model-runner.js';
import { openCheckpoint } from './checkpoint.js';
import { CpuBackend } from '../backends/cpu/index.js';
import type { CpuTensor } from '../backends/cpu/tensor.js';
import { WeightStore } from '../models/weight-store.js';
import { READ_PIECE } from './checkpoint.js';
import { type RawTensor, loadWeights } from './load-weights.js';
import { bf16Bytes, f32Bytes, writeSafetensors } from './safetensors-writer.js';
import { StagingRing } from './staging-ring.js';

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

test('tensors larger than a read piece arrive whole and in order', async () => {
  // Two tensors of 2.5 pieces each (their pieces read concurrently, the last one short), a small one between.
  const elements = Math.floor((2.5 * READ_PIECE) / 4);
  const pattern = (seed: number) => {
    const data = new Uint8Array(elements * 4);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096 + seed) & 0xff;
    data[data.length - 1] = seed;
    return data;
  };
  const big0 = pattern(3);
  const big1 = pattern(7);
  const ckpt = await checkpointOf({
    big0: { dtype: 'F32', shape: [elements], data: big0 },
    small: { dtype: 'BF16', shape: [3], data: bf16Bytes([1, 2, 3]) },
    big1: { dtype: 'F32', shape: [elements], data: big1 },
  });
  const order: string[] = [];
  const stats = await loadWeights(
    ckpt,
    [{ name: 'big0', shape: [elements] }, { name: 'small', shape: [3] }, { name: 'big1', shape: [elements] }],
    {},
    (name, t) => {
      order.push(name);
      const want = name === 'big0' ? big0 : name === 'big1' ? big1 : bf16Bytes([1, 2, 3]);
      expect(t.bytes.length).toBe(want.length);
      expect(Buffer.compare(Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.length), Buffer.from(want))).toBe(0);
    },
  );
  await ckpt.close();
  expect(order).toEqual(['big0', 'small', 'big1']);
  expect(stats.bytes).toBe(2 * elements * 4 + 6);
});

test('reads run ahead of placing by the read-ahead bytes, and always by the next tensor', async () => {
  const names = ['t0', 't1', 't2', 't3', 't4', 't5'];
  const ckpt = await checkpointOf(Object.fromEntries(names.map((n, i) => [n, { dtype: 'F32' as const, shape: [25], data: f32Bytes(new Array(25).fill(i)) }])));
  const issued: string[] = [];
  const read = ckpt.read.bind(ckpt);
  ckpt.read = (entry) => {
    issued.push(entry.name);
    return read(entry);
  };
  const aheadAt: number[] = [];
  const expected = names.map((name) => ({ name, shape: [25] }));
  // 100-byte tensors: 250 bytes of read-ahead hold two beyond the one placed, 0 only the next.
  await loadWeights(ckpt, expected, { readAheadBytes: 250 }, (name) => aheadAt.push(issued.length - names.indexOf(name) - 1));
  expect(aheadAt).toEqual([2, 2, 2, 2, 1, 0]);
  issued.length = 0;
  aheadAt.length = 0;
  await loadWeights(ckpt, expected, { readAheadBytes: 0 }, (name) => aheadAt.push(issued.length - names.indexOf(name) - 1));
  expect(aheadAt).toEqual([1, 1, 1, 1, 1, 0]);
  await ckpt.close();
});

test('a shard of a large tensor (a tensor-parallel rank) reads only its ranges, each cut into pieces', async () => {
  const rows = 3;
  const rowBytes = READ_PIECE + 8; // each row spans two pieces
  const data = new Uint8Array(rows * rowBytes);
  for (let i = 0; i < data.length; i += 1021) data[i] = (i * 7) & 0xff;
  const ckpt = await checkpointOf({ w: { dtype: 'F32', shape: [rows, rowBytes / 4], data } });
  const entry = ckpt.tensors.get('w')!;
  const got = await ckpt.readParts(entry, [
    [rowBytes, rowBytes],
    [0, 16],
  ]);
  await ckpt.close();
  expect(Buffer.compare(got.subarray(0, rowBytes), Buffer.from(data.subarray(rowBytes, 2 * rowBytes)))).toBe(0);
  expect([...got.subarray(rowBytes)]).toEqual([...data.subarray(0, 16)]);
});

test('with staging memory, tensors are read into it and each buffer is given back once placed, so the ring is reused', async () => {
  const tensors: Parameters<typeof writeSafetensors>[1] = {};
  const expected = [];
  for (let i = 0; i < 12; i++) {
    const values = Array.from({ length: 40 }, (_, j) => i * 100 + j);
    tensors[`t${String(i).padStart(2, '0')}`] = { dtype: 'F32', shape: [40], data: f32Bytes(values) }; // 160 bytes each
    expected.push({ name: `t${String(i).padStart(2, '0')}`, shape: [40] });
  }
  const ckpt = await checkpointOf(tensors);
  const region = new Uint8Array(400); // two tensors fit, not three
  const ring = new StagingRing(region);
  const taken: Uint8Array[] = [];
  const given: Uint8Array[] = [];
  const staging = {
    take: (n: number) => {
      const buf = ring.take(n);
      if (buf) taken.push(buf);
      return buf;
    },
    give: (buf: Uint8Array) => {
      given.push(buf);
      ring.give(buf);
    },
  };
  const fromRegion: boolean[] = [];
  const values: number[][] = [];
  await loadWeights(ckpt, expected, { staging, readAheadBytes: 160 }, (_name, t) => {
    fromRegion.push(t.bytes.buffer === region.buffer);
    values.push([...new Float32Array(t.bytes.slice().buffer)]);
  });
  await ckpt.close();
  // Every tensor's bytes are right, whichever memory they were read into.
  expect(values).toEqual(expected.map((_, i) => Array.from({ length: 40 }, (_, j) => i * 100 + j)));
  // The ring ran around: more buffers were cut from it than it holds at once, and most reads landed there.
  expect(taken.length).toBeGreaterThan(region.byteLength / 160);
  expect(fromRegion.filter(Boolean).length).toBe(taken.length);
  // Each tensor's buffer is given back once (plain-memory ones too, which the ring ignores); none is left.
  expect(given.length).toBe(12);
  expect(ring.bytesInUse).toBe(0);
});
