// A reader that stops reading pauses its sequence instead of letting outputs pile up: the sequence
// keeps its KV blocks and state slot, is not scheduled while 32 outputs wait, resumes when the reader
// catches up, and then finishes exactly as an unpaused one would.
import { join } from 'node:path';
import { loadModel } from '../models/index.js';
import { Engine, type RequestOutput } from './engine.js';
import type { SamplingParams } from './sequence.js';

const greedy = (maxTokens: number): SamplingParams => ({ temperature: 0, topP: 1, topK: 0, maxTokens, stop: [], stopTokenIds: [], ignoreEos: true });

test('a stalled reader holds at most 32 queued outputs; reading resumes generation to the same tokens', async () => {
  const model = await loadModel(join(import.meta.dirname, '../../test/fixtures/jamba-tiny'), { quantization: 'none', backend: 'cpu', maxModelLen: 256, maxNumSeqs: 2 });
  const engine = new Engine(model.runner, (ids) => ids.join(' '), { eosTokenIds: [] }, { maxNumSeqs: 2, maxNumBatchedTokens: 64, maxModelLen: 256, maxWaiting: 4 });
  try {
    const prompt = [5, 17, 42, 99, 7];
    const reference: number[] = [];
    for await (const out of engine.generate({ promptTokenIds: prompt, params: greedy(80) })) reference.push(...out.tokens.map((t) => t.tokenId));
    expect(reference).toHaveLength(80);

    const stalled = engine.generate({ promptTokenIds: prompt, params: greedy(80) });
    // Nobody reads: the engine runs until the queue is full, then pauses the request, unfinished.
    for (const deadline = Date.now() + 30_000; engine.stats().pausedForReaders === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // and stays paused
    const stats = engine.stats();
    expect(stats).toMatchObject({ running: 1, pausedForReaders: 1 });
    expect(stats.kvBlocksUsed).toBeGreaterThan(0);
    const got: RequestOutput[] = [];
    for await (const out of { [Symbol.asyncIterator]: () => stalled }) got.push(out);
    // The 32 outputs made before the pause were all there at once; the 33rd came after reading resumed.
    expect(got[31]!.numOutputTokens).toBe(32);
    expect(got.flatMap((o) => o.tokens.map((t) => t.tokenId))).toEqual(reference);
    expect(engine.stats().running).toBe(0);
  } finally {
    await engine.close();
    model.runner.dispose();
  }
}, 60000);
