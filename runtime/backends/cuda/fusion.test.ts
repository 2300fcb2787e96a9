// The CUDA backend's recording-time fusions, on the stand-in library (stand-in.ts): a residual add
// followed by a norm of the same tensor runs as one ADD_RMSNORM op, unless the norm's output would
// overlap the tensor that was added (the arena hands freed addresses out again); norms of independent
// tensors in a row run as one RMSNORMS op.
import type { SamplingRow, StepInputs } from '../backend.js';
import { CudaBackend } from './index.js';
import { OP } from './program.js';
import { standIn } from './stand-in.js';

const greedy: SamplingRow = { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, counter: 0, logprobs: 0 };
const rows = 3;
const prefill: StepInputs = {
  batch: { numRows: rows, segments: [{ rowStart: 0, numRows: rows, cachedLen: 0, stateSlot: 0, blockTable: Int32Array.of(0) }] },
  tokenIds: new Int32Array(rows),
  sampleRows: Int32Array.of(rows - 1),
  sampling: [greedy],
};

/** Records `body` in one eager step and returns the op codes that ran. */
async function recorded(body: (b: CudaBackend) => void): Promise<number[]> {
  const { lib, runs } = standIn();
  const b = CudaBackend.over(lib);
  b.beginStep(prefill);
  body(b);
  await b.sample(b.upload(new Float32Array(16), [1, 16]));
  b.dispose();
  return runs.flatMap((r) => r.ops);
}

const hidden = 8;

test('a norm of the tensor just added into (the model’s sublayer boundary) is one ADD_RMSNORM op', async () => {
  const ops = await recorded((b) => {
    const x = b.upload(new Float32Array(rows * hidden), [rows, hidden]);
    const w = b.upload(new Float32Array(hidden), [hidden]);
    b.beginScope();
    const h = b.rmsNorm(x, w, 1e-6); // the scope's first activation: the next norm's output lands here
    b.addInPlace(x, b.siluMul(h, h));
    b.endScope();
    b.rmsNorm(x, w, 1e-6);
  });
  expect(ops).toEqual([OP.RMSNORM, OP.SILU_MUL, OP.ADD_RMSNORM, OP.SAMPLE]);
});

test('no fusion when the norm is of another tensor, when an op comes between, or when its output overlaps what was added', async () => {
  const ops = await recorded((b) => {
    const x = b.upload(new Float32Array(rows * hidden), [rows, hidden]);
    const y = b.upload(new Float32Array(rows * hidden), [rows, hidden]);
    const w = b.upload(new Float32Array(hidden), [hidden]);
    b.addInPlace(x, y);
    b.rmsNorm(y, w, 1e-6); // another tensor
    b.addInPlace(x, y);
    b.siluMul(y, y);
    b.rmsNorm(x, w, 1e-6); // an op between
    b.beginScope();
    const added = b.siluMul(y, y); // the scope's first activation: freed at its end, reused by the norm
    b.addInPlace(x, added);
    b.endScope();
    b.rmsNorm(x, w, 1e-6);
  });
  expect(ops).toEqual([OP.ADD, OP.RMSNORM, OP.ADD, OP.SILU_MUL, OP.RMSNORM, OP.SILU_MUL, OP.ADD, OP.RMSNORM, OP.SAMPLE]);
});

test('norms of independent tensors in a row (Mamba’s dt, B and C) are one RMSNORMS op of up to four', async () => {
  const ops = await recorded((b) => {
    const w = b.upload(new Float32Array(hidden), [hidden]);
    const xs = Array.from({ length: 6 }, () => b.upload(new Float32Array(rows * hidden), [rows, hidden]));
    for (const x of xs) b.rmsNorm(x, w, 1e-6);
  });
  expect(ops).toEqual([OP.RMSNORMS, OP.RMSNORMS, OP.SAMPLE]);
});

test('a norm does not join one whose output it reads, one of other rows, or across another op', async () => {
  const ops = await recorded((b) => {
    const w = b.upload(new Float32Array(hidden), [hidden]);
    const x = b.upload(new Float32Array(rows * hidden), [rows, hidden]);
    const fewer = b.upload(new Float32Array(hidden), [1, hidden]);
    const normed = b.rmsNorm(x, w, 1e-6);
    b.rmsNorm(normed, w, 1e-6); // reads the previous output
    b.rmsNorm(fewer, w, 1e-6); // other rows
    b.siluMul(x, x);
    b.rmsNorm(x, w, 1e-6); // an op between
  });
  expect(ops).toEqual([OP.RMSNORM, OP.RMSNORM, OP.RMSNORM, OP.SILU_MUL, OP.RMSNORM, OP.SAMPLE]);
});
