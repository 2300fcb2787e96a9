// The CUDA backend's staging for loads, on the stand-in library (stand-in.ts; CI has no GPU, the GPU
// machine's loading benchmark runs the real one): the staging memory is page-locked and unlocked once,
// and while it is open the raw bytes of quantized weights go through one reused device buffer instead
// of an allocation and a free per tensor.
import type { RawTensorData } from '../backend.js';
import { CudaBackend } from './index.js';
import type { NativeLib } from './native.js';
import { standIn } from './stand-in.js';

function counted(): { lib: NativeLib; calls: Record<string, number> } {
  const { lib } = standIn();
  const calls: Record<string, number> = { malloc: 0, free: 0, hostRegister: 0, hostUnregister: 0 };
  const count = <K extends keyof NativeLib>(name: K): NativeLib[K] => {
    const fn = lib[name] as (...args: unknown[]) => number;
    return ((...args: unknown[]) => {
      calls[name] = (calls[name] ?? 0) + 1;
      return fn(...args);
    }) as NativeLib[K];
  };
  return { lib: { ...lib, malloc: count('malloc'), free: count('free'), hostRegister: count('hostRegister'), hostUnregister: count('hostUnregister') }, calls };
}

const expert = (rows: number, cols: number): RawTensorData => ({ dtype: 'BF16', bytes: new Uint8Array(rows * cols * 2) });

test('a staged load quantizes through one reused device buffer, freed with the staging memory', () => {
  const { lib, calls } = counted();
  const b = CudaBackend.over(lib);
  const staging = b.createStagingMemory(1 << 20)!;
  expect(calls.hostRegister).toBe(1);
  const buf = staging.take(4096)!;
  expect(buf.byteLength).toBe(4096);
  staging.give(buf);
  for (let i = 0; i < 4; i++) b.uploadInt8Matrix(expert(32, 64), [32, 64]);
  b.uploadInt8Matrix(expert(64, 64), [64, 64]); // larger: the buffer grows once
  // Per weight an int8 matrix and its scales; the scratch twice (first size, then the larger one).
  expect(calls.malloc).toBe(5 * 2 + 2);
  expect(calls.free).toBe(1);
  staging.dispose();
  staging.dispose(); // once only
  expect(calls.hostUnregister).toBe(1);
  expect(calls.free).toBe(2);
  expect(staging.take(16)).toBeUndefined(); // nothing is handed out after dispose
  // Without staging memory, each weight's raw bytes are allocated and freed on their own.
  b.uploadInt8Matrix(expert(32, 64), [32, 64]);
  expect([calls.malloc, calls.free]).toEqual([5 * 2 + 2 + 3, 3]);
  b.dispose();
});

test('no staging memory when the driver refuses to lock it', () => {
  const { lib } = counted();
  const b = CudaBackend.over({ ...lib, hostRegister: () => -1 });
  expect(b.createStagingMemory(1 << 20)).toBeUndefined();
  b.dispose();
});
