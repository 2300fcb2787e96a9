// The TypeScript side of the CUDA backend and the native library share an op table and a C ABI; CI
// has no GPU, so these tests check the contract itself: the op codes against the header's JB_OPS
// table, and the built library's exported functions against what native.ts binds.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

/** The body of the function whose signature starts at `from` (braces matched). */
function bodyAt(source: string, from: number): string {
  const open = source.indexOf('{', source.indexOf(')', from));
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === '{') depth++;
    else if (source[i] === '}' && --depth === 0) return source.slice(open + 1, i);
  }
  throw new Error('unbalanced braces');
}

// common.cuh's rule for programmatic dependent launch: a kernel that may start while the one before it
// still runs must wait for it (pdl_enter or pdl_wait) before anything else it does, and before any
// return (a block that returned early would let the next kernel run ahead of the one before). CI cannot
// run the kernels, so the sources are checked: every kernel waits, or it is launched the plain way only.
test('every kernel waits for the one before it before it returns, unless it is only launched the plain way', () => {
  const dir = resolve('runtime/native/src');
  const plainOnly = new Set(['convert_kernel', 'quantize_kernel', 'random_bf16_kernel', 'hold_kernel', 'decode_split_kernel']);
  const sources = readdirSync(dir).map((file) => readFileSync(resolve(dir, file), 'utf8'));
  const kernels = sources.flatMap((source) =>
    [...source.matchAll(/__global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(/g)].map((m) => ({ name: m[1]!, body: bodyAt(source, m.index!) })),
  );
  expect(kernels.length).toBeGreaterThan(25);
  const pdlLaunched = sources.flatMap((source) => [...source.matchAll(/launch_pdl\("[^"]*",([^;]*)/g)].map((m) => m[1]!)).join('\n');
  for (const { name, body } of kernels) {
    if (plainOnly.has(name)) {
      expect({ name, launchedWithPdl: new RegExp(`\\b${name}\\b`).test(pdlLaunched) }).toEqual({ name, launchedWithPdl: false });
      continue;
    }
    const wait = body.search(/pdl_(enter|wait)\(\)/);
    const firstReturn = body.search(/\breturn\b/);
    expect({ name, waits: wait >= 0, beforeAnyReturn: firstReturn < 0 || wait < firstReturn }).toEqual({ name, waits: true, beforeAnyReturn: true });
  }
});
