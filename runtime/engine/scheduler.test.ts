// Scheduling decisions on the books alone (no model): budgets, order, admission, preemption.
import { BlockManager } from './block-manager.js';
import { Scheduler } from './scheduler.js';
import { Sequence, type SamplingParams } from './sequence.js';
import { StateSlotManager } from './state-slots.js';

const params: SamplingParams = { temperature: 0, topP: 1, topK: 0, maxTokens: 100, stop: [], stopTokenIds: [], ignoreEos: true };
const seq = (id: string, n: number) => new Sequence(id, Array.from({ length: n }, (_, i) => i + 1), params, 0);

function setup(opts: { blocks?: number; blockSize?: number; slots?: number; maxNumSeqs?: number; budget?: number } = {}) {
  const blocks = new BlockManager(opts.blocks ?? 64, opts.blockSize ?? 4);
  const slots = new StateSlotManager(opts.slots ?? 8, () => {});
  const scheduler = new Scheduler({ maxNumSeqs: opts.maxNumSeqs ?? 8, maxNumBatchedTokens: opts.budget ?? 16 }, blocks, slots);
  return { blocks, slots, scheduler };
}

/** What the engine does after a step: count the chunk as computed and append a token where one is sampled. */
function complete(chunks: ReturnType<Scheduler['schedule']>): void {
  for (const c of chunks) {
    c.seq.numComputedTokens += c.numTokens;
    if (c.samples) c.seq.tokenIds.push(7);
  }
}

const view = (chunks: ReturnType<Scheduler['schedule']>) => chunks.map((c) => [c.seq.requestId, c.numTokens, c.samples]);

test('prefills a long prompt in chunks under the token budget, sampling only after the last', () => {
  const { scheduler } = setup({ budget: 16 });
  const a = seq('a', 40);
  scheduler.add(a);
  const steps: unknown[] = [];
  for (let i = 0; i < 4; i++) {
    const chunks = scheduler.schedule();
    steps.push(view(chunks));
    complete(chunks);
  }
  expect(steps).toEqual([[['a', 16, false]], [['a', 16, false]], [['a', 8, true]], [['a', 1, true]]]);
});

test('decodes first, then prefill chunks, then admissions; new requests join at step boundaries', () => {
  const { scheduler } = setup({ budget: 10 });
  const a = seq('a', 3);
  scheduler.add(a);
  complete(scheduler.schedule()); // a prefilled, one token sampled
  const b = seq('b', 20);
  const c = seq('c', 5);
  scheduler.add(b);
  scheduler.add(c);
  let chunks = scheduler.schedule();
  expect(view(chunks)).toEqual([['a', 1, true], ['b', 9, false]]);
  complete(chunks);
  chunks = scheduler.schedule();
  expect(view(chunks)).toEqual([['a', 1, true], ['b', 9, false]]);
  complete(chunks);
  chunks = scheduler.schedule();
  expect(view(chunks)).toEqual([['a', 1, true], ['b', 2, true], ['c', 5, true]]);
});

test('admits no more than max-num-seqs, nor more than the free state slots', () => {
  const { scheduler, slots } = setup({ maxNumSeqs: 2, slots: 8 });
  for (const id of ['a', 'b', 'c']) scheduler.add(seq(id, 2));
  expect(view(scheduler.schedule()).map((v) => v[0])).toEqual(['a', 'b']);
  expect(scheduler.waiting.map((s) => s.requestId)).toEqual(['c']);
  expect(slots.numInUse).toBe(2);

  const tight = setup({ maxNumSeqs: 8, slots: 1 });
  for (const id of ['a', 'b']) tight.scheduler.add(seq(id, 2));
  expect(view(tight.scheduler.schedule()).map((v) => v[0])).toEqual(['a']);
});

test('finishing frees the blocks and the slot at once, letting a waiting request in', () => {
  const { scheduler, blocks, slots } = setup({ maxNumSeqs: 1 });
  const a = seq('a', 6);
  const b = seq('b', 6);
  scheduler.add(a);
  scheduler.add(b);
  complete(scheduler.schedule());
  expect(blocks.numUsedBlocks).toBe(2);
  scheduler.finish(a);
  expect(blocks.numUsedBlocks).toBe(0);
  expect(slots.numInUse).toBe(0);
  expect(a.status).toBe('finished');
  expect(view(scheduler.schedule())).toEqual([['b', 6, true]]);
});

test('when KV blocks run out, the newest sequence is preempted and later recomputed from scratch', () => {
  // 3 blocks of 4 tokens: a (4 tokens) and b (4 tokens) fill 2; a's decode needs a third, b's too.
  const { scheduler, blocks } = setup({ blocks: 3, blockSize: 4, budget: 16 });
  const a = seq('a', 4);
  const b = seq('b', 4);
  scheduler.add(a);
  scheduler.add(b);
  complete(scheduler.schedule()); // both prefilled: 5 tokens each, 4 computed
  let chunks = scheduler.schedule(); // a takes block 3; b cannot grow, and is the newest: preempted
  expect(view(chunks)).toEqual([['a', 1, true]]);
  expect(b.status).toBe('waiting');
  expect(b.numComputedTokens).toBe(0);
  expect(b.blockTable).toEqual([]);
  expect(b.stateSlot).toBe(-1);
  expect(blocks.numUsedBlocks).toBe(2);
  complete(chunks);
  scheduler.finish(a);
  chunks = scheduler.schedule();
  // b comes back and recomputes prompt + its one generated token, then samples the next.
  expect(view(chunks)).toEqual([['b', 5, true]]);
});
