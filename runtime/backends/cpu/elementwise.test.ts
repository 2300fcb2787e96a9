import { CpuBackend } from './index.js';
import type { CpuTensor } from './tensor.js';

const b = new CpuBackend();
const f = (values: number[], shape: number[]) => b.upload(new Float32Array(values), shape);
const data = (t: unknown) => [...((t as CpuTensor).data as Float32Array)];

test('rmsNorm: x / sqrt(mean(x²) + eps) * weight, per row', () => {
  // Row [3, 4]: mean square 12.5; row [0, 0] stays 0.
  const y = data(b.rmsNorm(f([3, 4, 0, 0], [2, 2]), f([1, 2], [2]), 1e-6));
  expect(y[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
  expect(y[1]).toBeCloseTo((2 * 4) / Math.sqrt(12.5), 6);
  expect(y.slice(2)).toEqual([0, 0]);
  // eps counts inside the square root.
  expect(data(b.rmsNorm(f([1], [1, 1]), f([1], [1]), 3))[0]).toBeCloseTo(0.5, 6);
});

/** Opens a step whose inputs are only token ids and sampled rows (what embedding and gatherSampleRows read). */
function step(tokenIds: number[], sampleRows: number[] = []): void {
  b.beginStep({
    batch: { numRows: tokenIds.length, segments: [] },
    tokenIds: Int32Array.from(tokenIds),
    sampleRows: Int32Array.from(sampleRows),
    sampling: [],
  });
}

test('embedding gathers the step token ids\' rows and rejects ids outside the vocabulary', () => {
  const table = f([0, 1, 10, 11, 20, 21], [3, 2]);
  step([2, 0, 2]);
  expect(data(b.embedding(table))).toEqual([20, 21, 0, 1, 20, 21]);
  b.endStep();
  step([3]);
  expect(() => b.embedding(table)).toThrow('token id 3 outside vocabulary 0..2');
  b.endStep();
  expect(() => b.embedding(table)).toThrow('no step is open');
});

test('siluMul = x·sigmoid(x)·up; addInPlace; splitColumns; gatherSampleRows', () => {
  const y = data(b.siluMul(f([0, 1, -2], [1, 3]), f([5, 2, 1], [1, 3])));
  expect(y[0]).toBe(0);
  expect(y[1]).toBeCloseTo(2 * (1 / (1 + Math.exp(-1))), 6);
  expect(y[2]).toBeCloseTo(-2 / (1 + Math.exp(2)), 6);

  const acc = f([1, 2], [1, 2]);
  b.addInPlace(acc, f([10, 20], [1, 2]));
  expect(data(acc)).toEqual([11, 22]);

  const [a, c] = b.splitColumns(f([1, 2, 3, 4, 5, 6], [2, 3]), [1, 2]);
  expect(data(a)).toEqual([1, 4]);
  expect(data(c)).toEqual([2, 3, 5, 6]);
  expect(() => b.splitColumns(f([1, 2], [1, 2]), [1, 2])).toThrow('widths sum to 3');

  step([1, 1, 1], [2, 0]);
  expect(data(b.gatherSampleRows(f([1, 2, 3, 4, 5, 6], [3, 2])))).toEqual([5, 6, 1, 2]);
  b.endStep();
});
