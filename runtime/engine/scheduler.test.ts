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

test('a step that preempts admits nobody, so a victim is never re-admitted in the step that evicted it (no thrash)', () => {
  // A pool far too small for the load: preemptions happen all the time.
  const { scheduler } = setup({ blocks: 12, blockSize: 2, budget: 7, slots: 6, maxNumSeqs: 6 });
  let next = 0;
  let preemptingSteps = 0;
  for (let round = 0; round < 300; round++) {
    if (round % 2 === 0) scheduler.add(seq(`s${next++}`, 2 + ((next * 5) % 7)));
    const computedBefore = new Map(scheduler.running.map((q) => [q, q.numComputedTokens]));
    const before = scheduler.numPreemptions;
    const chunks = scheduler.schedule();
    if (scheduler.numPreemptions > before) {
      preemptingSteps++;
      // A sequence that ran with computed tokens and is scheduled from 0 again was evicted and re-admitted.
      const readmitted = chunks.filter((c) => (computedBefore.get(c.seq) ?? 0) > 0 && c.seq.numComputedTokens === 0);
      expect(readmitted.map((c) => c.seq.requestId)).toEqual([]);
    }
    complete(chunks);
    for (const c of chunks) if (c.seq.numOutputTokens >= 12) scheduler.finish(c.seq);
  }
  expect(preemptingSteps).toBeGreaterThan(5);
});

test('admission keeps a watermark of free blocks while others run', () => {
  // 100 blocks, watermark 1%: one block stays free for the running sequence to grow into.
  const { scheduler, blocks } = setup({ blocks: 100, blockSize: 1, budget: 200, slots: 4, maxNumSeqs: 4 });
  const a = seq('a', 50);
  scheduler.add(a);
  complete(scheduler.schedule());
  const b = seq('b', 49); // would leave 0 free blocks after a's 51 and b's 49
  scheduler.add(b);
  expect(view(scheduler.schedule())).toEqual([['a', 1, true]]);
  expect(blocks.numFreeBlocks).toBe(49); // a took its 51st block; b would have left none
  const lone = setup({ blocks: 100, blockSize: 1, budget: 200 });
  lone.scheduler.add(seq('c', 100)); // alone, a request may take the whole pool
  expect(view(lone.scheduler.schedule())).toEqual([['c', 100, true]]);
});
