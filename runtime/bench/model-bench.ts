// `jamba-runtime bench --preset jamba-1.5-mini --random-weights`: the whole model at real size with
// random weights made on the device, measured as the engine runs it (ModelRunner.step: recording,
// one native call, device work, sampled ids back):
//   decode step time at several batch sizes over a fixed context, prefill throughput, one long
//   prompt, peak device memory, and the device's own ceilings for the ratios.
import type { DeviceMemory, SamplingRow } from '../backends/backend.js';
import type { LoadedModel, StepSequence } from '../engine/model-runner.js';
import { randomModel } from '../models/load.js';
import { PRESETS } from '../models/presets.js';
import { Xoshiro128 } from '../sampling/prng.js';

export interface ModelBenchOptions {
  preset: string;
  quantization: 'none' | 'expertsint8';
  backend: 'auto' | 'cpu' | 'cuda';
  batches: number[];
  context: number;
  prefills: number[];
  longPrompt: number;
  maxNumBatchedTokens: number;
  steps: number;
  /** Ranks to split the model over (worker threads, one GPU each; JAMBA_TP_DEVICES to share one). */
  tensorParallelSize: number;
  log: (line: string) => void;
}

export interface ModelBenchResult {
  preset: string;
  quantization: string;
  backend: string;
  weightBytes: number;
  loadSeconds: number;
  decode: { batch: number; context: number; stepMsMedian: number; deviceMsMedian?: number; tokensPerSecond: number; opProfile?: OpProfile }[];
  prefill: { tokens: number; seconds: number; tokensPerSecond: number }[];
  longPrompt?: { tokens: number; seconds: number; tokensPerSecond: number };
  peakDeviceBytes?: number;
  ceilings?: { copyGBps: number; gemmTflops: number };
}

const GREEDY: SamplingRow = { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, counter: 0, logprobs: -1 };

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

type OpProfile = Record<string, { ms: number; calls: number }>;

/** What the benchmark reads of the device: the last step's device time, per-op time, memory in use. */
interface DeviceProbe {
  stepMs(): number | undefined;
  /** Per-op device time since the last read, when the backend profiles ops (JAMBA_PROFILE_OPS=1). */
  profile(): Promise<OpProfile | undefined>;
  memory(): DeviceMemory | undefined;
}

interface Timed {
  deviceMs?: number;
  wallMs: number;
}

/** The probe of a model on one backend, or of a tensor-parallel group (rank 0's profile, the slowest rank's step). */
function probeOf(model: LoadedModel): DeviceProbe {
  type Probed = { lastStepMs?: () => number | undefined; opProfile?: () => OpProfile | undefined | Promise<OpProfile | undefined> };
  const b = model.backend;
  const source = (b ?? model.runner) as Probed;
  return {
    stepMs: () => source.lastStepMs?.(),
    profile: async () => source.opProfile?.(),
    memory: () => b?.deviceMemory(),
  };
}

function describeProfile(profile: OpProfile, steps: number): string {
  const total = Object.values(profile).reduce((a, p) => a + p.ms, 0);
  return Object.entries(profile)
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([op, p]) => `${op} ${(p.ms / steps).toFixed(3)} ms (${((100 * p.ms) / total).toFixed(0)}%)`)
    .join(', ');
}

async function timedStep(model: LoadedModel, probe: DeviceProbe, seqs: StepSequence[]): Promise<Timed> {
  const t0 = performance.now();
  await model.runner.step(seqs);
  return { wallMs: performance.now() - t0, deviceMs: probe.stepMs() };
}

/** Block tables: sequence i owns blocks [i·per, (i+1)·per). */
function tables(count: number, per: number): Int32Array[] {
  return Array.from({ length: count }, (_, i) => Int32Array.from({ length: per }, (_, j) => i * per + j));
}

export async function benchModel(opts: ModelBenchOptions): Promise<ModelBenchResult> {
  const fields = PRESETS[opts.preset];
  if (!fields) throw new Error(`unknown preset '${opts.preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const maxBatch = Math.max(...opts.batches);
  const maxLen = Math.max(opts.longPrompt, opts.context + opts.steps + 8, ...opts.prefills);
  const t0 = performance.now();
  const model = await randomModel(fields, {
    quantization: opts.quantization,
    backend: opts.backend,
    maxModelLen: maxLen,
    maxNumSeqs: maxBatch,
    maxNumBatchedTokens: opts.maxNumBatchedTokens,
    tensorParallelSize: opts.tensorParallelSize,
  });
  const probe = probeOf(model);
  const loadSeconds = (performance.now() - t0) / 1000;
  const g = model.runner.geometry;
  opts.log(`model: ${opts.preset} ${opts.quantization} on ${model.backendName}, ${(model.weightBytes / 1e9).toFixed(1)} GB of weights, built in ${loadSeconds.toFixed(1)} s; ` +
    `KV pool ${g.numBlocks} blocks of ${g.blockSize} (${((g.numBlocks * g.blockSize * g.kvBytesPerToken) / 2 ** 30).toFixed(1)} GiB), ${g.numStateSlots} state slots`);
  const rng = new Xoshiro128(1);
  const token = (): number => rng.nextUint32() % model.info.vocabSize;
  const result: ModelBenchResult = {
    preset: opts.preset,
    quantization: opts.quantization,
    backend: model.backendName,
    weightBytes: model.weightBytes,
    loadSeconds,
    decode: [],
    prefill: [],
  };
  let peakUsed = 0;
  const notePeak = (): void => {
    const mem = probe.memory();
    if (mem) peakUsed = Math.max(peakUsed, mem.totalBytes - mem.freeBytes);
  };

  // Decode: `batch` sequences whose contexts already hold `context` tokens (their KV and state are the
  // pools' zeros: the cost of a step does not depend on the values).
  for (const batch of opts.batches) {
    const per = Math.ceil((opts.context + opts.steps + 4) / g.blockSize);
    if (batch * per > g.numBlocks) {
      opts.log(`decode batch ${batch}: skipped, the KV pool holds ${g.numBlocks} blocks, it needs ${batch * per}`);
      continue;
    }
    const blockTables = tables(batch, per);
    const times: Timed[] = [];
    for (let s = 0; s < opts.steps + 3; s++) {
      const seqs: StepSequence[] = blockTables.map((blockTable, i) => ({
        stateSlot: i,
        blockTable,
        cachedLen: opts.context - 1 + s,
        tokens: Int32Array.of(token()),
        sample: { ...GREEDY, counter: s },
      }));
      if (s === 3) await probe.profile(); // drop the warm-up steps' profile
      const t = await timedStep(model, probe, seqs);
      if (s >= 3) times.push(t); // the first steps capture the graph
    }
    const profile = await probe.profile();
    notePeak();
    const wall = median(times.map((t) => t.wallMs));
    const device = times[0]!.deviceMs !== undefined ? median(times.map((t) => t.deviceMs!)) : undefined;
    result.decode.push({ batch, context: opts.context, stepMsMedian: wall, deviceMsMedian: device, tokensPerSecond: (batch * 1000) / wall, opProfile: profile });
    opts.log(`decode batch ${batch} over ${opts.context}: ${wall.toFixed(2)} ms/step (device ${device?.toFixed(2) ?? '-'} ms), ${((batch * 1000) / wall).toFixed(0)} tok/s`);
    if (profile) opts.log(`profile per step: ${describeProfile(profile, times.length)}`);
  }

  const prefill = async (tokens: number): Promise<{ tokens: number; seconds: number; tokensPerSecond: number }> => {
    const per = Math.ceil(tokens / g.blockSize);
    if (per > g.numBlocks) throw new Error(`a ${tokens}-token prompt needs ${per} KV blocks; the pool has ${g.numBlocks}`);
    const blockTable = Int32Array.from({ length: per }, (_, j) => j);
    model.runner.resetStateSlot(0);
    const t = performance.now();
    for (let done = 0; done < tokens; ) {
      const n = Math.min(opts.maxNumBatchedTokens, tokens - done);
      const last = done + n === tokens;
      await model.runner.step([
        { stateSlot: 0, blockTable, cachedLen: done, tokens: Int32Array.from({ length: n }, token), sample: last ? GREEDY : undefined },
      ]);
      done += n;
    }
    notePeak();
    const seconds = (performance.now() - t) / 1000;
    return { tokens, seconds, tokensPerSecond: tokens / seconds };
  };
  for (const tokens of opts.prefills) {
    await prefill(Math.min(tokens, 512)); // warm-up: plans and kernels of this shape family
    await probe.profile();
    const r = await prefill(tokens);
    const profile = await probe.profile();
    if (profile) opts.log(`profile prefill ${tokens}: ${describeProfile(profile, 1)}`);
    result.prefill.push(r);
    opts.log(`prefill ${tokens}: ${r.seconds.toFixed(3)} s, ${r.tokensPerSecond.toFixed(0)} tok/s`);
  }
  if (opts.longPrompt > 0) {
    result.longPrompt = await prefill(opts.longPrompt);
    opts.log(`one ${opts.longPrompt}-token prompt: ${result.longPrompt.seconds.toFixed(2)} s (${result.longPrompt.tokensPerSecond.toFixed(0)} tok/s)`);
  }
  if (peakUsed > 0) result.peakDeviceBytes = peakUsed;
  model.runner.dispose();
  if (model.backendName === 'cuda') {
    // Measured after the model is freed: the probe needs 8 GiB.
    const probe = await (await import('../backends/cuda/index.js')).CudaBackend.open();
    result.ceilings = probe.measureCeilings();
    probe.dispose();
    opts.log(`device ceilings: copy ${result.ceilings.copyGBps.toFixed(0)} GB/s, bf16 GEMM ${result.ceilings.gemmTflops.toFixed(0)} TFLOP/s`);
  }
  return result;
}
