import { mkdtemp, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from './checkpoint.js';
import { halfToFloat, toFloat32 } from './dtype.js';
import { readSafetensorsHeader } from './safetensors.js';
import { bf16Bytes, encodeSafetensors, f16Bytes, f32Bytes, writeSafetensors } from './safetensors-writer.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safetensors-'));
});

test('fp16 decoding: normal, negative, subnormal, infinity', () => {
  expect(halfToFloat(0x3c00)).toBe(1);
  expect(halfToFloat(0xc000)).toBe(-2);
  expect(halfToFloat(0x3555)).toBeCloseTo(0.333251953125, 12);
  expect(halfToFloat(0x0001)).toBe(2 ** -24);
  expect(halfToFloat(0x7c00)).toBe(Infinity);
});

test('reads BF16, F16 and F32 tensors back by offset, across shards', async () => {
  const values = [1, -2.5, 0.15625, 3];
  await writeSafetensors(join(dir, 'a.safetensors'), {
    x: { dtype: 'F32', shape: [2, 2], data: f32Bytes(values) },
    y: { dtype: 'BF16', shape: [4], data: bf16Bytes(values) },
  });
  await writeSafetensors(join(dir, 'b.safetensors'), {
    z: { dtype: 'F16', shape: [1, 2], data: new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer) },
  });
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' } }));
  const ckpt = await openCheckpoint(dir);
  try {
    const get = async (name: string) => {
      const e = ckpt.tensors.get(name)!;
      return [...toFloat32(await ckpt.read(e), e.dtype, e.shape.reduce((a, b) => a * b, 1))];
    };
    expect(await get('x')).toEqual(values);
    expect(await get('y')).toEqual(values);
    expect(await get('z')).toEqual([1, -2]);
    expect(ckpt.totalBytes).toBe(16 + 8 + 4);
  } finally {
    await ckpt.close();
  }
});

test('fp16 encoding round-trips through the decoder', () => {
  const values = [1, -2, 0.333251953125, 2 ** -24, 65504, 0, 1 + 2 ** -11];
  const back = [...toFloat32(f16Bytes(values), 'F16', values.length)];
  expect(back).toEqual([1, -2, 0.333251953125, 2 ** -24, 65504, 0, 1]); // 1 + 2^-11 is a tie: to even (1)
});

test('bf16 decoding reads unaligned bytes too (fast aligned path and DataView path agree)', () => {
  const values = [1.5, -3, 0.0078125, -0];
  const aligned = bf16Bytes(values);
  const shifted = new Uint8Array(aligned.length + 1);
  shifted.set(aligned, 1);
  const unaligned = shifted.subarray(1);
  expect(unaligned.byteOffset % 2).toBe(1);
  expect([...toFloat32(unaligned, 'BF16', 4)]).toEqual(values);
  expect([...toFloat32(aligned, 'BF16', 4)]).toEqual(values);
});

test('bf16 encoding rounds to nearest even', () => {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  const [lo, hi] = [...toFloat32(bf16Bytes([1 + 2 ** -8, 1 + 3 * 2 ** -8]), 'BF16', 2)];
  expect(lo).toBe(1);
  expect(hi).toBe(1 + 2 ** -6);
});

describe('broken files: errors name the file and the tensor', () => {
  const file = () => join(dir, 'broken.safetensors');

  test('truncated data', async () => {
    await writeSafetensors(file(), { w: { dtype: 'F32', shape: [4], data: f32Bytes([1, 2, 3, 4]) } });
    await truncate(file(), (await import('node:fs')).statSync(file()).size - 4);
    await expect(readSafetensorsHeader(file())).rejects.toThrow(`${file()}: tensor w: truncated file: data ends at byte`);
  });

  test('header length beyond the file', async () => {
    const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: f32Bytes([1]) } });
    bytes.writeBigUInt64LE(1000000n, 0);
    await writeFile(file(), bytes);
    await expect(readSafetensorsHeader(file())).rejects.toThrow(`${file()}: corrupt header: header length 1000000 does not fit`);
  });

  test('header that is not JSON', async () => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    await writeFile(file(), Buffer.concat([len, Buffer.from('{"a":')]));
    await expect(readSafetensorsHeader(file())).rejects.toThrow(`${file()}: corrupt header: not valid JSON`);
  });

  test('shorter than the length prefix', async () => {
    await writeFile(file(), Buffer.from([1, 2, 3]));
    await expect(readSafetensorsHeader(file())).rejects.toThrow(`${file()}: truncated: 3 bytes`);
  });

  test('unsupported dtype', async () => {
    await writeSafetensors(file(), { ids: { dtype: 'I64', shape: [1], data: new Uint8Array(8) } });
    await expect(readSafetensorsHeader(file())).rejects.toThrow(`${file()}: tensor ids: unsupported dtype I64`);
  });

  test('offsets that disagree with the shape', async () => {
    const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: f32Bytes([1, 2]) } });
    await writeFile(file(), bytes);
    await expect(readSafetensorsHeader(file())).rejects.toThrow(`${file()}: tensor w: corrupt header entry: data_offsets [0, 8] hold 8 bytes`);
  });

  test('an index that lists a tensor its shard lacks', async () => {
    const sharded = await mkdtemp(join(tmpdir(), 'shards-'));
    await writeSafetensors(join(sharded, 's1.safetensors'), { a: { dtype: 'F32', shape: [1], data: f32Bytes([1]) } });
    await writeFile(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors' } }));
    await expect(openCheckpoint(sharded)).rejects.toThrow(`${join(sharded, 's1.safetensors')}: tensor b, listed in`);
  });

  test('a directory without weights', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'empty-'));
    await expect(openCheckpoint(empty)).rejects.toThrow(`${empty}: no model.safetensors or model.safetensors.index.json`);
  });
});
