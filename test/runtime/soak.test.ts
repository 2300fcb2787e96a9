// A short soak (seconds; `make bench-soak` runs minutes against the CLI): the runtime under mixed
// streaming and non-streaming load, one request in five abandoned midway by its client. Afterwards
// nothing runs or waits, every KV block and state slot is back, and the heap is where it started.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Runtime } from '../../runtime/server/runtime.js';
import { runMixedLoad } from '../../tools/soak/load.js';
import { metricValue, startTestRuntime, waitFor } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
};

let runtime: Runtime;
beforeAll(async () => {
  runtime = await startTestRuntime({ fixture: 'jamba-tiny', maxModelLen: 1024, maxNumSeqs: 8 });
}, 120_000);
afterAll(async () => {
  await runtime?.close();
});

async function idle(): Promise<void> {
  await waitFor('the engine to go idle with everything freed', async () =>
    (await metricValue(runtime, 'jamba_requests_running')) === 0 &&
    (await metricValue(runtime, 'jamba_requests_waiting')) === 0 &&
    (await metricValue(runtime, 'jamba_kv_cache_usage_ratio')) === 0 &&
    (await metricValue(runtime, 'jamba_mamba_state_slots_in_use')) === 0, 30_000);
}

test('mixed load with disconnects: no errors, no growth in heap, KV blocks or state slots', async () => {
  // Warm-up round: JIT, tokenizer and chat-template caches, sockets.
  await runMixedLoad({ url: runtime.url, durationMs: 3000, concurrency: 12, seed: 1 });
  await idle();
  const before = heapAfterGc();
  const rounds = [];
  for (let i = 0; i < 2; i++) {
    rounds.push(await runMixedLoad({ url: runtime.url, durationMs: 5000, concurrency: 12, seed: 2 + i }));
    await idle();
  }
  const after = heapAfterGc();
  const total = rounds.reduce((s, r) => ({ requests: s.requests + r.requests, completed: s.completed + r.completed, disconnected: s.disconnected + r.disconnected, errors: s.errors + r.errors, errorSamples: [...s.errorSamples, ...r.errorSamples] }), { requests: 0, completed: 0, disconnected: 0, errors: 0, errorSamples: [] as string[] });
  process.stdout.write(`soak: ${JSON.stringify(total)}, heap ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB\n`);
  expect(total.errorSamples).toEqual([]);
  expect(total.errors).toBe(0);
  expect(total.completed).toBeGreaterThan(20);
  expect(total.disconnected).toBeGreaterThan(3);
  expect(runtime.engine!.stats().kvBlocksUsed).toBe(0);
  expect((after - before) / 2 ** 20).toBeLessThan(4);
}, 120_000);
