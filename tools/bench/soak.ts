// Soak benchmark (`make bench-soak`, a measurement, not a test): the real `jamba-runtime serve` CLI on
// the tiny fixture, under mixed streaming/non-streaming load with client disconnects for --duration
// seconds. Samples the runtime's own /metrics every --sample seconds: heap used, RSS, KV-cache usage,
// state slots. Prints JSON: requests, heap at start (idle, after warm-up) and end (idle, after the
// load), the lowest heap of the first and last windows (the floor of V8's sawtooth), and whether
// every KV block and state slot came back. Exit 1 on errors or leaked engine state.
//
//   node dist/tools/bench/soak.js [--duration 600] [--concurrency 16] [--sample 5] [--model test/fixtures/jamba-tiny]
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runMixedLoad, type LoadStats } from '../soak/load.js';
import { memorySample, startRuntimeProcess, type MemorySample } from './runtime-process.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    concurrency: { type: 'string', default: '16' },
    sample: { type: 'string', default: '5' },
    model: { type: 'string', default: 'test/fixtures/jamba-tiny' },
  },
});
const durationS = Number(values.duration);
const concurrency = Number(values.concurrency);
const sampleS = Number(values.sample);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function idleSample(url: string): Promise<MemorySample> {
  for (let i = 0; i < 100; i++) {
    const s = await memorySample(url);
    if (s.running === 0 && s.waiting === 0) {
      await sleep(5000); // let V8 collect while idle
      return memorySample(url);
    }
    await sleep(200);
  }
  return memorySample(url);
}

async function main(): Promise<void> {
  const rt = await startRuntimeProcess(['--model', values.model!, '--max-model-len', '1024', '--max-num-seqs', '8']);
  try {
    console.error(`soak: warming up 20 s at concurrency ${concurrency}`);
    await runMixedLoad({ url: rt.url, durationMs: 20_000, concurrency, seed: 7 });
    const start = await idleSample(rt.url);
    console.error(`soak: ${durationS} s of mixed load`);
    const samples: { t: number; s: MemorySample }[] = [];
    const t0 = Date.now();
    let done = false;
    const sampler = (async () => {
      while (!done) {
        await sleep(sampleS * 1000);
        samples.push({ t: (Date.now() - t0) / 1000, s: await memorySample(rt.url) });
      }
    })();
    const load: LoadStats = await runMixedLoad({ url: rt.url, durationMs: durationS * 1000, concurrency, seed: 11 });
    done = true;
    await sampler;
    const end = await idleSample(rt.url);
    const window = Math.max(1, Math.floor(samples.length / 5));
    const floor = (xs: typeof samples) => Math.min(...xs.map((x) => x.s.heapUsedMiB));
    const round = (x: number) => Number(x.toFixed(1));
    const result = {
      date: new Date().toISOString(),
      machine: `${cpus().length} CPU cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}`,
      model: values.model,
      durationSeconds: durationS,
      concurrency,
      load,
      requestsPerSecond: round(load.requests / durationS),
      heapUsedMiB: { start: round(start.heapUsedMiB), end: round(end.heapUsedMiB), floorFirstFifth: round(floor(samples.slice(0, window))), floorLastFifth: round(floor(samples.slice(-window))), max: round(Math.max(...samples.map((x) => x.s.heapUsedMiB))) },
      rssMiB: { start: round(start.rssMiB), end: round(end.rssMiB) },
      kvCacheUsage: { maxDuringLoad: Math.max(...samples.map((x) => x.s.kvCacheUsage)), end: end.kvCacheUsage },
      stateSlotsInUse: { maxDuringLoad: Math.max(...samples.map((x) => x.s.stateSlotsInUse)), end: end.stateSlotsInUse },
      processAlive: rt.exit === undefined,
    };
    console.log(JSON.stringify(result, null, 2));
    if (load.errors > 0 || end.kvCacheUsage !== 0 || end.stateSlotsInUse !== 0 || rt.exit) process.exitCode = 1;
  } finally {
    await rt.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`soak: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
