// The step flow around CUDA graphs, on a stand-in for the native library (stand-in.ts): a decode batch
// size runs recorded until the library has captured its graph, then replays without recording; other
// steps always record.
import type { SamplingRow, StepInputs } from '../backend.js';
import { CudaBackend } from './index.js';
import { standIn } from './stand-in.js';

const greedy: SamplingRow = { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, counter: 0, logprobs: 0 };

function decode(seqs: number): StepInputs {
  return {
    batch: { numRows: seqs, segments: Array.from({ length: seqs }, (_, i) => ({ rowStart: i, numRows: 1, cachedLen: 10, stateSlot: i, blockTable: Int32Array.of(i) })) },
    tokenIds: new Int32Array(seqs),
    sampleRows: Int32Array.from({ length: seqs }, (_, i) => i),
    sampling: Array.from({ length: seqs }, () => greedy),
  };
}

/** One step as the model drives it: replay if possible, else record (here: logits straight to sampling). */
async function step(b: CudaBackend, inputs: StepInputs): Promise<'replayed' | 'recorded'> {
  b.beginStep(inputs);
  const replayed = await b.replay();
  if (replayed) {
    expect(Array.from(replayed.tokenIds)).toEqual(new Array(inputs.sampling.length).fill(7));
    return 'replayed';
  }
  const logits = b.upload(new Float32Array(inputs.sampling.length * 16), [inputs.sampling.length, 16]);
  const sampled = await b.sample(logits);
  expect(Array.from(sampled.tokenIds)).toEqual(new Array(inputs.sampling.length).fill(7));
  return 'recorded';
}

test('a decode batch size records until its graph is captured, then replays with no program', async () => {
  const { lib, runs } = standIn();
  const b = CudaBackend.over(lib);
  const kinds = [];
  for (let i = 0; i < 4; i++) kinds.push(await step(b, decode(2)));
  expect(kinds).toEqual(['recorded', 'recorded', 'replayed', 'replayed']);
  expect(runs.map((r) => r.graphKey)).toEqual([2, 2, 2, 2]);
  expect(runs.slice(0, 2).every((r) => r.programLength > 0)).toBe(true);
  expect(runs.slice(2).every((r) => r.programLength === 0)).toBe(true);
  // Another batch size has its own graph; the first one keeps its own.
  expect(await step(b, decode(3))).toBe('recorded');
  expect(await step(b, decode(2))).toBe('replayed');
  b.dispose();
});

test('a prefill step never replays, and new activation regions drop the graphs', async () => {
  const { lib } = standIn();
  const b = CudaBackend.over(lib);
  const prefill: StepInputs = {
    batch: { numRows: 5, segments: [{ rowStart: 0, numRows: 5, cachedLen: 0, stateSlot: 0, blockTable: Int32Array.of(0) }] },
    tokenIds: new Int32Array(5),
    sampleRows: Int32Array.of(4),
    sampling: [greedy],
  };
  for (let i = 0; i < 3; i++) expect(await step(b, prefill)).toBe('recorded');
  for (let i = 0; i < 3; i++) await step(b, decode(1));
  expect(await step(b, decode(1))).toBe('replayed');
  b.reserveActivations({ activationBytes: 2 ** 20, maxRows: 64, maxSeqs: 8, maxBlocksPerSeq: 8 });
  expect(await step(b, decode(1))).toBe('recorded');
  b.dispose();
});
