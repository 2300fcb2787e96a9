// Fuzz benchmark (`make bench-fuzz`, a measurement, not a test): the HTTP fuzzer of tools/fuzz against
// the real `jamba-runtime serve` CLI (so a crash is the process dying), with more cases than the test.
// Prints JSON: cases per phase, crashes, hangs, bad answers, statuses seen, the runtime's heap and RSS
// before and after (idle), and whether every KV block and state slot came back. Exit 1 on any failure.
//
//   node dist/tools/bench/fuzz-bench.js [--runs 1000] [--storm 5000] [--seed N]
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { connectionStorm, fuzzJsonBodies, fuzzRawRequests, fuzzTruncatedUploads, newReport, type FuzzReport } from '../fuzz/http-fuzz.js';
import { memorySample, startRuntimeProcess } from './runtime-process.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000' },
    storm: { type: 'string', default: '5000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
  },
});
const runs = Number(values.runs);
const seed = Number(values.seed);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const rt = await startRuntimeProcess(['--model', 'test/fixtures/jamba-tiny', '--max-model-len', '1024', '--max-num-seqs', '8', '--max-body-bytes', String(1024 * 1024)]);
  const target = { host: rt.host, port: rt.port, model: 'jamba-tiny' };
  const opts = { seed, runs, deadlineMs: 30_000, timeBudgetMs: 30 * 60_000 };
  const phases: Record<string, FuzzReport> = {};
  try {
    // A small warm-up pass of every phase (JIT, caches, sockets) before the baseline.
    const warm = newReport();
    await fuzzJsonBodies(target, { ...opts, seed: seed + 1, runs: 20 }, warm);
    await fuzzRawRequests(target, { ...opts, seed: seed + 1, runs: 20 }, warm);
    await connectionStorm(target, { seed: seed + 1, connections: 200, concurrency: 200, deadlineMs: 60_000 }, warm);
    await sleep(5000);
    const before = await memorySample(rt.url);
    const t0 = Date.now();
    for (const [name, run] of [
      ['jsonBodies', (r: FuzzReport) => fuzzJsonBodies(target, opts, r)],
      ['rawRequests', (r: FuzzReport) => fuzzRawRequests(target, opts, r)],
      ['truncatedUploads', (r: FuzzReport) => fuzzTruncatedUploads(target, opts, r)],
      ['connectionStorm', (r: FuzzReport) => connectionStorm(target, { seed, connections: Number(values.storm), concurrency: 1000, deadlineMs: 120_000 }, r)],
    ] as const) {
      console.error(`fuzz: ${name}`);
      phases[name] = newReport();
      await run(phases[name]!);
    }
    const seconds = (Date.now() - t0) / 1000;
    await sleep(5000);
    const after = await memorySample(rt.url);
    const total = Object.values(phases).reduce((s, p) => ({ cases: s.cases + p.cases, crashes: s.crashes + p.crashes, hangs: s.hangs + p.hangs, badAnswers: s.badAnswers + p.badAnswers }), { cases: 0, crashes: 0, hangs: 0, badAnswers: 0 });
    const round = (x: number) => Number(x.toFixed(1));
    console.log(JSON.stringify({
      date: new Date().toISOString(),
      machine: `${cpus().length} CPU cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}`,
      seed, seconds: round(seconds), total,
      phases: Object.fromEntries(Object.entries(phases).map(([k, p]) => [k, { cases: p.cases, crashes: p.crashes, hangs: p.hangs, badAnswers: p.badAnswers, statuses: p.statuses, failures: p.failures }])),
      runtime: {
        alive: rt.exit === undefined,
        heapUsedMiB: { before: round(before.heapUsedMiB), after: round(after.heapUsedMiB) },
        rssMiB: { before: round(before.rssMiB), after: round(after.rssMiB) },
        after: { kvCacheUsage: after.kvCacheUsage, stateSlotsInUse: after.stateSlotsInUse, running: after.running, waiting: after.waiting },
      },
    }, null, 2));
    if (total.crashes + total.hangs + total.badAnswers > 0 || rt.exit || after.kvCacheUsage !== 0 || after.stateSlotsInUse !== 0) process.exitCode = 1;
  } finally {
    await rt.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`fuzz: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
