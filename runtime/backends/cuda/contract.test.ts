// The TypeScript side of the CUDA backend and the native library share an op table and a C ABI; CI
// has no GPU, so these tests check the contract itself: the op codes against the header's JB_OPS
// table, and the built library's exported functions against what native.ts binds.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DTYPE, OP } from './program.js';

const HEADER = resolve('runtime/native/include/jamba_native.h');
const LIBRARY = resolve('runtime/native/build/libjamba_cuda.so');

test('op codes and dtypes match runtime/native/include/jamba_native.h', () => {
  const header = readFileSync(HEADER, 'utf8');
  const ops = Object.fromEntries([...header.matchAll(/^\s*X\((\d+), (\w+)\)/gm)].map((m) => [m[2]!, Number(m[1])]));
  expect(ops).toEqual(OP);
  const dtypes = Object.fromEntries([...header.matchAll(/JB_DTYPE_(\w+) = (\d+)/g)].map((m) => [m[1]!.toLowerCase(), Number(m[2])]));
  expect(dtypes).toEqual(DTYPE);
});

test('the built library exports every function native.ts binds (make native builds it)', () => {
  expect(existsSync(LIBRARY)).toBe(true);
  const exported = new Set(
    execFileSync('nm', ['-D', '--defined-only', LIBRARY], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[2])
      .filter((name): name is string => !!name && name.startsWith('jb_')),
  );
  const bound = [...readFileSync(resolve('runtime/backends/cuda/native.ts'), 'utf8').matchAll(/lib\.func\('[^(]*?\b(jb_\w+)\(/g)].map((m) => m[1]!);
  expect(bound.length).toBeGreaterThan(10);
  expect(bound.filter((name) => !exported.has(name))).toEqual([]);
  const declared = [...readFileSync(HEADER, 'utf8').matchAll(/^\w[\w\s*]*?\b(jb_\w+)\(/gm)].map((m) => m[1]!);
  expect(declared.filter((name) => !exported.has(name))).toEqual([]);
});
