// The model run as the engine runs it: chunked prefill equals prefill at once, and a batch of
// sequences (different lengths, prefill chunks mixed with decode tokens, scattered KV blocks and
// state slots) gives each sequence what it gets alone.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../runtime/models/index.js';
import type { LoadedModel, StepSequence } from '../../runtime/models/index.js';
import { greedy, greedyRow, type GreedyResult, topOf } from '../../runtime/models/testing/greedy.js';
import { writeTinyCheckpoint } from '../../runtime/models/testing/tiny-checkpoint.js';

const TOL = 1e-4;
let model: LoadedModel;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jamba-batch-'));
  await writeTinyCheckpoint(dir, { seed: 5 });
  model = await loadModel(dir, { quantization: 'none', backend: 'cpu', maxModelLen: 160, maxNumSeqs: 4, kvBlockSize: 4 });
});

function prompt(len: number, seed: number): number[] {
  return Array.from({ length: len }, (_, i) => (i * 31 + seed * 17 + 3) % model.info.vocabSize);
}

/** The same 20 most likely tokens, in the same order, with log-probabilities within TOL. */
function expectClose(a: [number, number][], b: [number, number][]): void {
  expect(a.map(([id]) => id)).toEqual(b.map(([id]) => id));
  let worst = 0;
  a.forEach(([, lp], i) => (worst = Math.max(worst, Math.abs(lp - b[i]![1]))));
  expect(worst).toBeLessThan(TOL);
}

const TOP = 20;

/** Blocks 4k+r for sequence r: interleaved, non-contiguous tables. */
function blocks(seq: number, count = 40): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => (count - 1 - i) * 4 + seq);
}

test('prefill in chunks of 7 and 64 over several steps equals prefill at once', async () => {
  const p = prompt(130, 1);
  const once = await greedy(model.runner, p, 4, { stateSlot: 0, blockTable: blocks(0), topN: TOP });
  for (const chunk of [7, 64]) {
    const chunked = await greedy(model.runner, p, 4, { stateSlot: 2, blockTable: blocks(2), chunk, topN: TOP });
    expect(chunked.tokens).toEqual(once.tokens);
    once.top.forEach((top, i) => expectClose(chunked.top[i]!, top));
  }
});

test('a batch with mixed prefill and decode equals each sequence alone', async () => {
  const prompts = [prompt(5, 2), prompt(23, 3), prompt(40, 4)];
  const newTokens = 6;
  const slots = [3, 1, 0];
  const alone: GreedyResult[] = [];
  for (let s = 0; s < prompts.length; s++) {
    alone.push(await greedy(model.runner, prompts[s]!, newTokens, { stateSlot: slots[s]!, blockTable: blocks(s), topN: TOP }));
  }

  // The sequences really differ (a batching mix-up could not pass unnoticed).
  expect(Math.abs(alone[0]!.top[0]![0]![1] - alone[1]!.top[0]![0]![1])).toBeGreaterThan(1e-2);

  // Sequence 0 prefills at once; 1 in chunks of 9; 2 joins two steps later in chunks of 16.
  const state = prompts.map((p, s) => ({ s, fed: 0, generated: [] as number[], tops: [] as [number, number][][], prompt: p, chunk: [p.length, 9, 16][s]!, start: [0, 0, 2][s]! }));
  for (const slot of slots) model.runner.resetStateSlot(slot);
  for (let stepNo = 0; state.some((q) => q.generated.length < newTokens); stepNo++) {
    const batch: StepSequence[] = [];
    const owners: typeof state = [];
    for (const q of state) {
      if (stepNo < q.start || q.generated.length >= newTokens) continue;
      const inPrefill = q.fed < q.prompt.length;
      const tokens = inPrefill ? q.prompt.slice(q.fed, q.fed + q.chunk) : [q.generated.at(-1)!];
      const wantLogits = !inPrefill || q.fed + tokens.length === q.prompt.length;
      const sample = wantLogits ? greedyRow(TOP, q.generated.length) : undefined;
      batch.push({ stateSlot: slots[q.s]!, blockTable: blocks(q.s), cachedLen: q.fed, tokens: Int32Array.from(tokens), sample });
      q.fed += tokens.length;
      if (wantLogits) owners.push(q);
    }
    expect(batch.length).toBeGreaterThan(0);
    const sampled = await model.runner.step(batch);
    expect(sampled.tokenIds.length).toBe(owners.length);
    owners.forEach((q, i) => {
      q.tops.push(topOf(sampled, i));
      // Feed the token chosen alone, so both runs see the same inputs.
      q.generated.push(alone[q.s]!.tokens[q.generated.length]!);
    });
  }
  state.forEach((q) => {
    expect(q.tops.length).toBe(newTokens);
    q.tops.forEach((top, i) => expectClose(top, alone[q.s]!.top[i]!));
  });
});

test('steps must not overlap, and a slot in the running step cannot be reset', async () => {
  const seq = { stateSlot: 2, blockTable: blocks(2), cachedLen: 0, tokens: Int32Array.of(1, 2, 3), sample: greedyRow(0) };
  const running = model.runner.step([seq]);
  // The step yields to the event loop between layers; meanwhile:
  await new Promise<void>((resolve) => setImmediate(resolve));
  await expect(model.runner.step([{ ...seq, stateSlot: 3 }])).rejects.toThrow('a step is already running');
  expect(() => model.runner.resetStateSlot(2)).toThrow('slot 2 is in the step now running');
  model.runner.resetStateSlot(3); // not in the step: fine
  expect((await running).tokenIds.length).toBe(1);
  model.runner.resetStateSlot(2);
});

test('step rejects bad sequences with the reason', async () => {
  const base = { stateSlot: 0, blockTable: blocks(0), cachedLen: 0, tokens: Int32Array.of(1, 2), sample: greedyRow(0) };
  await expect(model.runner.step([{ ...base, stateSlot: 4 }])).rejects.toThrow('state slot 4 outside 0..3');
  await expect(model.runner.step([base, { ...base, blockTable: blocks(1) }])).rejects.toThrow('state slot 0 used twice');
  await expect(model.runner.step([{ ...base, tokens: Int32Array.of(97) }])).rejects.toThrow('token id 97 outside the vocabulary');
  await expect(model.runner.step([{ ...base, blockTable: Int32Array.of() }])).rejects.toThrow('0 KV blocks cover fewer than 2 positions');
  await expect(model.runner.step([{ ...base, blockTable: Int32Array.of(160) }])).rejects.toThrow('KV block 160 outside 0..159');
  await expect(model.runner.step([{ ...base, sample: { ...greedyRow(0), topP: 0 } }])).rejects.toThrow('top_p 0');
  await expect(model.runner.step([{ ...base, sample: { ...greedyRow(0), logprobs: 21 } }])).rejects.toThrow('logprobs 21');
});
