import { bf16, Bf16RoundingCpuBackend } from './bf16-rounding.js';
import { CpuTensor } from './tensor.js';

const values = (t: unknown): number[] => Array.from((t as CpuTensor).data as Float32Array);

describe('the CPU backend with the CUDA backend\'s bf16 rounding points', () => {
  test('rounds to nearest even at bf16 and keeps NaN and infinities', () => {
    const x = new CpuTensor(Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8 + 2 ** -20), 3.14159, Infinity, NaN, 0), [7]);
    const r = values(bf16(x));
    expect(r.slice(0, 4)).toEqual([1, 1 + 2 ** -6, -(1 + 2 ** -7), 3.140625]);
    expect(r[4]).toBe(Infinity);
    expect(Number.isNaN(r[5])).toBe(true);
    expect(r[6]).toBe(0);
  });

  test('linear outputs are bf16 values unless fp32 is asked for; inputs are rounded first', () => {
    const b = new Bf16RoundingCpuBackend();
    const w = { kind: 'dense' as const, weight: new CpuTensor(Float32Array.of(1, 1, 0.5, -0.25), [2, 2]) };
    const x = new CpuTensor(Float32Array.of(1 + 2 ** -9, 1 / 3), [1, 2]);
    const rounded = values(b.linear(x, w));
    const exact = values(b.linear(x, w, 'f32'));
    const isBf16 = (v: number): boolean => values(bf16(new CpuTensor(Float32Array.of(v), [1])))[0] === v;
    expect(rounded.every(isBf16)).toBe(true);
    // The input 1 + 2^-9 rounds to 1 before the product: 1 + bf16(1/3), not 1 + 2^-9 + 1/3.
    expect(exact[0]).toBe(1 + 0.333984375);
    expect(isBf16(exact[0]!)).toBe(false); // the fp32 output is not rounded
    expect(rounded[0]).toBe(1.3359375); // … the bf16 one is
  });
});
